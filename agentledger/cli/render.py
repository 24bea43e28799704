"""Terminal rendering of query results (Rich), shared by the commands."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.tree import Tree

from agentledger.schemas.read import Span, SpanNode, TraceDetail, TraceSummary

__all__ = ["traces_table", "trace_tree", "fmt_cost", "fmt_ms", "when"]


def fmt_ms(ms: Any) -> str:
    if ms is None:
        return "-"
    return f"{ms / 1000:.2f}s" if ms >= 1000 else f"{ms:.1f}ms"


def fmt_cost(usd: Any) -> str:
    return f"${usd:.4f}" if usd else "-"


def when(iso: str, digits: int = 19) -> str:
    """An ISO time of an answer, shortened for a table cell (``2025-01-31 12:00:00``)."""
    return str(iso)[:digits].replace("T", " ")


def traces_table(rows: Sequence[TraceSummary], title: str) -> Table:
    table = Table(title=title, title_justify="left")
    for col, kw in (
        ("trace id", {"style": "cyan", "no_wrap": True}),
        ("root", {}),
        ("service", {}),
        ("start (UTC)", {"no_wrap": True}),
        ("duration", {"justify": "right"}),
        ("spans", {"justify": "right"}),
        ("tokens in/out", {"justify": "right"}),
        ("cost", {"justify": "right"}),
        ("status", {}),
    ):
        table.add_column(col, **kw)
    for r in rows:
        status = "[red]ERROR[/red]" if r.status == "ERROR" else "[green]OK[/green]"
        table.add_row(
            r.trace_id,
            r.root_name,
            r.service,
            when(r.start_time),
            fmt_ms(r.duration_ms),
            str(r.span_count),
            f"{r.input_tokens}/{r.output_tokens}",
            fmt_cost(r.cost_usd),
            status,
        )
    return table


_KIND_STYLE = {
    "LLM": "magenta",
    "TOOL": "yellow",
    "RETRIEVER": "blue",
    "AGENT": "green",
    "CHAIN": "white",
}


def _label(span: Span) -> str:
    kind = span.kind
    style = _KIND_STYLE.get(kind, "dim")
    parts = [f"[{style}]{kind}[/{style}] [bold]{span.name}[/bold] {fmt_ms(span.duration_ms)}"]
    if kind == "LLM" or span.response_model:
        model = span.response_model or span.request_model
        if span.request_model and span.request_model != model:
            model = f"{span.request_model} -> {model}"
        parts.append(f"model={model}")
        parts.append(f"tokens={span.input_tokens}/{span.output_tokens}")
        if span.cost_usd:
            parts.append(f"cost={fmt_cost(span.cost_usd)} ({span.cost_source})")
    if span.tool_name:
        parts.append(f"tool={span.tool_name}")
    for call in span.tool_calls:
        parts.append(f"calls {call.name}()")
    if span.principal_id:
        parts.append(f"for={span.principal_id}")
    if span.status_code == "ERROR":
        parts.append(f"[red]ERROR {span.status_message}[/red]")
    return "  ".join(parts)


def trace_tree(trace: TraceDetail) -> Tree:
    root = Tree(f"trace [cyan]{trace.trace_id}[/cyan]")

    def add(node: Tree, span: SpanNode) -> None:
        child = node.add(_label(span))
        for doc in span.documents:
            score = "-" if doc.score is None else f"{doc.score:.3f}"
            child.add(f"[blue]doc[/blue] {doc.id} score={score} sha256={doc.content_hash[:12]}…")
        if span.input_preview:
            child.add(f"[dim]in:[/dim] {span.input_preview[:100]}")
        if span.output_preview:
            child.add(f"[dim]out:[/dim] {span.output_preview[:100]}")
        for c in span.children:
            add(child, c)

    for span in trace.tree:
        add(root, span)
    return root


def console(stderr: bool = False) -> Console:
    """A console; when output is not a terminal, wide enough that tables keep their columns."""
    import sys

    stream = sys.stderr if stderr else sys.stdout
    return Console(stderr=stderr, width=None if stream.isatty() else 160)
