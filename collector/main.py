"""Assembles the collector app; nothing else happens here."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI

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
from agentledger.collector.settings import CollectorSettings
from agentledger.pipeline.sinks import Sink
from agentledger.pipeline.store import Store

__all__ = ["create_app"]


def create_app(
    settings: CollectorSettings,
    sink: Sink,
    store: Store | None = None,
    on_shutdown: Callable[[], None] | None = None,
    *,
    store_gates_readiness: bool = True,
) -> FastAPI:
    """The collector: OTLP ingest into ``sink``; the read API too when ``store`` is given.

    ``store_gates_readiness``: the store is where ingest lands (embedded), so
    ``/readyz`` requires it; False when it only serves reads (Kafka mode).
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        sink.close()
        if on_shutdown is not None:
            on_shutdown()

    app = FastAPI(
        **_no_self_telemetry(),
        title="AgentLedger collector",
        summary="OTLP/HTTP traces in; audit-grade records of every agent action out.",
        version=_version(),
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.sink = sink
    app.state.store = store
    app.state.store_gates_readiness = store_gates_readiness
    app.state.auth = Authenticator(
        settings.key_table(), no_auth=settings.no_auth, default_tenant=settings.default_tenant
    )
    app.include_router(health.router)
    app.include_router(traces.router)
    app.include_router(query.router)
    app.include_router(governance.router)
    app.include_router(analytics.router)
    app.include_router(feedback.router)
    app.include_router(audit.router)
    return app


def _no_self_telemetry() -> dict[str, object]:
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
