"""Governance API: intents logged before governed tools run, their outcomes, run controls.

``POST /v1/intents`` answers only once the intent is durable (embedded: in the
store; Kafka: acknowledged by the broker, acks=all) and says whether the tool may
run now (``proceed``) or must wait (``paused``, with the control that holds it).
``POST /v1/controls`` pauses or resumes the runs of a trace, session, agent or
principal, recorded with who and why; ``GET /v1/controls`` lists them.

Retries are safe and ids cannot be reused (``pipeline/governance/idempotency``): an intent sent
again with the same id, attempt and request, an outcome sent again, a control sent again with
its ``idempotency_key`` get the first answer (200); another request under the same key, a
second different outcome, or an outcome for an intent never asked get 409.
"""

from __future__ import annotations

import logging
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from agentledger.collector.deps import (
    ActorDep,
    AuthDep,
    GovernanceDep,
    IdentityDep,
    TenantDep,
    read_errors,
)
from agentledger.collector.routers.params import page_size
from agentledger.pipeline.governance import (
    ControlIn,
    ControlOut,
    GovernanceRejected,
    GovernanceUnavailable,
    IntentAck,
    IntentIn,
    OutcomeIn,
)
from agentledger.pipeline.services import reads
from agentledger.schemas.read import ControlList, IntentRecord, OutcomeStored
from agentledger.schemas.read import defaults as D

__all__ = ["router"]

log = logging.getLogger(__name__)

router = APIRouter(tags=["governance"])

ServiceDep = GovernanceDep
IntentId = Annotated[
    str, Path(pattern=r"^[0-9a-f]{32}$", description="Intent id, 32 lowercase hex digits.")
]


def _error(exc: Exception) -> JSONResponse:
    if isinstance(exc, GovernanceRejected):
        return JSONResponse({"detail": str(exc)}, status_code=exc.status)
    retry = max(1, round(getattr(exc, "retry_after", 1) or 1))
    return JSONResponse(
        {"detail": f"not stored, retry later: {exc}"},
        status_code=503,
        headers={"Retry-After": str(retry)},
    )


@router.post(
    "/v1/intents",
    summary="Record a governed tool's intent before it runs; answers proceed or paused",
    response_model=IntentAck,
    response_model_exclude_none=True,
    responses={400: {}, 401: {}, 409: {}, 503: {}},
)
async def ask(intent: IntentIn, identity: IdentityDep, auth: AuthDep, service: ServiceDep) -> Any:
    tenant, actor = identity.tenant, identity.actor
    if identity.agent and intent.agent_name != identity.agent:
        raise HTTPException(403, auth.refuse_agent(identity, intent.agent_name, "an intent"))
    try:
        return await run_in_threadpool(partial(service.ask, tenant, intent, actor=actor))
    except (GovernanceRejected, GovernanceUnavailable) as exc:
        return _error(exc)


@router.post(
    "/v1/intents/{intent_id}/outcome",
    summary="Record what a governed tool returned or raised",
    response_model=OutcomeStored,
    responses={400: {}, 401: {}, 409: {}, 503: {}},
)
async def outcome(
    intent_id: IntentId, body: OutcomeIn, tenant: TenantDep, actor: ActorDep, service: ServiceDep
) -> Any:
    try:
        await run_in_threadpool(partial(service.outcome, tenant, intent_id, body, actor=actor))
    except (GovernanceRejected, GovernanceUnavailable) as exc:
        return _error(exc)
    return OutcomeStored(intent_id=intent_id, stored=True)


@router.get(
    "/v1/intents",
    summary="Recent intents with their outcomes, newest first",
    response_model=list[IntentRecord],
    responses={404: {}},
)
def list_intents(
    tenant: TenantDep,
    service: ServiceDep,
    trace_id: str | None = None,
    session_id: str | None = None,
    tool_name: str | None = None,
    limit: int = page_size(D.INTENTS_LIMIT, D.INTENTS_MAX),
) -> list[IntentRecord]:
    try:
        return reads.intents(
            service,
            tenant,
            trace_id=trace_id,
            session_id=session_id,
            tool_name=tool_name,
            limit=limit,
        )
    except GovernanceUnavailable as exc:
        raise HTTPException(404, str(exc)) from exc


@router.get(
    "/v1/intents/{intent_id}",
    summary="One intent with its outcome",
    response_model=IntentRecord,
    responses={404: {}},
)
def get_intent(intent_id: IntentId, tenant: TenantDep, service: ServiceDep) -> IntentRecord:
    try:
        with read_errors():
            return reads.intent(service, tenant, intent_id)
    except GovernanceUnavailable as exc:
        raise HTTPException(404, str(exc)) from exc


@router.post(
    "/v1/controls",
    summary="Pause or resume the runs of a trace, session, agent or principal",
    response_model=ControlOut,
    responses={400: {}, 401: {}, 409: {}, 503: {}},
)
def set_control(control: ControlIn, tenant: TenantDep, actor: ActorDep, service: ServiceDep) -> Any:
    try:
        return service.control(tenant, control, actor=actor)
    except (GovernanceRejected, GovernanceUnavailable) as exc:
        return _error(exc)


@router.get(
    "/v1/controls",
    summary="Pauses in force (or, with all=true, every control event), newest first",
    response_model=ControlList,
    responses={503: {}},
)
def list_controls(
    tenant: TenantDep,
    service: ServiceDep,
    all: bool = Query(False, description="Every pause and resume, not only the pauses in force."),
    limit: int = page_size(D.CONTROLS_LIMIT, D.CONTROLS_MAX),
) -> Any:
    try:
        return reads.controls(service, tenant, everything=all, limit=limit)
    except GovernanceUnavailable as exc:
        return _error(exc)
