"""FastAPI dependencies as ``Annotated`` aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, HTTPException, Request

from agentledger.collector.auth import Authenticator, AuthError
from agentledger.collector.settings import CollectorSettings
from agentledger.pipeline.sinks import Sink
from agentledger.pipeline.store import Store

__all__ = ["SettingsDep", "SinkDep", "StoreDep", "TenantDep"]


def _settings(request: Request) -> CollectorSettings:
    return request.app.state.settings  # type: ignore[no-any-return]


def _sink(request: Request) -> Sink:
    return request.app.state.sink  # type: ignore[no-any-return]


def _store(request: Request) -> Store:
    store = request.app.state.store
    if store is None:
        raise HTTPException(404, "this collector has no store attached; query the pipeline's store")
    return store  # type: ignore[no-any-return]


def _tenant(
    request: Request,
    authorization: Annotated[str | None, Header()] = None,
    x_api_key: Annotated[str | None, Header()] = None,
) -> str:
    auth: Authenticator = request.app.state.auth
    try:
        return auth.tenant(authorization, x_api_key)
    except AuthError as exc:
        raise HTTPException(401, str(exc), headers={"WWW-Authenticate": "Bearer"}) from exc


SettingsDep = Annotated[CollectorSettings, Depends(_settings)]
SinkDep = Annotated[Sink, Depends(_sink)]
StoreDep = Annotated[Store, Depends(_store)]
TenantDep = Annotated[str, Depends(_tenant)]
