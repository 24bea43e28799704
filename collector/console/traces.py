"""The Traces pages: the filtered list (new traces arrive by polling) and one trace in full."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from functools import partial
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from agentledger.collector.console import views, waterfall, web
from agentledger.collector.console.sessions import PREFIX
from agentledger.collector.deps import ReadLogDep, StoreDep, TenantDep, read_errors
from agentledger.pipeline.services import ledger, queries
from agentledger.pipeline.services import waterfall as wf
from agentledger.pipeline.services.trace_search import TraceFilters, facets, search_traces
from agentledger.schemas.analytics import AnomalyType
from agentledger.schemas.read import Span

__all__ = ["ANOMALY_CHOICES", "RANGES", "router"]

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
ANOMALY_CHOICES = ("", "any", *(t.value for t in AnomalyType))
"""The anomaly filter: none, traces any anomaly names as an example, or one kind's."""
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
    anomaly: Annotated[str, Query(max_length=32)] = "",
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> Response:
    """The full page, or (asked by htmx) only its rows: the poll that shows new traces."""
    if anomaly not in ANOMALY_CHOICES:
        raise HTTPException(
            400, f"anomaly must be one of: {', '.join(k or '(none)' for k in ANOMALY_CHOICES)}"
        )
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
        anomaly=anomaly,
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
        "anomaly": anomaly,
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
    return web.page(
        request,
        "traces.html",
        choices=choices,
        ranges=list(RANGES),
        anomaly_kinds=ANOMALY_CHOICES[2:],
        **context,
    )


@router.get("/traces/{trace_id}")
async def trace_page(
    request: Request,
    trace_id: str,
    tenant: TenantDep,
    store: StoreDep,
    read_log: ReadLogDep,
    span: Annotated[str, Query(max_length=16)] = "",
) -> Response:
    """The trace's header, its waterfall (whole, or virtualized past ``waterfall.FULL`` spans)
    and the chosen span's panel: the outline is one narrow read, the chosen span the only one
    read in full."""
    with read_errors():
        found = await run_in_threadpool(
            partial(waterfall.cached_outline, store, tenant, trace_id, fresh=True)
        )
        bars = found.bars
        at = next((i for i, b in enumerate(bars) if b.span_id == span.lower()), 0)
        wanted = bars[at].span_id
        chosen = await run_in_threadpool(wf.span, store, tenant, found.trace_id, wanted)
    panel = await _panel(store, tenant, chosen)
    await read_log.record([found.trace_id, *panel["hashes"]], len(bars))
    virtual = len(bars) > waterfall.FULL
    shown = bars[: waterfall.DRAWN] if virtual else bars
    return web.page(
        request,
        "trace.html",
        trace_id=found.trace_id,
        span_count=len(bars),
        rows=shown,
        virtual=virtual,
        first_rows=[b.as_json() for b in bars[: waterfall.PAGE]] if virtual else [],
        page_size=waterfall.PAGE,
        chosen_index=at,
        chosen=chosen,
        root=found.root,
        started=datetime.fromtimestamp(found.root["start_ns"] / 1e9, tz=timezone.utc),
        total_ms=found.total_ms,
        totals=found.totals,
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
    """One span's panel (htmx swaps it in beside the waterfall): that span alone is read."""
    if len(trace_id) != 32 or len(span_id) != 16:
        raise HTTPException(400, "a trace id is 32 hex digits and a span id 16")
    with read_errors():
        chosen = await run_in_threadpool(wf.span, store, tenant, trace_id, span_id)
    panel = await _panel(store, tenant, chosen)
    await read_log.record([chosen.span_id, *panel["hashes"]], 1)
    return web.page(request, "span_panel.html", chosen=chosen, **panel)


async def _panel(store: StoreDep, tenant: str, span: Span) -> dict[str, Any]:
    """What a span's panel shows beyond the row: its messages, tool I/O and documents' text."""
    hashes = [h for h in (span.input_hash, span.output_hash) if h]
    hashes += [c.arguments_hash for c in span.tool_calls if c.arguments_hash]
    hashes += [d.content_hash for d in span.documents if d.content_hash]
    found = await run_in_threadpool(queries.get_contents, store, tenant, hashes) if hashes else {}

    def text(h: str) -> str | None:
        record = found.get(h)
        return record.get("content") if record else None

    signed = await run_in_threadpool(ledger.signed_leaves, store, tenant, "span", [span.span_id])
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
        "signed": signed,
    }
