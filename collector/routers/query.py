"""Read API: recent traces, one trace as a tree, content records by hash."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from agentledger.collector.deps import ReadLogDep, StoreDep, TenantDep, read_errors
from agentledger.collector.routers.params import page_size
from agentledger.pipeline.services import reads
from agentledger.schemas.read import Content, TraceDetail, TraceSummary
from agentledger.schemas.read import defaults as D

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["query"])


@router.get(
    "/traces",
    summary="Recent traces, newest first",
    response_model=list[TraceSummary],
    responses={400: {}},
)
async def list_traces(
    tenant: TenantDep,
    store: StoreDep,
    read_log: ReadLogDep,
    limit: int = page_size(D.TRACES_LIMIT, D.TRACES_MAX),
    since: datetime | None = None,
    service: str | None = None,
) -> list[TraceSummary]:
    with read_errors():
        found = await run_in_threadpool(
            reads.traces, store, tenant, limit=limit, since=since, service=service
        )
    await read_log.record([t.trace_id for t in found], len(found))
    return found


@router.get(
    "/traces/{trace_id}",
    summary="Every span of one trace, as a list and a tree",
    response_model=TraceDetail,
    responses={400: {}, 404: {}},
)
async def get_trace(
    trace_id: str, tenant: TenantDep, store: StoreDep, read_log: ReadLogDep
) -> TraceDetail:
    with read_errors():
        found = await run_in_threadpool(reads.trace, store, tenant, trace_id)
    await read_log.record([trace_id], len(found.spans))
    return found


@router.get(
    "/contents/{content_hash}",
    summary="A content record by its SHA-256",
    response_model=Content,
    responses={404: {}},
)
async def get_content(
    content_hash: str, tenant: TenantDep, store: StoreDep, read_log: ReadLogDep
) -> Content:
    with read_errors():
        found = await run_in_threadpool(reads.content, store, tenant, content_hash)
    await read_log.record([content_hash], 1)
    return found
