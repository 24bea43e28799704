"""How ``agentledger usage``, ``patterns`` and ``anomalies`` print: tables, CSV, and relative times.

Apart from the commands (``usage.py``) because the demo's closing report prints the same tables
(``print_usage_summary``) and ``agents`` reads times the same way (``parse_when``).
"""

from __future__ import annotations

import csv
import io
import json
import re
import sys
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

import typer
from pydantic import BaseModel
from rich.table import Table

from agentledger.cli import render
from agentledger.cli._common import jsonable
from agentledger.schemas.read import Anomaly, PatternsReport, UsageRow

__all__ = ["anomalies_table", "parse_when", "print_usage_summary", "usage_table"]

_REL = re.compile(r"^(\d+(?:\.\d+)?)\s*([mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_when(
    value: str | None, now: datetime, default: datetime | None = None
) -> datetime | None:
    """``now``, a relative span before now (``24h``), or an ISO 8601 time (UTC if naive)."""
    if value is None or value == "":
        return default
    value = value.strip()
    if value == "now":
        return now
    m = _REL.match(value)
    if m:
        return now - timedelta(**{_UNITS[m.group(2)]: float(m.group(1))})
    try:
        t = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise typer.BadParameter(
            f"{value!r} is neither ISO 8601 nor a span like 24h or 7d"
        ) from exc
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def _hours(value: str) -> int:
    m = _REL.match(value.strip())
    if not m:
        raise typer.BadParameter(f"{value!r} is not a span like 24h or 7d")
    return max(1, int(timedelta(**{_UNITS[m.group(2)]: float(m.group(1))}).total_seconds() // 3600))


def _print_csv(models: Sequence[BaseModel]) -> None:
    if not models:
        return
    rows: list[dict[str, Any]] = jsonable(list(models))
    buf = io.StringIO()
    columns = list(rows[0])
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow(
            {k: json.dumps(v) if isinstance(v, (list, dict)) else v for k, v in r.items()}
        )
    sys.stdout.write(buf.getvalue())


def _num(v: Any, fmt: str = "{:,}") -> str:
    return "-" if v is None else fmt.format(v)


def usage_table(rows: Sequence[UsageRow], dims: list[str], title: str) -> Table:
    """Usage rows as a table; a "lost in agent" column only when an agent reported lost spans
    (issue 21: a gap in the record shows next to the usage it would have added to)."""
    table = Table(title=title, title_justify="left")
    lost = any(r.spans_lost for r in rows)
    for d in dims:
        table.add_column(d, style="cyan")
    series = any(r.bucket is not None for r in rows)
    if series:
        table.add_column("bucket (UTC)", no_wrap=True)
    for col in (
        "calls",
        "errors",
        "error %",
        "tokens in",
        "tokens out",
        "cost",
        "p50",
        "p95",
        "p99",
        *(["lost in agent"] if lost else []),
    ):
        table.add_column(col, justify="right")
    for r in rows:
        values = [getattr(r, d) for d in dims]
        cells = [str(v) if v else "[dim](none)[/dim]" for v in values]
        if series:
            cells.append(render.when(r.bucket or "", 16))
        cells += [
            _num(r.calls),
            _num(r.errors),
            f"{100 * r.error_rate:.1f}",
            _num(r.input_tokens),
            _num(r.output_tokens),
            render.fmt_cost(r.cost_usd),
            render.fmt_ms(r.latency_p50_ms),
            render.fmt_ms(r.latency_p95_ms),
            render.fmt_ms(r.latency_p99_ms),
        ]
        if lost:
            cells.append(f"[red]{r.spans_lost:,}[/red]" if r.spans_lost else "0")
        table.add_row(*cells)
    return table


def anomalies_table(rows: Sequence[Anomaly], title: str) -> Table:
    table = Table(title=title, title_justify="left")
    for col, kw in (
        ("window (UTC)", {"no_wrap": True}),
        ("type", {"style": "magenta"}),
        ("dimensions", {}),
        ("metric", {}),
        ("observed", {"justify": "right"}),
        ("expected", {"justify": "right"}),
        ("score", {"justify": "right"}),
        ("example traces", {"style": "cyan"}),
    ):
        table.add_column(col, **kw)
    for r in rows:
        dims = ", ".join(f"{k}={v}" for k, v in r.dimensions.items())
        table.add_row(
            render.when(r.window_start, 16),
            r.type.value,
            dims,
            r.metric,
            f"{r.observed:.4g}",
            f"{r.expected:.4g}",
            f"{r.score:.3g}",
            "\n".join(r.example_trace_ids[:2]),
        )
    return table


def _first(ids: list[str]) -> str:
    return ids[0] if ids else ""


def _patterns_render(result: PatternsReport) -> None:
    console = render.console()
    seq = Table(
        title=f"Tool sequences {result.window[0][:16]} .. {result.window[1][:16]}",
        title_justify="left",
    )
    for col in ("agent", "sequence", "traces", "example trace"):
        seq.add_column(col)
    for s in result.sequences:
        seq.add_row(
            s.agent or "(none)",
            " > ".join(s.sequence) or "[dim](no tools)[/dim]",
            str(s.traces),
            _first(s.example_trace_ids),
        )
    console.print(seq)
    grams = Table(title="Tool n-grams", title_justify="left")
    for col in ("agent", "n-gram", "count"):
        grams.add_column(col)
    for g in result.ngrams:
        grams.add_row(g.agent or "(none)", " > ".join(g.ngram), str(g.count))
    console.print(grams)
    topics = Table(title="Topics of user inputs (TF-IDF + k-means)", title_justify="left")
    for col in ("topic", "top terms", "baseline", "current"):
        topics.add_column(col)
    for t in result.topics:
        topics.add_row(str(t.topic), ", ".join(t.terms), str(t.baseline), str(t.current))
    console.print(topics)
    new = result.new_use
    if new.baseline_empty:
        console.print("[dim]No traffic in the baseline window: nothing can be called new.[/dim]")
        return
    unexpected = Table(
        title="New or unexpected use (absent from the baseline)", title_justify="left"
    )
    for col in ("what", "value", "traces", "example trace"):
        unexpected.add_column(col)
    for s in new.sequences:
        unexpected.add_row(
            "sequence",
            f"{s.agent}: {' > '.join(s.sequence) or '(no tools)'}",
            str(s.traces),
            _first(s.example_trace_ids),
        )
    for what, entities in (
        ("tool", new.tools),
        ("model", new.models),
        ("principal", new.principals),
        ("agent", new.agents),
        ("provider", new.providers),
    ):
        for e in entities:
            unexpected.add_row(what, e.value, str(e.traces), _first(e.example_trace_ids))
    for nt in new.topics:
        unexpected.add_row(
            "topic", ", ".join(nt.terms), str(nt.traces), _first(nt.example_trace_ids)
        )
    console.print(
        unexpected if unexpected.row_count else "[green]No new or unexpected use.[/green]"
    )


def print_usage_summary(console: Any, summary: dict[str, Any]) -> None:
    """Print what ``agentledger.pipeline.derive.summary.usage_summary`` returned (the demo's closing report)."""
    t = summary["totals"]
    console.print(
        f"\n[bold]Usage[/bold] {summary['start'][:16]} .. {summary['end'][:16]} UTC: {t['calls']} spans, "
        f"{t['errors']} errors, {t['input_tokens']}/{t['output_tokens']} tokens in/out, "
        f"{render.fmt_cost(t['cost_usd'])}"
    )

    def rows(key: str) -> list[UsageRow]:
        return [UsageRow.model_validate(r) for r in summary[key]]

    if summary["models"]:
        console.print(usage_table(rows("models"), ["provider", "model"], "LLM calls by model"))
    if summary["principals"]:
        console.print(usage_table(rows("principals"), ["principal"], "By principal"))
    if summary["tools"]:
        console.print(usage_table(rows("tools"), ["tool"], "Tools"))
    if summary["anomalies"]:
        found = [Anomaly.model_validate(a) for a in summary["anomalies"]]
        console.print(anomalies_table(found, "Anomalies found in this traffic"))
    else:
        console.print(
            "[green]No anomalies found in this traffic[/green] (spikes, bursts and first-seen checks need "
            "a baseline of earlier traffic; sensitive-data egress is checked on every run)."
        )
