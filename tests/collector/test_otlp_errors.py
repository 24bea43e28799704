"""Errors the OTLP way: on ``/v1/traces`` every 4xx/5xx is a ``google.rpc.Status`` in the
request's encoding (protobuf for protobuf, JSON for JSON), whoever raised it; 429 and 503 carry
``Retry-After``; every other route keeps FastAPI's JSON errors; every request body is bounded.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from google.rpc.status_pb2 import Status

from agentledger.collector import CollectorSettings, otlp
from agentledger.compose import build_edge_app
from agentledger.pipeline.sinks import SinkRejected, SinkUnavailable
from agentledger.pipeline.sinks.memory import MemorySink
from agentledger.pipeline.store import StoreUnavailable
from agentledger.server import AppServer
from tests.collector.test_bad_input import _request

PB, JSON = otlp.PROTOBUF, otlp.JSON
KEY = "key-acme-123"
AUTH = {"Authorization": f"Bearer {KEY}"}
LIMIT = 4000


def _app(sink: MemorySink | None = None, **settings: Any) -> FastAPI:
    options: dict[str, Any] = {
        "api_keys": f"acme={KEY}",
        "max_body_bytes": LIMIT,
        "max_spans_per_request": 5,
        **settings,
    }
    return build_edge_app(CollectorSettings(**options), sink or MemorySink())


@pytest.fixture
def sink() -> MemorySink:
    return MemorySink()


@pytest.fixture
def client(sink: MemorySink) -> TestClient:
    return TestClient(_app(sink), raise_server_exceptions=False)


def _status(resp: httpx.Response, media: str) -> Status:
    """The answer's google.rpc.Status, read in the encoding the request was sent in."""
    assert resp.headers["content-type"] == media, resp.content[:200]
    if media == PB:
        return Status.FromString(resp.content)
    doc = resp.json()
    assert set(doc) <= {"code", "message", "details"}, doc
    return Status(code=doc.get("code", 0), message=doc["message"])


def _encoded(media: str, n_spans: int = 1) -> bytes:
    request = _request(n_spans)
    if media == PB:
        return request.SerializeToString()
    from google.protobuf import json_format

    doc = json.loads(json_format.MessageToJson(request))
    for span in doc["resourceSpans"][0]["scopeSpans"][0]["spans"]:  # OTLP/JSON ids are hex
        span["traceId"] = "01" * 15 + "02"
        span["spanId"] = "02" * 7 + "03"
    return json.dumps(doc).encode()


def _chunks(total: int, size: int = 1000) -> Iterator[bytes]:
    """A body sent without Content-Length."""
    for _ in range(total // size):
        yield b"\x00" * size


# (name, body for the media, extra headers, HTTP status, google.rpc.Code, words of the message)
CASES: list[tuple[str, Any, dict[str, str], int, int, str]] = [
    (
        "malformed",
        {PB: b"\x0a\xff\xff\xff", JSON: b'{"resourceSpans": ['},
        AUTH,
        400,
        3,
        "malformed",
    ),
    ("missing key", _encoded, {}, 401, 16, "missing API key"),
    ("unknown key", _encoded, {"Authorization": "Bearer nope"}, 401, 16, "unknown API key"),
    ("declared too large", b"\x00" * (LIMIT + 1), AUTH, 413, 8, f"over the limit of {LIMIT}"),
    ("streamed too large", lambda m: _chunks(3 * LIMIT), AUTH, 413, 8, "exceeds the limit"),
    (
        "decompressed too large",
        gzip.compress(b"\x00" * 50 * LIMIT),
        {**AUTH, "Content-Encoding": "gzip"},
        413,
        8,
        "decompressed body exceeds the limit",
    ),
    ("too many spans", lambda m: _encoded(m, 6), AUTH, 413, 8, "holds 6 spans"),
    ("unknown encoding", _encoded, {**AUTH, "Content-Encoding": "br"}, 415, 3, "content encoding"),
]


@pytest.mark.parametrize("media", [PB, JSON])
@pytest.mark.parametrize(
    ("case", "body", "headers", "status", "code", "needle"), CASES, ids=[c[0] for c in CASES]
)
def test_errors_are_a_status_in_the_request_encoding(
    client, sink, media, case, body, headers, status, code, needle
) -> None:
    if isinstance(body, dict):
        body = body[media]
    elif callable(body):
        body = body(media)
    resp = client.post("/v1/traces", content=body, headers={"Content-Type": media, **headers})
    assert resp.status_code == status, resp.content[:300]
    answer = _status(resp, media)
    assert answer.code == code
    assert needle in answer.message
    assert not sink.batches


@pytest.mark.parametrize("media", [PB, JSON])
def test_a_wrong_key_keeps_its_challenge_header(client, media) -> None:
    resp = client.post("/v1/traces", content=_encoded(media), headers={"Content-Type": media})
    assert resp.status_code == 401
    assert resp.headers["www-authenticate"] == "Bearer"


def test_json_specific_errors_name_the_problem(client) -> None:
    deep = b'{"resourceSpans": ' + b"[" * 70 + b"]" * 70 + b"}"
    for body, needle in [
        (deep, f"nested deeper than {otlp.MAX_JSON_DEPTH} levels"),
        (b"[" * 100_000, f"nested deeper than {otlp.MAX_JSON_DEPTH} levels"),
        (b'{"resourceSpans": [\xff]}', "not valid UTF-8 at byte 19"),
        (b"[1]", "must be an object with resourceSpans"),
    ]:
        resp = client.post(
            "/v1/traces", content=body[:LIMIT], headers={"Content-Type": JSON, **AUTH}
        )
        assert resp.status_code == 400
        assert needle in _status(resp, JSON).message


def test_unknown_content_type_is_415_in_json(client) -> None:
    """Neither encoding was asked for: the Status comes in JSON, the readable one."""
    for headers in ({"Content-Type": "text/plain"}, {}):
        resp = client.post("/v1/traces", content=b"hello", headers={**headers, **AUTH})
        assert resp.status_code == 415
        assert "unsupported content type" in _status(resp, JSON).message


@pytest.mark.parametrize("media", [PB, JSON])
def test_validation_errors_on_otlp_routes_are_a_400_status(media) -> None:
    """``/v1/traces`` declares no parameter that can fail validation today; should one come,
    its 422 becomes a 400 Status (OTLP/HTTP has no 422)."""
    from fastapi.exceptions import RequestValidationError
    from starlette.requests import Request

    from agentledger.collector.main import _validation_error

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/traces",
        "headers": [(b"content-type", media.encode())],
        "query_string": b"",
    }
    error = RequestValidationError([{"loc": ("header", "x-batch"), "msg": "not a number"}])
    resp = asyncio.run(_validation_error(Request(scope), error))
    assert resp.status_code == 400 and resp.headers["content-type"] == media
    body = bytes(resp.body)
    status = Status.FromString(body) if media == PB else Status(**json.loads(body))
    assert status.code == 3 and status.message == "invalid request: header.x-batch: not a number"


@pytest.mark.parametrize("media", [PB, JSON])
def test_wrong_method_is_a_status(client, media) -> None:
    resp = client.get("/v1/traces", headers={"Content-Type": media})
    assert resp.status_code == 405
    assert _status(resp, media).code == 12


@pytest.mark.parametrize("media", [PB, JSON])
@pytest.mark.parametrize(
    ("error", "status", "retry_after", "needle"),
    [
        (SinkUnavailable("broker is restarting", retry_after=7), 503, "7", "broker is restarting"),
        (SinkRejected("record refused as too large", status=413), 413, None, "too large"),
        (SinkRejected("cannot normalize"), 400, None, "cannot normalize"),
        (StoreUnavailable("chDB is closed"), 503, "5", "store unavailable: chDB is closed"),
        (RuntimeError("a bug"), 500, None, "internal error (RuntimeError)"),
    ],
    ids=["unavailable", "too large", "rejected", "store down", "bug"],
)
def test_sink_failures_are_a_status(
    client, sink, media, error, status, retry_after, needle
) -> None:
    def fail(batch: object) -> None:
        raise error

    sink.write = fail  # type: ignore[method-assign]
    resp = client.post(
        "/v1/traces", content=_encoded(media), headers={"Content-Type": media, **AUTH}
    )
    assert resp.status_code == status
    assert needle in _status(resp, media).message
    assert resp.headers.get("retry-after") == retry_after


class _BlockingSink(MemorySink):
    def __init__(self) -> None:
        super().__init__()
        self.entered, self.release = threading.Event(), threading.Event()

    def write(self, batch: Any) -> None:
        self.entered.set()
        self.release.wait(10)
        super().write(batch)


@pytest.mark.parametrize("media", [PB, JSON])
def test_exports_over_the_concurrency_limit_get_429_with_retry_after(media) -> None:
    sink = _BlockingSink()
    app = _app(sink, max_concurrent_exports=1, retry_after_seconds=3)

    async def scenario() -> tuple[httpx.Response, httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        headers = {"Content-Type": media, **AUTH}
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            first = asyncio.create_task(
                http.post("/v1/traces", content=_encoded(media), headers=headers)
            )
            await asyncio.to_thread(sink.entered.wait, 10)
            second = await http.post("/v1/traces", content=_encoded(media), headers=headers)
            sink.release.set()
            return await first, second

    first, second = asyncio.run(scenario())
    assert first.status_code == 200
    assert second.status_code == 429
    assert second.headers["retry-after"] == "3"
    assert _status(second, media).code == 8
    assert "too many export requests in progress (limit 1)" in _status(second, media).message
    assert sink.span_count == 1


# -- every other route: FastAPI's JSON errors, bounded bodies ---------------------------------


def _body_routes(app: FastAPI) -> list[str]:
    """Every POST route that reads a request body, from the app's own route table."""
    paths = app.openapi()["paths"]
    return sorted(
        p.replace("{intent_id}", "0" * 32)
        for p, ops in paths.items()
        if "requestBody" in ops.get("post", {}) and p not in otlp.OTLP_PATHS
    )


BODY_ROUTES = _body_routes(_app())


def test_the_route_table_lists_the_json_post_routes() -> None:
    assert {"/v1/intents", "/v1/controls", "/v1/feedback", "/api/v1/datasets"} <= set(BODY_ROUTES)


@pytest.mark.parametrize("path", BODY_ROUTES)
def test_every_post_body_is_bounded(client, path) -> None:
    headers = {"Content-Type": JSON, **AUTH}
    declared = client.post(path, content=b"{" * (LIMIT + 1), headers=headers)
    streamed = client.post(path, content=_chunks(3 * LIMIT), headers=headers)
    for resp, needle in [(declared, f"{LIMIT + 1} bytes, over the limit"), (streamed, "exceeds")]:
        assert resp.status_code == 413
        assert resp.headers["content-type"] == JSON
        assert needle in resp.json()["detail"]


def test_api_errors_stay_fastapi_json(client) -> None:
    intent = {"tool_name": "t", "arguments": {}}
    missing_key = client.post("/v1/intents", json=intent)
    assert missing_key.status_code == 401
    assert missing_key.json() == {
        "detail": "missing API key: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'"
    }
    invalid = client.post("/v1/intents", content=b"{", headers={"Content-Type": JSON, **AUTH})
    assert invalid.status_code == 422 and isinstance(invalid.json()["detail"], list)
    text = client.post(
        "/v1/intents", content=b"tool", headers={"Content-Type": "text/plain", **AUTH}
    )
    assert text.status_code == 415
    assert text.json() == {"detail": "unsupported content type 'text/plain': send application/json"}
    for body in (b"[" * LIMIT, b'{"tool_name": "\xff"}'):  # too deep, not UTF-8
        resp = client.post("/v1/intents", content=body, headers={"Content-Type": JSON, **AUTH})
        assert resp.status_code == 400
        assert resp.json() == {"detail": "There was an error parsing the body"}


def test_api_503_carries_retry_after(client) -> None:
    """The edge app has no store to record intents in: 503, and the client is told when."""
    resp = client.post(
        "/v1/intents",
        json={"tool_name": "t", "arguments": {}, "intent_id": "0" * 32},
        headers=AUTH,
    )
    assert resp.status_code == 503, resp.text
    assert resp.headers["retry-after"] == "2"
    assert "detail" in resp.json()


# -- the body limit reads no more than the limit ----------------------------------------------


def _asgi_post(app: FastAPI, path: str, headers: list[tuple[bytes, bytes]], receive: Any) -> dict:
    answer: dict[str, Any] = {"body": b""}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            answer["status"] = message["status"]
        elif message["type"] == "http.response.body":
            answer["body"] += message.get("body", b"")

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"t"), (b"authorization", f"Bearer {KEY}".encode()), *headers],
        "client": ("127.0.0.1", 1),
        "server": ("t", 80),
    }
    asyncio.run(app(scope, receive, send))
    return answer


@pytest.mark.parametrize(("path", "media"), [("/v1/traces", PB), ("/v1/intents", JSON)])
def test_an_endless_body_is_cut_at_the_limit(path, media) -> None:
    pulled = 0

    async def endless() -> dict[str, Any]:
        nonlocal pulled
        pulled += 1
        return {"type": "http.request", "body": b"\x00" * 500, "more_body": True}

    answer = _asgi_post(_app(), path, [(b"content-type", media.encode())], endless)
    assert answer["status"] == 413
    assert pulled == LIMIT // 500 + 1  # stopped at the chunk that crossed the limit


@pytest.mark.parametrize(("path", "media"), [("/v1/traces", PB), ("/v1/intents", JSON)])
def test_a_declared_length_over_the_limit_is_refused_unread(path, media) -> None:
    async def unread() -> dict[str, Any]:
        raise AssertionError("the body was read")

    headers = [(b"content-type", media.encode()), (b"content-length", b"999999999")]
    answer = _asgi_post(_app(), path, headers, unread)
    assert answer["status"] == 413
    if media == PB:
        assert "999999999 bytes, over the limit" in Status.FromString(answer["body"]).message
    else:
        assert "999999999 bytes, over the limit" in json.loads(answer["body"])["detail"]


# -- a real OpenTelemetry exporter in front -----------------------------------------------------


@pytest.mark.integration
def test_otel_sdk_exporter_gets_the_reason_for_a_wrong_key(caplog) -> None:
    """The OpenTelemetry Python SDK's OTLP/HTTP exporter against a real server with a wrong key.

    What it receives is a Status naming the problem, the body every OTLP exporter that reads
    error bodies logs (the Collector's ``otlphttp`` exporter logs ``Message=...``). The Python
    exporter itself (1.45) logs only the code and the HTTP reason phrase; should it log the
    Status message, the last assertion checks that it is ours."""
    import requests
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExportResult

    received: list[requests.Response] = []
    session = requests.Session()
    session.hooks["response"].append(lambda resp, *args, **kwargs: received.append(resp))
    span = TracerProvider().get_tracer("t").start_span("op")
    span.end()
    with AppServer(_app()) as server:
        exporter = OTLPSpanExporter(
            endpoint=f"{server.url}/v1/traces",
            headers={"Authorization": "Bearer wrong-key"},
            session=session,
            timeout=5,
        )
        with caplog.at_level(logging.WARNING):
            result = exporter.export([span])
        exporter.shutdown()
    assert result is SpanExportResult.FAILURE
    (resp,) = received  # a 401 is not retried
    assert resp.status_code == 401 and resp.headers["content-type"] == PB
    message = Status.FromString(resp.content).message
    assert message == "unknown API key, or a revoked one"
    (line,) = [r.getMessage() for r in caplog.records if "Failed to export" in r.getMessage()]
    assert "401" in line
    if "API key" in line:
        assert message in line
