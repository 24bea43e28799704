"""Every read route answers with a model of ``agentledger.schemas.read``, documented in OpenAPI."""

from __future__ import annotations

import typing
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.responses import FileResponse, PlainTextResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel

from agentledger.collector import CollectorSettings
from agentledger.compose import build_edge_app
from agentledger.pipeline.sinks.memory import MemorySink

pytestmark = pytest.mark.unit

FILE_ROUTES = {"/api/v1/datasets/{dataset_id}/files/{name}"}
"""Routes that answer with a file's bytes, not JSON: declared with a file response instead."""
TEXT_ROUTES = {"/api/v1/ledger/checkpoint"}
"""Routes that answer a standard text format (a C2SP signed note), declared as plain text."""


@pytest.fixture(scope="module")
def app() -> FastAPI:
    return build_edge_app(CollectorSettings(no_auth=True), MemorySink())


def _api_routes(routes: list[Any]) -> list[APIRoute]:
    """The app's routes; newer FastAPI keeps an included router whole (``original_router``)
    instead of copying its routes into the app (the routers carry their prefixes themselves)."""
    found: list[APIRoute] = []
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:
            found += _api_routes(included.routes)
        elif isinstance(route, APIRoute):
            found.append(route)
    return found


def _read_routes(app: FastAPI) -> list[APIRoute]:
    return [
        r
        for r in _api_routes(app.routes)
        if "GET" in r.methods and r.path.startswith(("/api/", "/v1/"))
    ]


def _models(annotation: typing.Any) -> list[type]:
    """The classes a response annotation is made of (``list[X]``, ``X | None``...)."""
    args = typing.get_args(annotation)
    if args:
        return [m for a in args for m in _models(a)]
    return [annotation] if isinstance(annotation, type) else []


def test_every_read_route_has_a_read_model(app: FastAPI) -> None:
    routes = _read_routes(app)
    assert len(routes) >= 20  # traces, analytics, audit, replays, feedback, datasets, governance
    for route in routes:
        if route.path in FILE_ROUTES:
            assert route.response_class is FileResponse, route.path
            continue
        if route.path in TEXT_ROUTES:
            assert route.response_class is PlainTextResponse, route.path
            continue
        assert route.response_model is not None, f"GET {route.path} declares no response model"
        models = _models(route.response_model)
        assert models, f"GET {route.path}: {route.response_model!r} names no model"
        for model in models:
            assert issubclass(model, BaseModel), f"GET {route.path} answers {model!r}, not a model"
            assert model.__module__.startswith("agentledger.schemas.read"), (
                f"GET {route.path} answers {model.__module__}.{model.__name__}, "
                "not a model of agentledger.schemas.read"
            )


def test_openapi_documents_the_read_models(app: FastAPI) -> None:
    spec = app.openapi()
    schemas = spec["components"]["schemas"]
    for name in ("TraceDetail", "UsageReport", "AuditReport", "DatasetManifest", "ControlList"):
        assert name in schemas, name
    for route in _read_routes(app):
        if route.path in FILE_ROUTES | TEXT_ROUTES:
            continue
        ok = spec["paths"][route.path]["get"]["responses"]["200"]
        schema = ok["content"]["application/json"]["schema"]
        assert "$ref" in schema or "items" in schema, (route.path, schema)
    usage = schemas["UsageRow"]["properties"]
    assert usage["bucket"]["anyOf"][0] == {"type": "string", "format": "date-time"}
