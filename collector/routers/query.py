"""Read API: recent traces, one trace as a tree, content records by hash."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Query
from starlette.concurrency import run_in_threadpool

from agentledger.collector.deps import StoreDep, TenantDep, read_errors
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
    limit: int = Query(D.TRACES_LIMIT, ge=1, le=D.TRACES_MAX),
    since: datetime | None = None,
    service: str | None = None,
) -> list[TraceSummary]:
    with read_errors():
        return await run_in_threadpool(
            reads.traces, store, tenant, limit=limit, since=since, service=service
        )


@router.get(
    "/traces/{trace_id}",
    summary="Every span of one trace, as a list and a tree",
    response_model=TraceDetail,
    responses={400: {}, 404: {}},
)
async def get_trace(trace_id: str, tenant: TenantDep, store: StoreDep) -> TraceDetail:
    with read_errors():
        return await run_in_threadpool(reads.trace, store, tenant, trace_id)


@router.get(
    "/contents/{content_hash}",
    summary="A content record by its SHA-256",
    response_model=Content,
    responses={404: {}},
)
async def get_content(content_hash: str, tenant: TenantDep, store: StoreDep) -> Content:
    with read_errors():
        return await run_in_threadpool(reads.content, store, tenant, content_hash)
