"""Assembles the collector app; nothing else happens here."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from agentledger.collector.auth import Authenticator
from agentledger.collector.routers import (
    analytics,
    audit,
    feedback,
    governance,
    health,
    query,
    traces,
)
from agentledger.collector.services import EdgeServices
from agentledger.collector.settings import CollectorSettings
from agentledger.pipeline.store import StoreUnavailable

__all__ = ["create_app"]


def create_app(settings: CollectorSettings, services: EdgeServices) -> FastAPI:
    """The collector app over ``services`` (built by ``agentledger.compose``), closed on shutdown."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        services.close()

    app = FastAPI(
        **_no_self_telemetry(),
        title="AgentLedger collector",
        summary="OTLP/HTTP traces in; audit-grade records of every agent action out.",
        version=_version(),
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.services = services
    app.state.auth = Authenticator(
        settings.key_table(), no_auth=settings.no_auth, default_tenant=settings.default_tenant
    )
    for router in (health, traces, query, governance, analytics, feedback, audit):
        app.include_router(router.router)
    app.add_exception_handler(StoreUnavailable, _store_unavailable)
    return app


async def _store_unavailable(request: Request, exc: Exception) -> JSONResponse:
    """Any route whose store is down answers 503 with Retry-After, the client's cue to retry."""
    return JSONResponse(
        {"detail": f"store unavailable: {exc}"}, status_code=503, headers={"Retry-After": "5"}
    )


def _no_self_telemetry() -> dict[str, Any]:
    """FastAPI's native OpenTelemetry off: the collector must not trace its own requests
    into the global provider an instrumented process may have (that would export the
    export, in a loop). Older FastAPI has no such option and no such traces."""
    import inspect

    if "telemetry" in inspect.signature(FastAPI).parameters:
        return {"telemetry": {"tracing": False, "metrics": False, "logs": False}}
    return {}


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("agentledger")
    except PackageNotFoundError:
        return "0+unknown"
