"""FastAPI dependencies as ``Annotated`` aliases: the only way routers reach a service."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from starlette.concurrency import run_in_threadpool

from agentledger.collector.auth import Authenticator, Identity
from agentledger.collector.policy import identity_of, route_template
from agentledger.collector.services import EdgeServices
from agentledger.collector.settings import CollectorSettings
from agentledger.pipeline.governance import GovernanceService, GovernanceUnavailable
from agentledger.pipeline.services.access import AccessRecorder, KeyBook
from agentledger.pipeline.services.datasets.feedback import FeedbackLog, FeedbackUnavailable
from agentledger.pipeline.services.reads import ReadNotFound, ReadRejected
from agentledger.pipeline.sinks import Sink
from agentledger.pipeline.store import Store

__all__ = [
    "ActorDep",
    "AuthDep",
    "FeedbackLogDep",
    "GovernanceDep",
    "IdentityDep",
    "KeyBookDep",
    "ReadLog",
    "ReadLogDep",
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


async def _identity(request: Request) -> Identity:
    """Resolved once per request (by the app-wide guard, ``policy.authorize``); the tenant and
    actor come from it, never from a body."""
    return await identity_of(request)


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
IdentityDep = Annotated[Identity, Depends(_identity)]
TenantDep = Annotated[str, Depends(_tenant)]
ActorDep = Annotated[str, Depends(_actor)]
"""Who sent the request, recorded on every record it writes (the API key's name, or ``api``)."""


class ReadLog:
    """Logs this request's read of content in the access log (``services.access``): call
    ``record`` with what was read before the answer leaves; a failed entry fails the read."""

    def __init__(
        self, recorder: AccessRecorder | None, identity: Identity, method: str, route: str
    ) -> None:
        self._recorder, self._identity = recorder, identity
        self._method, self._route = method, route

    async def record(self, object_ids: Sequence[str], rows: int) -> None:
        if self._recorder is None:
            return
        await run_in_threadpool(
            partial(
                self._recorder.record,
                self._identity.tenant,
                key_name=self._identity.actor,
                role=self._identity.role.value,
                method=self._method,
                route=self._route,
                object_ids=object_ids,
                rows=rows,
            )
        )


def _read_log(
    request: Request,
    identity: Annotated[Identity, Depends(_identity)],
    services: Annotated[EdgeServices, Depends(_services)],
) -> ReadLog:
    return ReadLog(services.access, identity, request.method, route_template(request))


def _auth(request: Request) -> Authenticator:
    return request.app.state.auth  # type: ignore[no-any-return]


def _key_book(services: Annotated[EdgeServices, Depends(_services)]) -> KeyBook:
    if services.keys is None:
        raise HTTPException(
            404, "this collector has no store, so no key book: its keys are its configuration"
        )
    return services.keys


ReadLogDep = Annotated[ReadLog, Depends(_read_log)]
KeyBookDep = Annotated[KeyBook, Depends(_key_book)]
AuthDep = Annotated[Authenticator, Depends(_auth)]
"""The process's key table (re-read at once after a key changes here)."""


@contextmanager
def read_errors() -> Iterator[None]:
    """A read service's errors as HTTP answers: not found 404, rejected 400."""
    try:
        yield
    except ReadNotFound as exc:
        raise HTTPException(404, str(exc)) from exc
    except ReadRejected as exc:
        raise HTTPException(400, str(exc)) from exc
