"""Administration of API keys, and the access log.

An admin key manages the keys of its own tenant: a key for another tenant, or the first admin key
of a store, is made with ``agentledger keys create`` on the store. Listing the keys is itself a
read the access log records; the access log is read by auditors and admins.
"""

from __future__ import annotations

from functools import partial

from fastapi import APIRouter, HTTPException
from starlette.concurrency import run_in_threadpool

from agentledger.collector.deps import (
    AuthDep,
    IdentityDep,
    KeyBookDep,
    ReadLogDep,
    StoreDep,
    TenantDep,
)
from agentledger.collector.routers.params import page_size
from agentledger.pipeline.services.access import KeyConflict, KeyNotFound, read_access_log
from agentledger.schemas.read import AccessLog, ApiKeyCreated, ApiKeyInfo, ApiKeyList, NewApiKey
from agentledger.schemas.read import defaults as D

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["access"])


@router.post(
    "/keys",
    summary="Create an API key in the caller's tenant; the answer holds its secret, once",
    response_model=ApiKeyCreated,
    status_code=201,
    responses={400: {}, 409: {}},
)
async def create_key(
    body: NewApiKey, identity: IdentityDep, keys: KeyBookDep, auth: AuthDep
) -> ApiKeyCreated:
    if body.tenant is not None and body.tenant != identity.tenant:
        raise HTTPException(
            403,
            f"an admin key makes keys of its own tenant ({identity.tenant!r}); make a key of "
            f"{body.tenant!r} with 'agentledger keys create' on the store, or with its admin key",
        )
    try:
        created = await run_in_threadpool(
            partial(
                keys.create,
                identity.tenant,
                body.role,
                body.name,
                agent=body.agent,
                actor=identity.actor,
            )
        )
    except KeyConflict as exc:
        raise HTTPException(409, str(exc)) from exc
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from exc
    await run_in_threadpool(auth.refresh)  # this replica at once; the others within 10 s
    return created


@router.get(
    "/keys",
    summary="The API keys of the caller's tenant, active and revoked (never a secret)",
    response_model=ApiKeyList,
)
async def list_keys(
    tenant: TenantDep, keys: KeyBookDep, read_log: ReadLogDep, auth: AuthDep
) -> ApiKeyList:
    found = await run_in_threadpool(keys.list_keys, tenant)
    await read_log.record([k.name for k in found], len(found))
    refused = auth.refusals()
    return ApiKeyList(
        keys=[k.info().model_copy(update={"refused_here": refused.get(k.name, 0)}) for k in found]
    )


@router.delete(
    "/keys/{name}",
    summary="Revoke an API key of the caller's tenant; every replica refuses it within 10 s",
    response_model=ApiKeyInfo,
    responses={404: {}},
)
async def revoke_key(
    name: str, identity: IdentityDep, keys: KeyBookDep, auth: AuthDep
) -> ApiKeyInfo:
    try:
        key = await run_in_threadpool(
            partial(keys.revoke, name, actor=identity.actor, tenant=identity.tenant)
        )
    except KeyNotFound as exc:
        raise HTTPException(404, str(exc)) from exc
    await run_in_threadpool(auth.refresh)  # this replica at once; the others within 10 s
    return key.info()


@router.get(
    "/access-log",
    summary="Reads of content, newest first, with the check of every writer's chain",
    response_model=AccessLog,
    responses={400: {}},
)
async def access_log(
    tenant: TenantDep,
    store: StoreDep,
    limit: int = page_size(D.ACCESS_LOG_LIMIT, D.ACCESS_LOG_MAX),
    key: str | None = None,
) -> AccessLog:
    return await run_in_threadpool(
        partial(read_access_log, store, tenant, limit=limit, key_name=key)
    )
