"""Every bad input gets its status code and a message naming the problem, and stores nothing."""

from __future__ import annotations

import gzip
import json

import httpx
import pytest
from google.protobuf import json_format
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from tests.conftest import API_KEYS

PB = "application/x-protobuf"
KEY = {"Authorization": f"Bearer {API_KEYS['acme']}"}


def _request(n_spans: int = 1, *, name: str = "op", value: str = "v") -> ExportTraceServiceRequest:
    req = ExportTraceServiceRequest()
    scope = req.resource_spans.add().scope_spans.add()
    for i in range(n_spans):
        span = scope.spans.add()
        span.trace_id = bytes([1] * 15 + [i % 250 + 1])
        span.span_id = bytes([2] * 7 + [i % 250 + 1])
        span.name = name
        span.start_time_unix_nano = 1_700_000_000_000_000_000
        span.end_time_unix_nano = 1_700_000_000_500_000_000
        kv = span.attributes.add()
        kv.key, kv.value.string_value = "payload", value
    return req


def _message(resp: httpx.Response) -> str:
    if resp.headers["content-type"].startswith(PB):
        return Status.FromString(resp.content).message
    return resp.json()["message"]


def _stored(server) -> int:
    return server.store.query_scalar("SELECT count() FROM spans")


def _post(server, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(f"{server.url}/v1/traces", content=body, headers=headers, timeout=10)


CASES = [
    (
        "malformed protobuf",
        b"\x0a\xff\xff\xff",
        {"Content-Type": PB, **KEY},
        400,
        "malformed OTLP protobuf",
    ),
    (
        "bad utf-8 in protobuf",
        _request(name="abc").SerializeToString().replace(b"abc", b"a\xffc"),
        {"Content-Type": PB, **KEY},
        400,
        "bad UTF-8",
    ),
    (
        "bad utf-8 in json",
        b'{"resourceSpans": [\xff]}',
        {"Content-Type": "application/json", **KEY},
        400,
        "not valid UTF-8 at byte 19",
    ),
    (
        "malformed json",
        b'{"resourceSpans": [',
        {"Content-Type": "application/json", **KEY},
        400,
        "malformed JSON",
    ),
    (
        "wrong json shape",
        b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"name": 5}]}]}]}',
        {"Content-Type": "application/json", **KEY},
        400,
        "name field",
    ),
    (
        "non-hex trace id",
        b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "zz", "spanId": "0102030405060708"}]}]}]}',
        {"Content-Type": "application/json", **KEY},
        400,
        "traceId 'zz' is not hex",
    ),
    (
        "wrong content type",
        b"hello",
        {"Content-Type": "text/plain", **KEY},
        415,
        "unsupported content type 'text/plain'",
    ),
    ("no content type", b"hello", KEY, 415, "unsupported content type"),
    (
        "unknown encoding",
        b"xx",
        {"Content-Type": PB, "Content-Encoding": "br", **KEY},
        415,
        "unsupported content encoding",
    ),
    (
        "corrupt gzip",
        gzip.compress(b"hello world " * 100)[:12] + b"\xff" * 40,
        {"Content-Type": PB, "Content-Encoding": "gzip", **KEY},
        400,
        "not valid gzip",
    ),
    (
        "oversized body",
        b"\x00" * 2_000_001,
        {"Content-Type": PB, **KEY},
        413,
        "over the limit of 2000000",
    ),
    (
        "gzip bomb",
        gzip.compress(b"\x00" * 5_000_000),
        {"Content-Type": PB, "Content-Encoding": "gzip", **KEY},
        413,
        "decompressed body exceeds the limit",
    ),
    (
        "too many spans",
        _request(101).SerializeToString(),
        {"Content-Type": PB, **KEY},
        413,
        "holds 101 spans, over the limit of 100",
    ),
    (
        "all spans invalid",
        ExportTraceServiceRequest(
            resource_spans=[{"scope_spans": [{"spans": [{"name": "x"}]}]}]
        ).SerializeToString(),
        {"Content-Type": PB, **KEY},
        400,
        "invalid trace_id",
    ),
]


@pytest.mark.parametrize(
    ("case", "body", "headers", "status", "needle"), CASES, ids=[c[0] for c in CASES]
)
def test_bad_input_is_refused_with_a_clear_error(
    auth_server, case, body, headers, status, needle
) -> None:
    resp = _post(auth_server, body, headers)
    assert resp.status_code == status, resp.text
    assert needle in _message(resp)
    assert _stored(auth_server) == 0


@pytest.mark.parametrize(
    ("headers", "needle"),
    [
        ({}, "missing API key"),
        ({"Authorization": "Bearer nope"}, "unknown API key"),
        ({"X-API-Key": "nope"}, "unknown API key"),
    ],
)
def test_missing_or_unknown_key_is_401(auth_server, headers, needle) -> None:
    resp = _post(auth_server, _request().SerializeToString(), {"Content-Type": PB, **headers})
    assert resp.status_code == 401
    assert resp.headers["content-type"] == PB  # a google.rpc.Status, as OTLP/HTTP requires
    assert needle in _message(resp)
    assert _stored(auth_server) == 0


def test_x_api_key_header_is_accepted(auth_server) -> None:
    resp = _post(
        auth_server,
        _request().SerializeToString(),
        {"Content-Type": PB, "X-API-Key": API_KEYS["globex"]},
    )
    assert resp.status_code == 200
    assert auth_server.store.query_scalar("SELECT any(tenant) FROM spans") == "globex"


def test_invalid_spans_are_rejected_as_partial_success(auth_server) -> None:
    req = _request(3)
    req.resource_spans[0].scope_spans[0].spans[1].span_id = b"\x00" * 8
    resp = _post(auth_server, req.SerializeToString(), {"Content-Type": PB, **KEY})
    assert resp.status_code == 200
    answer = ExportTraceServiceResponse.FromString(resp.content)
    assert answer.partial_success.rejected_spans == 1
    assert "invalid span_id" in answer.partial_success.error_message
    assert _stored(auth_server) == 2


def test_gzip_json_is_accepted_and_answered_in_json(auth_server) -> None:
    doc = json.loads(json_format.MessageToJson(_request(2)))
    for i, span in enumerate(doc["resourceSpans"][0]["scopeSpans"][0]["spans"], start=1):
        span["traceId"] = "01" * 15 + f"{i:02x}"  # OTLP/JSON writes ids as hex, not base64
        span["spanId"] = "02" * 7 + f"{i:02x}"
    body = gzip.compress(json.dumps(doc).encode())
    resp = _post(
        auth_server, body, {"Content-Type": "application/json", "Content-Encoding": "gzip", **KEY}
    )
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    assert resp.json() == {}
    ids = sorted(r["span_id"] for r in auth_server.store.query_rows("SELECT span_id FROM spans"))
    assert ids == ["0202020202020201", "0202020202020202"]


def test_long_attribute_is_truncated_and_marked(auth_server) -> None:
    resp = _post(
        auth_server, _request(value="x" * 5000).SerializeToString(), {"Content-Type": PB, **KEY}
    )
    assert resp.status_code == 200
    row = auth_server.store.query_rows("SELECT attributes, attribute_refs FROM spans")[0]
    attrs, refs = dict(row["attributes"]), dict(row["attribute_refs"])
    assert attrs["agentledger.truncated_attributes"] == '["payload"]'
    stored = auth_server.store.query_scalar(
        "SELECT content FROM contents WHERE hash = {h:String}", {"h": refs["payload"]}
    )
    assert stored == "x" * 1000


def test_broken_sink_answers_503_with_retry_after(auth_server) -> None:
    from agentledger.pipeline.sinks import SinkUnavailable

    sink = auth_server.app.state.services.sink
    original = sink.write

    def down(batch):
        raise SinkUnavailable("store is restarting", retry_after=7)

    sink.write = down
    try:
        resp = _post(auth_server, _request().SerializeToString(), {"Content-Type": PB, **KEY})
    finally:
        sink.write = original
    assert resp.status_code == 503
    assert resp.headers["retry-after"] == "7"
    assert "store is restarting" in _message(resp)
    assert _stored(auth_server) == 0


def test_health_ready_and_docs(auth_server) -> None:
    assert httpx.get(f"{auth_server.url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{auth_server.url}/readyz")
    assert ready.status_code == 200 and ready.json()["sink"] is True
    assert httpx.get(f"{auth_server.url}/docs").status_code == 200
    spec = httpx.get(f"{auth_server.url}/openapi.json").json()
    assert "/v1/traces" in spec["paths"] and "/api/v1/traces/{trace_id}" in spec["paths"]
    sink = auth_server.app.state.services.sink.inner  # the embedded sink, behind the metered one
    sink._healthy = False
    try:
        assert httpx.get(f"{auth_server.url}/readyz").status_code == 503
    finally:
        sink._healthy = True
