"""Audit routes: ledger verification, audit reports, rebuilt requests and drift reports of replays."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Body, HTTPException, Query
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool

from agentledger.collector.deps import StoreDep, TenantDep

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["audit"])


@router.get("/ledger/verify", summary="Recompute the tenant's tamper-evident ledger")
async def verify_ledger(
    tenant: TenantDep, store: StoreDep, since: str | None = None
) -> dict[str, Any]:
    from agentledger.pipeline.derive.ledger import verify
    from agentledger.pipeline.settings import StoreSettings

    settings = StoreSettings()
    key = settings.ledger_key.get_secret_value().encode() if settings.ledger_key else None
    report = await run_in_threadpool(verify, store, tenant, key=key, since=since)
    return report.as_dict()


# -- audit reports and replays (agentledger.pipeline.services.audit / .replay) --------------------------------


@router.get(
    "/audit/{ref}",
    summary="What the agent saw before an action, which model version decided, under whose authority",
    responses={400: {}, 404: {}},
)
async def audit_report(
    ref: str,
    tenant: TenantDep,
    store: StoreDep,
    format: Literal["json", "markdown", "html"] = "json",
    last: bool = Query(False, description="For a trace id: only its last tool call."),
) -> Response:
    """``ref`` is a span id (that action) or a trace id (every tool call in it, or ``last``)."""
    from agentledger.pipeline.services import audit

    try:
        result = await run_in_threadpool(audit.audit, store, tenant, ref, last=last)
    except audit.AuditNotFound as exc:
        raise HTTPException(404, str(exc)) from exc
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from exc
    if format == "markdown":
        return PlainTextResponse(
            audit.to_markdown(result), media_type="text/markdown; charset=utf-8"
        )
    if format == "html":
        return HTMLResponse(audit.to_html(result))
    return JSONResponse(result)


@router.get(
    "/replay/requests/{span_id}",
    summary="The rebuilt provider request of a recorded LLM call",
    responses={400: {}, 404: {}},
)
async def replay_request(
    span_id: str,
    tenant: TenantDep,
    store: StoreDep,
    api: Literal["openai", "anthropic"] | None = Query(
        None, description="Rebuild in this wire format."
    ),
) -> dict[str, Any]:
    from agentledger.pipeline.services import replay

    try:
        rebuilt = await run_in_threadpool(replay.rebuild_request, store, tenant, span_id, api=api)
    except replay.ReplayNotFound as exc:
        raise HTTPException(404, str(exc)) from exc
    except replay.ReplayError as exc:
        raise HTTPException(400, str(exc)) from exc
    return rebuilt.as_dict()


@router.get(
    "/replay/requests", summary="Rebuilt requests of the recorded LLM calls matching filters"
)
async def replay_requests(
    tenant: TenantDep,
    store: StoreDep,
    agent: str | None = None,
    model: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    tools_only: bool = False,
    limit: int = Query(50, ge=1, le=10_000),
    api: Literal["openai", "anthropic"] | None = None,
) -> dict[str, Any]:
    from agentledger.pipeline.services import replay

    def run() -> dict[str, Any]:
        ids = replay.select_calls(
            store,
            tenant,
            agent=agent,
            model=model,
            since=since,
            until=until,
            tools_only=tools_only,
            limit=limit,
        )
        errors: list[dict[str, str]] = []  # e.g. content capture was off: skipped, with the reason
        rebuilt = replay.rebuild_requests(store, tenant, ids, api=api, errors=errors)
        return {"requests": [r.as_dict() for r in rebuilt], "skipped": errors}

    return await run_in_threadpool(run)


@router.post(
    "/replays",
    summary="Store a drift report (agentledger replay --filter ...)",
    responses={400: {}},
)
async def store_replay(
    tenant: TenantDep, store: StoreDep, report: dict[str, Any] = Body(...)
) -> dict[str, Any]:
    from agentledger.pipeline.services import replay

    try:
        drift = replay.DriftReport.from_dict(report, tenant=tenant)
    except (KeyError, TypeError, ValueError) as exc:
        raise HTTPException(400, f"not a drift report: {exc!r}") from exc
    await run_in_threadpool(replay.save_report, store, drift)
    return {"run_id": drift.run_id, "stored": True, "summary": drift.summary}


@router.get("/replays", summary="Stored drift reports, newest first")
async def list_replays(
    tenant: TenantDep, store: StoreDep, limit: int = Query(20, ge=1, le=1000)
) -> list[dict[str, Any]]:
    from agentledger.pipeline.services import replay

    return await run_in_threadpool(replay.list_reports, store, tenant, limit)


@router.get(
    "/replays/{run_id}",
    summary="One stored drift report with its replayed calls",
    responses={404: {}},
)
async def get_replay(run_id: str, tenant: TenantDep, store: StoreDep) -> dict[str, Any]:
    from agentledger.pipeline.services import replay

    found = await run_in_threadpool(replay.get_report, store, tenant, run_id)
    if found is None:
        raise HTTPException(404, f"no replay run {run_id} for tenant {tenant!r}")
    return found
