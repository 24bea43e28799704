"""FastAPI dependencies as ``Annotated`` aliases: the only way routers reach a service."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

from fastapi import Depends, Header, HTTPException, Request
from starlette.concurrency import run_in_threadpool

from agentledger.collector.auth import Authenticator, AuthError, Identity
from agentledger.collector.services import EdgeServices
from agentledger.collector.settings import CollectorSettings
from agentledger.pipeline.governance import GovernanceService, GovernanceUnavailable
from agentledger.pipeline.services.datasets.feedback import FeedbackLog, FeedbackUnavailable
from agentledger.pipeline.services.reads import ReadNotFound, ReadRejected
from agentledger.pipeline.sinks import Sink
from agentledger.pipeline.store import Store

__all__ = [
    "ActorDep",
    "FeedbackLogDep",
    "GovernanceDep",
    "ServicesDep",
    "SettingsDep",
    "SinkDep",
    "StoreDep",
    "TenantDep",
    "read_errors",
]


def _settings(request: Request) -> CollectorSettings:
    return request.app.state.settings  # type: ignore[no-any-return]


def _services(request: Request) -> EdgeServices:
    return request.app.state.services  # type: ignore[no-any-return]


def _sink(services: Annotated[EdgeServices, Depends(_services)]) -> Sink:
    return services.sink


def _store(services: Annotated[EdgeServices, Depends(_services)]) -> Store:
    if services.store is None:
        raise HTTPException(404, "this collector has no store attached; query the pipeline's store")
    return services.store


async def _governance(services: Annotated[EdgeServices, Depends(_services)]) -> GovernanceService:
    if services.governance is None:
        raise HTTPException(
            503, "this collector has neither a Kafka sink nor a store to record intents in"
        )
    built = services.governance.peek()
    if built is not None:
        return built
    try:
        return await run_in_threadpool(services.governance.get)
    except GovernanceUnavailable as exc:
        raise HTTPException(503, str(exc), headers={"Retry-After": "5"}) from exc


async def _feedback_log(services: Annotated[EdgeServices, Depends(_services)]) -> FeedbackLog:
    if services.feedback is None:
        raise HTTPException(
            503,
            "this collector has neither Kafka nor a store to keep feedback in",
            headers={"Retry-After": "2"},
        )
    built = services.feedback.peek()
    if built is not None:
        return built
    try:
        return await run_in_threadpool(services.feedback.get)
    except FeedbackUnavailable as exc:
        raise HTTPException(503, str(exc), headers={"Retry-After": "2"}) from exc


def _identity(
    request: Request,
    authorization: Annotated[str | None, Header()] = None,
    x_api_key: Annotated[str | None, Header()] = None,
) -> Identity:
    """Resolved once per request (FastAPI caches it); the tenant and actor come from it."""
    auth: Authenticator = request.app.state.auth
    try:
        return auth.identify(authorization, x_api_key)
    except AuthError as exc:
        raise HTTPException(401, str(exc), headers={"WWW-Authenticate": "Bearer"}) from exc


def _tenant(identity: Annotated[Identity, Depends(_identity)]) -> str:
    return identity.tenant


def _actor(identity: Annotated[Identity, Depends(_identity)]) -> str:
    return identity.actor


SettingsDep = Annotated[CollectorSettings, Depends(_settings)]
ServicesDep = Annotated[EdgeServices, Depends(_services)]
SinkDep = Annotated[Sink, Depends(_sink)]
StoreDep = Annotated[Store, Depends(_store)]
GovernanceDep = Annotated[GovernanceService, Depends(_governance)]
FeedbackLogDep = Annotated[FeedbackLog, Depends(_feedback_log)]
TenantDep = Annotated[str, Depends(_tenant)]
ActorDep = Annotated[str, Depends(_actor)]
"""Who sent the request, recorded on every record it writes (the API key's id, or ``api``)."""


@contextmanager
def read_errors() -> Iterator[None]:
    """A read service's errors as HTTP answers: not found 404, rejected 400."""
    try:
        yield
    except ReadNotFound as exc:
        raise HTTPException(404, str(exc)) from exc
    except ReadRejected as exc:
        raise HTTPException(400, str(exc)) from exc
