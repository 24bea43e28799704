"""The Traces pages: the filtered list (new traces arrive by polling) and one trace in full."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from functools import partial
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from agentledger.collector.console import views, web
from agentledger.collector.console.sessions import PREFIX
from agentledger.collector.deps import ReadLogDep, StoreDep, TenantDep, read_errors
from agentledger.pipeline.services import queries, reads
from agentledger.pipeline.services.trace_search import TraceFilters, facets, search_traces
from agentledger.schemas.read import Span

__all__ = ["RANGES", "router"]

router = APIRouter(prefix=PREFIX)

RANGES: dict[str, timedelta | None] = {
    "1h": timedelta(hours=1),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
    "all": None,
}
"""The time ranges the list offers (the newest traces of the last ...)."""
PAGE = 50
Text = Annotated[str, Query(max_length=512)]


@router.get("/traces")
async def traces_page(
    request: Request,
    tenant: TenantDep,
    store: StoreDep,
    read_log: ReadLogDep,
    range: Literal["1h", "24h", "7d", "30d", "all"] = "7d",
    agent: Text = "",
    principal: Text = "",
    model: Text = "",
    tool: Text = "",
    status: Literal["", "OK", "ERROR"] = "",
    q: Text = "",
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> Response:
    """The full page, or (asked by htmx) only its rows: the poll that shows new traces."""
    window = RANGES[range]
    since = datetime.now(timezone.utc) - window if window is not None else None
    filters = TraceFilters(
        since=since,
        agent=agent.strip(),
        principal=principal.strip(),
        model=model.strip(),
        tool=tool.strip(),
        status=status,
        text=q.strip(),
    )
    found = await run_in_threadpool(
        partial(search_traces, store, tenant, filters, offset=offset, limit=PAGE)
    )
    await read_log.record([t.trace_id for t in found.traces], len(found.traces))
    asked = {
        "range": range,
        "agent": filters.agent,
        "principal": filters.principal,
        "model": filters.model,
        "tool": filters.tool,
        "status": status,
        "q": filters.text,
    }
    filtered = any(v for k, v in asked.items() if k != "range")
    context: dict[str, Any] = {
        "page_of": found,
        "asked": asked,
        "filtered": filtered,
        "nav": "traces",
    }
    if request.headers.get("hx-request") and request.headers.get("hx-target") == "trace-rows":
        return web.page(request, "traces_rows.html", **context)
    choices = await run_in_threadpool(facets, store, tenant, since)
    return web.page(request, "traces.html", choices=choices, ranges=list(RANGES), **context)


@router.get("/traces/{trace_id}")
async def trace_page(
    request: Request,
    trace_id: str,
    tenant: TenantDep,
    store: StoreDep,
    read_log: ReadLogDep,
    span: Annotated[str, Query(max_length=16)] = "",
) -> Response:
    with read_errors():
        detail = await run_in_threadpool(reads.trace, store, tenant, trace_id)
    rows = views.waterfall(detail)
    chosen = next((r.span for r in rows if r.span.span_id == span), rows[0].span)
    panel = await _panel(store, tenant, chosen)
    await read_log.record([detail.trace_id, *panel["hashes"]], len(detail.spans))
    first = rows[0].span
    return web.page(
        request,
        "trace.html",
        detail=detail,
        rows=rows,
        chosen=chosen,
        root=first,
        total_ms=max((r.span.duration_ms for r in rows), default=0),
        totals={
            "input_tokens": sum(s.input_tokens for s in detail.spans),
            "output_tokens": sum(s.output_tokens for s in detail.spans),
            "cost_usd": sum(s.cost_usd for s in detail.spans),
            "errors": sum(1 for s in detail.spans if s.status_code == "ERROR"),
        },
        nav="traces",
        **panel,
    )


@router.get("/traces/{trace_id}/spans/{span_id}")
async def span_panel(
    request: Request,
    trace_id: str,
    span_id: str,
    tenant: TenantDep,
    store: StoreDep,
    read_log: ReadLogDep,
) -> Response:
    """One span's panel (htmx swaps it in beside the waterfall)."""
    with read_errors():
        detail = await run_in_threadpool(reads.trace, store, tenant, trace_id)
    chosen = next((s for s in detail.spans if s.span_id == span_id.lower()), None)
    if chosen is None:
        raise HTTPException(404, f"no span {span_id} in trace {trace_id}")
    panel = await _panel(store, tenant, chosen)
    await read_log.record([chosen.span_id, *panel["hashes"]], 1)
    return web.page(request, "span_panel.html", detail=detail, chosen=chosen, **panel)


async def _panel(store: StoreDep, tenant: str, span: Span) -> dict[str, Any]:
    """What a span's panel shows beyond the row: its messages, tool I/O and documents' text."""
    hashes = [h for h in (span.input_hash, span.output_hash) if h]
    hashes += [c.arguments_hash for c in span.tool_calls if c.arguments_hash]
    hashes += [d.content_hash for d in span.documents if d.content_hash]
    found = await run_in_threadpool(queries.get_contents, store, tenant, hashes) if hashes else {}

    def text(h: str) -> str | None:
        record = found.get(h)
        return record.get("content") if record else None

    kind_in = (found.get(span.input_hash) or {}).get("kind", "")
    kind_out = (found.get(span.output_hash) or {}).get("kind", "")
    return {
        "hashes": sorted(found),
        "input_messages": views.chat_messages(text(span.input_hash))
        if kind_in == "messages"
        else [],
        "output_messages": views.chat_messages(text(span.output_hash))
        if kind_out == "messages"
        else [],
        "input_text": "" if kind_in == "messages" else views.pretty_json(text(span.input_hash)),
        "output_text": "" if kind_out == "messages" else views.pretty_json(text(span.output_hash)),
        "documents": [(d, text(d.content_hash) or "") for d in span.documents],
        "governance": views.governance_facts(span),
        "principal": views.principal_facts(span),
    }
