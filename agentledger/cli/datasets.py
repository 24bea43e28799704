"""``agentledger dataset ...`` (and ``register``, which adds ``feedback ...`` from ``feedback.py``).

Like the query commands, these ask the running server's HTTP API when one
answers (``--url``) and otherwise open the data directory (``--data-dir``) or
the ClickHouse server (``AGENTLEDGER_CLICKHOUSE_URL``) directly. Exports show
a progress bar when stdout is a terminal and the export runs in this process.
"""

from __future__ import annotations

import sys
from datetime import datetime, timezone
from typing import Any

import typer

from agentledger.cli._common import (
    ApiKeyOpt,
    DataDirOpt,
    TenantOpt,
    UrlOpt,
    ask,
    connect,
    fail,
    print_json,
)
from agentledger.cli.feedback import _JSON, _who, feedback_app
from agentledger.schemas.read import DatasetManifest
from agentledger.schemas.read import defaults as D

__all__ = ["dataset_app", "feedback_app", "register"]

dataset_app = typer.Typer(
    help="Export training datasets from recorded traces; show their lineage.", no_args_is_help=True
)

_URL = UrlOpt
_DATA_DIR = DataDirOpt
_KEY = ApiKeyOpt
_TENANT = TenantOpt


# -- datasets ------------------------------------------------------------------------------------


def _when(value: str | None, option: str) -> str | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        fail(f"{option} {value!r} is not an ISO date or time (2025-01-31 or 2025-01-31T12:00:00)")
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)).isoformat()


@dataset_app.command("export")
def dataset_export(
    out_dir: str = typer.Argument(
        ..., help="Directory to write the dataset into (created; must not hold one)."
    ),
    fmt: str = typer.Option(
        "chat",
        "--format",
        "-f",
        help="chat (OpenAI fine-tuning JSONL), parquet, preference, openai-dpo, trajectory.",
    ),
    since: str | None = typer.Option(
        None, "--since", help="Spans starting at or after (ISO time, UTC)."
    ),
    until: str | None = typer.Option(
        None, "--until", help="Spans starting before (ISO time, UTC)."
    ),
    agent: list[str] | None = typer.Option(None, "--agent", help="Agent name (repeatable)."),
    model: list[str] | None = typer.Option(
        None, "--model", help="Requested or answered model (repeatable)."
    ),
    principal: list[str] | None = typer.Option(
        None, "--principal", help="Principal id (repeatable)."
    ),
    kind: list[str] | None = typer.Option(
        None, "--kind", help="Span kind (LLM, AGENT...; repeatable)."
    ),
    include_errors: bool = typer.Option(
        False, "--include-errors", help="Keep errored calls (dropped by default)."
    ),
    tool_calls: bool | None = typer.Option(
        None, "--tool-calls/--no-tool-calls", help="Only examples with (or without) tool calls."
    ),
    feedback: list[str] | None = typer.Option(
        None,
        "--feedback",
        help="Feedback threshold NAME OP VALUE, e.g. 'helpfulness>=0.7', "
        "'thumbs=up' (repeatable; all must hold).",
    ),
    sample: int | None = typer.Option(
        None, "--sample", min=1, help="At most this many candidates, a seeded sample."
    ),
    seed: str = typer.Option("0", "--seed", help="Seed of the sample and the split."),
    validation: float = typer.Option(
        0.1, "--validation", min=0.0, max=0.99, help="Fraction for the validation split."
    ),
    split_by: str = typer.Option(
        "trace", "--split-by", help="Keep together on one side: trace, session or example."
    ),
    redact: str = typer.Option(
        "all", "--redact", help="all, none, or presets: secret,iban,card,email,phone."
    ),
    no_dedup: bool = typer.Option(False, "--no-dedup", help="Keep exact duplicates."),
    no_near_dedup: bool = typer.Option(False, "--no-near-dedup", help="Keep near duplicates."),
    no_quality: bool = typer.Option(
        False, "--no-quality", help="Keep empty, truncated and filtered outputs."
    ),
    preference_feedback: str | None = typer.Option(
        None, "--preference-feedback", help="Feedback name that ranks answers for pairs."
    ),
    name: str = typer.Option("", "--name", help="Name recorded with the dataset."),
    creator: str | None = typer.Option(
        None, "--creator", envvar="AGENTLEDGER_OPERATOR", help="Who exports (default: user@host)."
    ),
    page_size: int = typer.Option(
        50_000,
        "--page-size",
        min=1,
        help="Spans read per page (memory holds two pages; larger is faster).",
    ),
    url: str = _URL,
    data_dir: str | None = _DATA_DIR,
    api_key: str | None = _KEY,
    tenant: str = _TENANT,
    as_json: bool = _JSON,
) -> None:
    """Export recorded spans as a training dataset, with a manifest and recorded lineage."""
    from agentledger.pipeline.services.datasets import FeedbackFilter

    try:
        fb_filters = [str(FeedbackFilter.parse(f)) for f in feedback or ()]
    except ValueError as exc:
        fail(str(exc))
    request = {
        "format": fmt,
        "name": name,
        "creator": creator or _who(),
        "redact": redact,
        "dedup": not no_dedup,
        "near_dedup": not no_near_dedup,
        "quality": not no_quality,
        "validation_fraction": validation,
        "split_by": split_by,
        "preference_feedback": preference_feedback,
        "page_size": page_size,
        "filters": {
            "since": _when(since, "--since"),
            "until": _when(until, "--until"),
            "agents": agent or [],
            "models": model or [],
            "principals": principal or [],
            "kinds": [k.upper() for k in kind or ()],
            "successful_only": not include_errors,
            "has_tool_calls": tool_calls,
            "feedback": fb_filters,
            "sample_size": sample,
            "seed": seed,
        },
    }
    client = connect(url, data_dir, api_key, tenant)
    from agentledger.cli import render

    console = render.console(stderr=as_json)
    if sys.stdout.isatty() and not as_json and client.reports_progress:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        with Progress(
            TextColumn("[bold]exporting[/bold]"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        ) as bar:
            task = bar.add_task("export", total=None)

            def progress(done: int, total: int | None) -> None:
                bar.update(task, completed=done, total=total)

            manifest = ask(client, lambda c: c.export_dataset(out_dir, request, progress))
    else:
        with console.status(f"exporting through {client.where}...") if not as_json else _nothing():
            manifest = ask(client, lambda c: c.export_dataset(out_dir, request))
    if as_json:
        print_json(manifest)
        return
    _print_manifest(manifest, console)


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _print_manifest(manifest: DatasetManifest, console: Any) -> None:
    from rich.table import Table

    counts = manifest.counts
    dropped = ", ".join(f"{k} {v}" for k, v in sorted(counts.dropped.items())) or "none"
    console.print(f"[bold]{manifest.id}[/bold]  {manifest.name}  ({manifest.format})")
    console.print(f"created {manifest.created_at} by {manifest.creator or '?'}")
    console.print(
        f"examples {counts.examples} of {counts.candidates} candidates "
        f"(splits: {counts.splits}); dropped: {dropped}"
    )
    console.print(
        f"source spans {counts.source_spans}; redaction {manifest.hygiene.redaction_policy}; "
        f"content digest {manifest.content_digest[:16]}..."
    )
    table = Table(title="Files")
    for col in ("file", "split", "rows", "bytes", "sha256"):
        table.add_column(col)
    for f in manifest.files:
        count = f.examples if f.examples is not None else f.rows
        table.add_row(
            f.path,
            f.split or f.role or "",
            "" if count is None else str(count),
            str(f.bytes),
            f.sha256[:16] + "...",
        )
    console.print(table)
    recorded = manifest.recorded
    if recorded:
        console.print(
            f"recorded at {recorded.path}: {recorded.member_rows} member rows, "
            f"{recorded.spans} spans in {recorded.traces} traces"
        )


@dataset_app.command("show")
def dataset_show(
    dataset_id: str = typer.Argument(..., help="Dataset id (ds-...)."),
    spans: bool = typer.Option(False, "--spans", help="Also list the production spans in it."),
    limit: int = typer.Option(
        D.DATASET_SPANS_LIMIT,
        "--limit",
        min=1,
        max=D.DATASET_SPANS_MAX,
        help="With --spans: at most this many.",
    ),
    url: str = _URL,
    data_dir: str | None = _DATA_DIR,
    api_key: str | None = _KEY,
    tenant: str = _TENANT,
    as_json: bool = _JSON,
) -> None:
    """A dataset's manifest (filters, counts, hashes, redaction, files) and, with --spans, its spans."""
    manifest, members = ask(
        connect(url, data_dir, api_key, tenant),
        lambda c: (
            c.dataset(dataset_id),
            c.dataset_spans(dataset_id, limit=limit) if spans else None,
        ),
    )
    if as_json:
        print_json({**manifest.model_dump(mode="json"), "spans": members} if spans else manifest)
        return
    from agentledger.cli import render

    console = render.console()
    _print_manifest(manifest, console)
    if members is not None:
        from rich.table import Table

        table = Table(title=f"Spans in {dataset_id} (first {limit})")
        for col in ("span", "trace", "kind", "name", "model", "start"):
            table.add_column(col)
        for r in members:
            table.add_row(
                r.span_id, r.trace_id, r.kind, r.name, r.response_model, r.start_time[:23]
            )
        console.print(table)


@dataset_app.command("of-span")
def dataset_of_span(
    span_id: str = typer.Argument(..., help="Span id (16 hex digits)."),
    url: str = _URL,
    data_dir: str | None = _DATA_DIR,
    api_key: str | None = _KEY,
    tenant: str = _TENANT,
    as_json: bool = _JSON,
) -> None:
    """The datasets that contain a span (and in which split, as what)."""
    rows = ask(connect(url, data_dir, api_key, tenant), lambda c: c.span_datasets(span_id))
    if as_json:
        print_json(rows)
        return
    if not rows:
        typer.echo(f"span {span_id} is in no recorded dataset")
        return
    from rich.table import Table

    from agentledger.cli import render

    table = Table(title=f"Datasets containing span {span_id}")
    for col in ("dataset", "name", "format", "created", "split", "role", "path"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            r.dataset_id, r.name, r.format, render.when(r.created_at), r.split, r.role, r.path
        )
    render.console().print(table)


@dataset_app.command("list")
def dataset_list(
    limit: int = typer.Option(
        D.DATASETS_LIMIT, "--limit", min=1, max=D.DATASETS_MAX, help="How many."
    ),
    url: str = _URL,
    data_dir: str | None = _DATA_DIR,
    api_key: str | None = _KEY,
    tenant: str = _TENANT,
    as_json: bool = _JSON,
) -> None:
    """Recorded datasets, newest first."""
    rows = ask(connect(url, data_dir, api_key, tenant), lambda c: c.datasets(limit=limit))
    if as_json:
        print_json(rows)
        return
    from rich.table import Table

    from agentledger.cli import render

    table = Table(title="Datasets")
    for col in (
        "dataset",
        "name",
        "format",
        "created",
        "examples",
        "train",
        "validation",
        "spans",
        "redaction",
    ):
        table.add_column(col)
    for r in rows:
        table.add_row(
            r.dataset_id,
            r.name,
            r.format,
            render.when(r.created_at),
            str(r.examples),
            str(r.train_examples),
            str(r.validation_examples),
            str(r.source_spans),
            r.redaction_policy,
        )
    render.console().print(table)


def register(app: typer.Typer) -> None:
    """Add ``feedback`` and ``dataset`` to ``app``."""
    app.add_typer(feedback_app, name="feedback")
    app.add_typer(dataset_app, name="dataset")
