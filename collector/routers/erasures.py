"""The data's lifecycle: ``POST /api/v1/erasures`` erases a data subject's content (GDPR art. 17,
admin only); ``/api/v1/retention`` and ``/api/v1/holds`` set the tenant's retention and its legal
holds (admin; auditors may read them).

The tenant and the actor recorded in the ledger come from the admin key; the body names only the
subject and the reason. The call returns once every copy of the text is gone (the store's
mutations are awaited), which takes seconds on a large store.
"""

from __future__ import annotations

from functools import partial

from fastapi import APIRouter, HTTPException
from starlette.concurrency import run_in_threadpool

from agentledger.collector.deps import IdentityDep, StoreDep, TenantDep
from agentledger.pipeline.services.erasure import erase, parse_subject
from agentledger.pipeline.services.retention import (
    HoldNotFound,
    add_hold,
    list_holds,
    release_hold,
    retention_policy,
    set_retention,
)
from agentledger.schemas.read.erasures import (
    ErasureRequest,
    ErasureResult,
    HoldList,
    LegalHold,
    NewHold,
    RetentionChange,
    RetentionPolicy,
)

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["erasure and retention"])


@router.post(
    "/erasures",
    summary="Erase every copy of a subject's content; the erasure is recorded in the ledger",
    response_model=ErasureResult,
    status_code=201,
    responses={400: {}},
)
async def create_erasure(
    body: ErasureRequest, identity: IdentityDep, store: StoreDep
) -> ErasureResult:
    try:
        subject = parse_subject(body.subject)
        return await run_in_threadpool(
            partial(erase, store, identity.tenant, subject, body.reason, actor=identity.actor)
        )
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from exc


# -- retention and legal holds (pipeline/services/retention) ---------------------------------------


@router.get(
    "/retention",
    summary="The caller's tenant's retention (days; 0 keeps everything)",
    response_model=RetentionPolicy,
)
async def get_retention(tenant: TenantDep, store: StoreDep) -> RetentionPolicy:
    return await run_in_threadpool(partial(retention_policy, store, tenant))


@router.put(
    "/retention",
    summary="Set the caller's tenant's retention; the background job prunes with it",
    response_model=RetentionPolicy,
)
async def put_retention(
    body: RetentionChange, identity: IdentityDep, store: StoreDep
) -> RetentionPolicy:
    return await run_in_threadpool(
        partial(set_retention, store, identity.tenant, body.days, actor=identity.actor)
    )


@router.get(
    "/holds",
    summary="The caller's tenant's legal holds (released ones with released=true)",
    response_model=HoldList,
)
async def get_holds(tenant: TenantDep, store: StoreDep, released: bool = False) -> HoldList:
    return await run_in_threadpool(partial(list_holds, store, tenant, released=released))


@router.post(
    "/holds",
    summary="Place a legal hold on a trace, session or principal: retention prunes none of it",
    response_model=LegalHold,
    status_code=201,
    responses={400: {}},
)
async def post_hold(body: NewHold, identity: IdentityDep, store: StoreDep) -> LegalHold:
    try:
        return await run_in_threadpool(
            partial(
                add_hold,
                store,
                identity.tenant,
                body.scope,
                body.target,
                body.reason,
                actor=identity.actor,
            )
        )
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from exc


@router.delete(
    "/holds/{hold_id}",
    summary="Release a legal hold: the next retention pass may prune what it kept",
    response_model=LegalHold,
    responses={404: {}},
)
async def delete_hold(hold_id: str, identity: IdentityDep, store: StoreDep) -> LegalHold:
    try:
        return await run_in_threadpool(
            partial(release_hold, store, identity.tenant, hold_id, actor=identity.actor)
        )
    except HoldNotFound as exc:
        raise HTTPException(404, str(exc)) from exc
