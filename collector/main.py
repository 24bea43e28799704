"""Assembles the collector app; nothing else happens here.

Errors: on an OTLP route (``otlp.OTLP_PATHS``) every 4xx/5xx, whoever raised it (the API-key
dependency, the body limit, request validation, a store outage, a bug), is a
``google.rpc.Status`` in the request's encoding; elsewhere FastAPI's JSON ``{"detail": ...}``.
A 429 or 503 always carries ``Retry-After``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exception_handlers import (
    http_exception_handler,
    request_validation_exception_handler,
)
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.exceptions import HTTPException

from agentledger.collector import otlp
from agentledger.collector.auth import Authenticator
from agentledger.collector.console import routes as console
from agentledger.collector.limits import BodyLimit, ConcurrencyLimit
from agentledger.collector.metrics import RequestMetrics, install_metrics
from agentledger.collector.policy import authorize, missing_routes
from agentledger.collector.routers import (
    analytics,
    audit,
    clickhouse,
    erasures,
    feedback,
    governance,
    health,
    keys,
    ledger,
    logs,
    query,
    traces,
)
from agentledger.collector.services import EdgeServices
from agentledger.collector.settings import CollectorSettings
from agentledger.pipeline.sinks.logs import LogSink
from agentledger.pipeline.store import StoreUnavailable

__all__ = ["create_app"]


def create_app(
    settings: CollectorSettings, services: EdgeServices, *, log_sink: LogSink | None = None
) -> FastAPI:
    """The collector app over ``services`` (built by ``agentledger.compose``), closed on shutdown;
    ``log_sink``: where ``POST /v1/logs`` hands log records (None: that route answers 404)."""

    try:
        auth = Authenticator(
            settings.key_table(),
            no_auth=settings.no_auth,
            default_tenant=settings.default_tenant,
            source=services.keys.active if services.keys is not None else None,
            refresh_s=settings.keys_refresh_s,
        )
    except ValueError:
        services.close()  # no key to serve with: stop what was started, so the process ends
        raise

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        stop_refreshing = auth.start()
        try:
            yield
        finally:
            stop_refreshing()
            services.close()

    app = FastAPI(
        **_no_self_telemetry(),
        dependencies=[Depends(authorize)],
        title="AgentLedger collector",
        summary="OTLP/HTTP traces in; audit-grade records of every agent action out.",
        version=_version(),
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.services = services
    app.state.auth = auth
    app.state.export_gate = ConcurrencyLimit(settings.max_concurrent_exports)
    app.state.log_sink = log_sink
    for router in (
        health,
        traces,
        logs,
        query,
        governance,
        analytics,
        feedback,
        audit,
        ledger,
        keys,
        erasures,
    ):
        app.include_router(router.router)
    app.state.console_sessions = console.SessionBook()
    app.include_router(console.router)  # the web console, at / (collector/console)
    app.include_router(clickhouse.router)  # read-only SQL, ClickHouse's HTTP interface
    metrics = install_metrics(app, services)
    unguarded = missing_routes(app.routes)
    if unguarded:
        raise RuntimeError(f"routes without an access rule in collector/policy.py: {unguarded}")
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestMetrics, metrics=metrics)  # last added: outermost, counts all
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StoreUnavailable, _store_unavailable)
    app.add_exception_handler(Exception, _internal_error)
    return app


def _otlp_media(request: Request) -> str | None:
    """The error encoding of an OTLP route's request; None off the OTLP routes."""
    if request.scope["path"] not in otlp.OTLP_PATHS:
        return None
    return otlp.error_media(request.headers.get("content-type"))


def _retry_headers(request: Request, status: int, headers: dict[str, str]) -> dict[str, str]:
    if status in (429, 503) and not any(k.lower() == "retry-after" for k in headers):
        settings: CollectorSettings = request.app.state.settings
        headers["Retry-After"] = str(settings.retry_after_seconds)
    return headers


async def _http_error(request: Request, exc: Exception) -> Response:
    """An ``HTTPException`` (401 from the API-key dependency, 413/415 from the body limit, 404
    and 405 from routing...): a Status on OTLP routes, FastAPI's JSON elsewhere."""
    assert isinstance(exc, HTTPException)
    if console.owns(request):  # a browser: the reason as a page (401: the sign-in form)
        return console.error_page(request, exc.status_code, str(exc.detail))
    headers = _retry_headers(request, exc.status_code, dict(exc.headers or {}))
    media = _otlp_media(request)
    if media is not None:
        return otlp.error_response(exc.status_code, str(exc.detail), media, headers)
    return await http_exception_handler(
        request, HTTPException(exc.status_code, exc.detail, headers or None)
    )


async def _validation_error(request: Request, exc: Exception) -> Response:
    """Request validation: FastAPI's 422 elsewhere; on OTLP routes a 400 Status (OTLP/HTTP
    has no 422) naming each problem."""
    assert isinstance(exc, RequestValidationError)
    if console.owns(request):  # a page: a 400 naming each bad field
        return console.error_page(request, 400, _problems(exc))
    media = _otlp_media(request)
    if media is None:
        return await request_validation_exception_handler(request, exc)
    problems = "; ".join(
        f"{'.'.join(str(part) for part in error.get('loc', ()))}: {error.get('msg', '')}"
        for error in exc.errors()
    )
    return otlp.error_response(400, f"invalid request: {problems}", media)


def _problems(exc: RequestValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(part) for part in error.get('loc', ()))}: {error.get('msg', '')}"
        for error in exc.errors()
    )


async def _store_unavailable(request: Request, exc: Exception) -> Response:
    """Any route whose store is down answers 503 with Retry-After, the client's cue to retry."""
    message, headers = f"store unavailable: {exc}", {"Retry-After": "5"}
    media = _otlp_media(request)
    if media is not None:
        return otlp.error_response(503, message, media, headers)
    return JSONResponse({"detail": message}, status_code=503, headers=headers)


async def _internal_error(request: Request, exc: Exception) -> Response:
    """A bug (the server still logs its traceback): a Status on OTLP routes, so the exporter
    in front logs something; elsewhere Starlette's plain 500."""
    media = _otlp_media(request)
    if media is not None:
        message = f"internal error ({type(exc).__name__}); the collector's log has the details"
        return otlp.error_response(500, message, media)
    return PlainTextResponse("Internal Server Error", status_code=500)


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
