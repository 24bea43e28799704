"""Audit routes: ledger verification, audit reports, rebuilt requests and drift reports of replays."""

from __future__ import annotations

from datetime import datetime
from functools import partial
from typing import Any, Literal

from fastapi import APIRouter, Body, HTTPException, Query
from fastapi.responses import HTMLResponse, PlainTextResponse
from starlette.concurrency import run_in_threadpool

from agentledger.collector.deps import ActorDep, ReadLogDep, StoreDep, TenantDep, read_errors
from agentledger.collector.routers.params import page_size
from agentledger.pipeline.services import reads
from agentledger.schemas.read import (
    AuditReport,
    LedgerReport,
    RebuiltRequest,
    RebuiltRequests,
    ReplayRun,
    ReplayRunSummary,
    ReplayStored,
)
from agentledger.schemas.read import defaults as D

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["audit"])


def _ledger_key() -> bytes | None:
    from agentledger.pipeline.settings import StoreSettings

    settings = StoreSettings()
    return settings.ledger_key.get_secret_value().encode() if settings.ledger_key else None


@router.get(
    "/ledger/verify",
    summary="Recompute the tenant's tamper-evident ledger",
    response_model=LedgerReport,
)
async def verify_ledger(
    tenant: TenantDep, store: StoreDep, since: str | None = None
) -> LedgerReport:
    return await run_in_threadpool(
        reads.verify_ledger, store, tenant, since=since, key=_ledger_key()
    )


# -- audit reports and replays (agentledger.pipeline.services.audit / .replay) --------------------------------


@router.get(
    "/audit/{ref}",
    summary="What the agent saw before an action, which model version decided, under whose authority",
    response_model=AuditReport,
    responses={
        200: {"content": {"text/markdown": {}, "text/html": {}}},
        400: {},
        404: {},
    },
)
async def audit_report(
    ref: str,
    tenant: TenantDep,
    store: StoreDep,
    read_log: ReadLogDep,
    format: Literal["json", "markdown", "html"] = "json",
    last: bool = Query(False, description="For a trace id: only its last tool call."),
) -> Any:
    """``ref`` is a span id (that action) or a trace id (every tool call in it, or ``last``).
    JSON is the report; markdown and HTML render it."""
    from agentledger.pipeline.services.audit import to_html, to_markdown

    with read_errors():
        report = await run_in_threadpool(reads.audit, store, tenant, ref, last=last)
    await read_log.record([ref], len(report.actions))
    if format == "markdown":
        return PlainTextResponse(
            to_markdown(report.model_dump(mode="json")), media_type="text/markdown; charset=utf-8"
        )
    if format == "html":
        return HTMLResponse(to_html(report.model_dump(mode="json")))
    return report


@router.get(
    "/replay/requests/{span_id}",
    summary="The rebuilt provider request of a recorded LLM call",
    response_model=RebuiltRequest,
    responses={400: {}, 404: {}},
)
async def replay_request(
    span_id: str,
    tenant: TenantDep,
    store: StoreDep,
    read_log: ReadLogDep,
    api: Literal["openai", "anthropic"] | None = Query(
        None, description="Rebuild in this wire format."
    ),
) -> RebuiltRequest:
    with read_errors():
        found = await run_in_threadpool(reads.replay_request, store, tenant, span_id, api=api)
    await read_log.record([span_id], 1)
    return found


@router.get(
    "/replay/requests",
    summary="Rebuilt requests of the recorded LLM calls matching filters",
    response_model=RebuiltRequests,
    responses={400: {}},
)
async def replay_requests(
    tenant: TenantDep,
    store: StoreDep,
    read_log: ReadLogDep,
    agent: str | None = None,
    model: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    tools_only: bool = False,
    limit: int = page_size(D.REPLAY_REQUESTS_LIMIT, D.REPLAY_REQUESTS_MAX),
    api: Literal["openai", "anthropic"] | None = None,
) -> RebuiltRequests:
    with read_errors():
        found = await run_in_threadpool(
            reads.replay_requests,
            store,
            tenant,
            agent=agent,
            model=model,
            since=since,
            until=until,
            tools_only=tools_only,
            limit=limit,
            api=api,
        )
    await read_log.record([r.span_id for r in found.requests], len(found.requests))
    return found


@router.post(
    "/replays",
    summary="Store a drift report (agentledger replay --filter ...)",
    response_model=ReplayStored,
    responses={400: {}, 409: {}},
)
async def store_replay(
    tenant: TenantDep, actor: ActorDep, store: StoreDep, report: dict[str, Any] = Body(...)
) -> ReplayStored:
    from agentledger.pipeline.services.replay import ReportConflict

    try:
        with read_errors():
            return await run_in_threadpool(
                partial(reads.save_replay, store, tenant, report, actor=actor)
            )
    except ReportConflict as exc:  # the run id is stored with another report
        raise HTTPException(409, str(exc)) from exc


@router.get(
    "/replays", summary="Stored drift reports, newest first", response_model=list[ReplayRunSummary]
)
async def list_replays(
    tenant: TenantDep,
    store: StoreDep,
    limit: int = page_size(D.REPLAYS_LIMIT, D.REPLAYS_MAX),
) -> list[ReplayRunSummary]:
    return await run_in_threadpool(reads.replays, store, tenant, limit=limit)


@router.get(
    "/replays/{run_id}",
    summary="One stored drift report with its replayed calls",
    response_model=ReplayRun,
    responses={404: {}},
)
async def get_replay(run_id: str, tenant: TenantDep, store: StoreDep) -> ReplayRun:
    with read_errors():
        return await run_in_threadpool(reads.replay_run, store, tenant, run_id)
