"""``agentledger feedback add`` and ``feedback list``: scores, labels and corrections on spans.

Like the query commands, these ask the running server's HTTP API when one answers (``--url``)
and otherwise open the data directory (``--data-dir``) or the ClickHouse server
(``AGENTLEDGER_CLICKHOUSE_URL``) directly. ``dataset`` (``datasets.py``) selects spans by this
feedback and names its creator as feedback names its annotator (``_who``).
"""

from __future__ import annotations

import getpass
import socket
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

__all__ = ["feedback_app"]

feedback_app = typer.Typer(
    help="Attach scores, labels, comments and corrections to traces and spans.",
    no_args_is_help=True,
)

_JSON = typer.Option(False, "--json", help="Print JSON.")


def _who() -> str:
    try:
        return f"{getpass.getuser()}@{socket.gethostname()}"
    except Exception:  # no user name in some containers
        return socket.gethostname()


@feedback_app.command("add")
def feedback_add(
    name: str = typer.Option(
        ..., "--name", "-n", help="What is judged (helpfulness, correctness, thumbs...)."
    ),
    trace_id: str | None = typer.Option(None, "--trace-id", help="Trace (32 hex digits)."),
    span_id: str | None = typer.Option(
        None, "--span-id", help="Span (16 hex digits); omit for the whole trace."
    ),
    score: float | None = typer.Option(None, "--score", help="Numeric value."),
    label: str = typer.Option(
        "", "--label", help="Categorical value (up/down, correct/incorrect...)."
    ),
    comment: str = typer.Option("", "--comment", help="Free text."),
    correction: str = typer.Option(
        "", "--correction", help="The answer the model should have given."
    ),
    annotator: str | None = typer.Option(
        None,
        "--annotator",
        envvar="AGENTLEDGER_OPERATOR",
        help="Who gives it (default: user@host).",
    ),
    annotator_kind: str = typer.Option("HUMAN", "--annotator-kind", help="HUMAN, LLM or CODE."),
    feedback_id: str | None = typer.Option(
        None, "--id", help="Idempotency key (same id = same feedback)."
    ),
    metadata: list[str] | None = typer.Option(
        None, "--metadata", "-m", help="key=value, repeatable."
    ),
    url: str = UrlOpt,
    data_dir: str | None = DataDirOpt,
    api_key: str | None = ApiKeyOpt,
    tenant: str = TenantOpt,
    as_json: bool = _JSON,
) -> None:
    """Attach feedback to a trace or a span (stored durably before this returns)."""
    meta = {}
    for item in metadata or ():
        key, sep, value = item.partition("=")
        if not sep:
            fail(f"--metadata {item!r} is not key=value")
        meta[key] = value
    item_json: dict[str, Any] = {
        "name": name,
        "trace_id": trace_id or "",
        "span_id": span_id or "",
        "score": score,
        "label": label,
        "comment": comment,
        "correction": correction,
        "annotator": annotator or _who(),
        "annotator_kind": annotator_kind.upper(),
        "metadata": meta,
    }
    if feedback_id:
        item_json["id"] = feedback_id
    from pydantic import ValidationError

    from agentledger.pipeline.services.datasets import FeedbackIn

    try:
        FeedbackIn.model_validate(item_json)
    except ValidationError as exc:
        fail("; ".join(e["msg"] for e in exc.errors()))
    result = ask(connect(url, data_dir, api_key, tenant), lambda c: c.add_feedback([item_json]))
    if as_json:
        print_json(result)
        return
    target = f"span {span_id}" if span_id else f"trace {trace_id}"
    typer.echo(f"feedback {name!r} on {target} stored ({result.durable_in}); id {result.ids[0]}")


@feedback_app.command("list")
def feedback_list(
    trace_id: str | None = typer.Option(
        None, "--trace-id", help="Trace (its spans' feedback too)."
    ),
    span_id: str | None = typer.Option(None, "--span-id", help="One span."),
    url: str = UrlOpt,
    data_dir: str | None = DataDirOpt,
    api_key: str | None = ApiKeyOpt,
    tenant: str = TenantOpt,
    as_json: bool = _JSON,
) -> None:
    """Feedback on a trace or span, newest first."""
    if not trace_id and not span_id:
        fail("give --trace-id or --span-id")
    rows = ask(
        connect(url, data_dir, api_key, tenant),
        lambda c: c.feedback(trace_id=trace_id, span_id=span_id),
    )
    if as_json:
        print_json(rows)
        return
    from rich.table import Table

    from agentledger.cli import render

    table = Table(title="Feedback")
    for col in ("created", "span", "name", "score", "label", "annotator", "source", "comment"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            render.when(r.created_at),
            r.span_id or "(trace)",
            r.name,
            "" if r.score is None else f"{r.score:g}",
            r.label,
            r.annotator,
            r.source,
            (r.comment or "")[:60],
        )
    render.console().print(table)
