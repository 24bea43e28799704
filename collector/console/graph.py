"""The Agent graph page: agents and the handoffs between them, from ``agents_graph``.

Over a time range, or over one trace and the runs it belongs to (the trace page links here).
Each agent is a link into the trace list filtered by that agent; each edge is labelled with its
handoffs, errors and what the receiver spent, and links to the receiving agent's traces. The
picture is laid out and drawn on the server (``graph_layout``); a table beside it says the same
for screen readers and for copying.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from functools import partial
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from agentledger.collector.console import graph_layout, web
from agentledger.collector.console.sessions import PREFIX
from agentledger.collector.deps import ReadLogDep, StoreDep, TenantDep, read_errors
from agentledger.pipeline.services import graph

__all__ = ["router"]

router = APIRouter(prefix=PREFIX)

GRAPH_RANGES: dict[str, timedelta] = {
    "1h": timedelta(hours=1),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
}


@router.get("/graph")
async def graph_page(
    request: Request,
    tenant: TenantDep,
    store: StoreDep,
    read_log: ReadLogDep,
    range: Literal["1h", "24h", "7d", "30d"] = "7d",
    trace: Annotated[str, Query(max_length=64)] = "",
) -> Response:
    until = datetime.now(timezone.utc)
    with read_errors():
        found = await run_in_threadpool(
            partial(
                graph.agents_graph,
                store,
                tenant,
                since=None if trace else until - GRAPH_RANGES[range],
                until=None if trace else until,
                trace_id=trace.strip() or None,
            )
        )
    await read_log.record([trace] if trace else [n.agent for n in found.nodes], len(found.edges))
    return web.page(
        request,
        "graph.html",
        nav="graph",
        graph=found,
        drawing=graph_layout.layout(found),
        range=range,
        ranges=list(GRAPH_RANGES),
        trace=trace.strip(),
        traces_range="all" if trace else ("30d" if range == "30d" else range),
    )
