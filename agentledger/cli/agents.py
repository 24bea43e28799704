"""``agentledger agents graph``: which agents handed work to which, as a table, JSON, Mermaid or DOT.

Mermaid and DOT are text a reader pastes where pictures are made (a Markdown page renders
Mermaid, ``dot -Tpng`` renders DOT), so the picture needs nothing installed here.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Literal

import typer
from rich.table import Table

from agentledger.cli import render
from agentledger.cli._common import (
    ApiKeyOpt,
    DataDirOpt,
    JsonOpt,
    TenantOpt,
    UrlOpt,
    ask,
    connect,
    print_json,
)
from agentledger.cli.usage import parse_when
from agentledger.schemas.read import AgentGraph
from agentledger.schemas.read import defaults as D

__all__ = ["graph_dot", "graph_mermaid", "graph_table", "register", "show_graph"]

Picture = Literal["table", "mermaid", "dot"]

_SAFE_ID = re.compile(r"[^A-Za-z0-9_]")


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _label(graph: AgentGraph, source: str, target: str) -> str:
    edge = next(e for e in graph.edges if (e.source, e.target) == (source, target))
    text = f"{edge.handoffs} handoff{'' if edge.handoffs == 1 else 's'}"
    if edge.errors:
        text += f", {edge.error_rate:.0%} errors"
    if edge.cost_usd >= 0.0001:
        text += f", ${edge.cost_usd:,.4f}"
    return text


def graph_mermaid(graph: AgentGraph) -> str:
    """A Mermaid flowchart: agents as nodes, handoffs as labelled arrows."""
    ids = {n.agent: f"a{i}_{_SAFE_ID.sub('_', n.agent)}" for i, n in enumerate(graph.nodes)}
    lines = ["flowchart LR"]
    lines += [f'    {ids[n.agent]}["{n.agent.replace(chr(34), "#quot;")}"]' for n in graph.nodes]
    lines += [
        f'    {ids[e.source]} -->|"{_label(graph, e.source, e.target)}"| {ids[e.target]}'
        for e in graph.edges
    ]
    return "\n".join(lines)


def graph_dot(graph: AgentGraph) -> str:
    """A Graphviz digraph of the same."""

    def quoted(text: str) -> str:
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'

    lines = ["digraph agents {", "    rankdir=LR;"]
    lines += [f"    {quoted(n.agent)};" for n in graph.nodes]
    lines += [
        f"    {quoted(e.source)} -> {quoted(e.target)} "
        f"[label={quoted(_label(graph, e.source, e.target))}];"
        for e in graph.edges
    ]
    lines.append("}")
    return "\n".join(lines)


def graph_table(graph: AgentGraph, title: str) -> Table:
    table = Table(title=title)
    for column in ("from", "to", "handoffs", "errors", "wait p50/p95 ms", "run p50/p95 ms"):
        table.add_column(column, justify="left" if column in ("from", "to") else "right")
    for column in ("tokens in/out", "cost $"):
        table.add_column(column, justify="right")
    for e in graph.edges:
        table.add_row(
            e.source,
            e.target,
            str(e.handoffs),
            f"{e.errors} ({e.error_rate:.0%})",
            f"{_ms(e.wait_ms_p50)} / {_ms(e.wait_ms_p95)}",
            f"{_ms(e.duration_ms_p50)} / {_ms(e.duration_ms_p95)}",
            f"{e.input_tokens:,} / {e.output_tokens:,}",
            f"{e.cost_usd:,.4f}",
        )
    return table


def show_graph(graph: AgentGraph, picture: Picture, as_json: bool, title: str) -> None:
    """Print ``graph`` the way the user asked."""
    if as_json:
        print_json(graph)
    elif picture == "mermaid":
        typer.echo(graph_mermaid(graph))
    elif picture == "dot":
        typer.echo(graph_dot(graph))
    elif not graph.edges:
        typer.echo(
            f"no handoffs between agents in this range ({len(graph.nodes)} agent(s) recorded "
            "spans); agents record them with inject_handoff / receive_handoff"
        )
    else:
        render.console().print(graph_table(graph, title))


PictureOpt = typer.Option(
    "table", "--format", "-f", help="table, mermaid (flowchart text) or dot (Graphviz text)."
)


def register(app: typer.Typer) -> None:
    """Add ``agents graph`` to ``app``."""
    agents_app = typer.Typer(help="Agents and the work they hand each other.")
    app.add_typer(agents_app, name="agents")

    @agents_app.command("graph")
    def graph(
        since: str = typer.Option(
            f"{D.GRAPH_WINDOW_HOURS}h", help="Range start: ISO time or a span before now."
        ),
        until: str | None = typer.Option(None, help="Range end (default now)."),
        trace_id: str | None = typer.Option(
            None, "--trace", help="One trace and the runs it belongs to instead of a range."
        ),
        picture: Picture = PictureOpt,
        url: str = UrlOpt,
        data_dir: str | None = DataDirOpt,
        api_key: str | None = ApiKeyOpt,
        tenant: str = TenantOpt,
        as_json: bool = JsonOpt,
    ) -> None:
        """Agents as nodes, handoffs as edges: counts, wait and run latency, errors, tokens, cost."""
        now = datetime.now(timezone.utc)
        start, end = (
            (None, None) if trace_id else (parse_when(since, now), parse_when(until, now, now))
        )
        client = connect(url, data_dir, api_key, tenant)
        result = ask(client, lambda c: c.agents_graph(since=start, until=end, trace_id=trace_id))
        show_graph(result, picture, as_json, f"Handoffs between agents ({client.where})")
