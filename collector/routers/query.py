"""Read API: recent traces, one trace as a tree, content records by hash."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, HTTPException, Query
from starlette.concurrency import run_in_threadpool

from agentledger.collector.deps import StoreDep, TenantDep
from agentledger.pipeline.services import queries

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["query"])


@router.get("/traces", summary="Recent traces, newest first")
async def list_traces(
    tenant: TenantDep,
    store: StoreDep,
    limit: int = Query(20, ge=1, le=1000),
    since: datetime | None = None,
    service: str | None = None,
) -> list[dict[str, Any]]:
    return await run_in_threadpool(
        queries.list_traces, store, tenant, limit=limit, since=since, service=service
    )


@router.get("/traces/{trace_id}", summary="Every span of one trace, as a list and a tree")
async def get_trace(trace_id: str, tenant: TenantDep, store: StoreDep) -> dict[str, Any]:
    if len(trace_id) != 32 or any(c not in "0123456789abcdefABCDEF" for c in trace_id):
        raise HTTPException(400, f"trace id {trace_id!r} must be 32 hex digits")
    spans = await run_in_threadpool(queries.get_trace, store, tenant, trace_id)
    if not spans:
        raise HTTPException(404, f"no trace {trace_id} for this tenant")
    return {"trace_id": trace_id.lower(), "spans": spans, "tree": queries.trace_tree(spans)}


@router.get("/contents/{content_hash}", summary="A content record by its SHA-256")
async def get_content(content_hash: str, tenant: TenantDep, store: StoreDep) -> dict[str, Any]:
    found = await run_in_threadpool(queries.get_contents, store, tenant, [content_hash.lower()])
    if not found:
        raise HTTPException(404, f"no content {content_hash} for this tenant")
    return next(iter(found.values()))
