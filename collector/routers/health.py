"""Liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from agentledger.collector.deps import ServicesDep

__all__ = ["router"]

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is up")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="The sink (and store, when attached) can take data now")
async def readyz(services: ServicesDep) -> JSONResponse:
    sink_ready = services.sink.ready()
    store = services.store
    store_ready = store.ping() if store is not None else None
    gates = services.store_gates_readiness
    ready = sink_ready and (store_ready is not False or not gates)
    body = {"status": "ready" if ready else "not ready", "sink": sink_ready, "store": store_ready}
    return JSONResponse(body, status_code=200 if ready else 503)
