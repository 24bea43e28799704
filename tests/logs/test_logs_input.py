"""``POST /v1/logs`` and ``POST /v1/metrics`` against bad input, keys and tenants: every refusal is a
clear 4xx carrying a ``google.rpc.Status``, never a 500; the tenant comes from the key."""

from __future__ import annotations

import gzip
import json

import httpx
import pytest
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)

from tests.conftest import API_KEYS
from tests.logs.conftest import MANIFEST, PB, ids, otlp_json, payload

ACME = {"Authorization": f"Bearer {API_KEYS['acme']}"}
GLOBEX = {"Authorization": f"Bearer {API_KEYS['globex']}"}
JSON = {"content-type": "application/json"}


def _post(server, path: str, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(f"{server.url}{path}", content=body, headers=headers, timeout=30)


def _status(resp: httpx.Response) -> str:
    """The message of an OTLP error answer, in whichever encoding it came."""
    if resp.headers["content-type"].startswith("application/x-protobuf"):
        return str(Status.FromString(resp.content).message)
    return str(resp.json()["message"])


def _nested(depth: int) -> bytes:
    value = '{"stringValue": "x"}'
    for _ in range(depth):
        value = '{"arrayValue": {"values": [' + value + "]}}"
    record = '{"body": ' + value + "}"
    return ('{"resourceLogs": [{"scopeLogs": [{"logRecords": [' + record + "]}]}]}").encode()


@pytest.mark.parametrize(
    ("body", "headers", "status", "says"),
    [
        (b"\x0a\xff\xff\xff\xff\x0f", PB, 400, "malformed OTLP protobuf"),
        (b'{"resourceLogs": [', JSON, 400, "malformed JSON"),
        (b'{"resourceLogs": "\xff\xfe"}', JSON, 400, "not valid UTF-8"),
        (b"[]", JSON, 400, "object with resourceLogs"),
        (_nested(40), JSON, 400, "nested deeper"),
        (
            b'{"resourceLogs": [{"scopeLogs": [{"logRecords": [{"traceId": "abc"}]}]}]}',
            JSON,
            400,
            "traceId",
        ),
        (b"x" * 2_100_000, PB, 413, "over the limit"),
        (gzip.compress(b"\0" * 2_100_000), {**PB, "content-encoding": "gzip"}, 413, "exceeds"),
        (b"{}", {"content-type": "text/plain"}, 415, "unsupported content type"),
    ],
    ids=[
        "protobuf",
        "json",
        "utf8",
        "not-object",
        "nesting",
        "bad-id",
        "size",
        "gzip-bomb",
        "type",
    ],
)
def test_bad_input_is_a_clear_4xx(auth_server, body, headers, status, says) -> None:
    resp = _post(auth_server, "/v1/logs", body, {**ACME, **headers})
    assert resp.status_code == status, resp.text
    assert says in _status(resp)


def test_too_many_records_is_413(auth_server) -> None:
    request = ExportLogsServiceRequest()
    records = request.resource_logs.add().scope_logs.add().log_records
    for _ in range(101):
        records.add().body.string_value = "hello"
    resp = _post(auth_server, "/v1/logs", request.SerializeToString(), {**ACME, **PB})
    assert resp.status_code == 413 and "101 log records" in _status(resp)


def test_a_record_with_a_short_span_id_is_dropped_as_partial_success(auth_server) -> None:
    request = ExportLogsServiceRequest()
    records = request.resource_logs.add().scope_logs.add().log_records
    records.add().body.string_value = "kept"
    bad = records.add()
    bad.span_id = b"\x01\x02"
    resp = _post(auth_server, "/v1/logs", request.SerializeToString(), {**ACME, **PB})
    assert resp.status_code == 200
    answer = ExportLogsServiceResponse.FromString(resp.content)
    assert answer.partial_success.rejected_log_records == 1
    assert "span_id" in answer.partial_success.error_message
    only_bad = ExportLogsServiceRequest()
    only_bad.resource_logs.add().scope_logs.add().log_records.add().span_id = b"\x01"
    resp = _post(auth_server, "/v1/logs", only_bad.SerializeToString(), {**ACME, **PB})
    assert resp.status_code == 400 and "no valid log record" in _status(resp)


@pytest.mark.parametrize("key", [None, "key-nobody-000"])
def test_a_missing_or_unknown_key_is_401(auth_server, key) -> None:
    headers = {**PB, **({"Authorization": f"Bearer {key}"} if key else {})}
    for path in ("/v1/logs", "/v1/metrics"):
        resp = _post(auth_server, path, payload("events", "logs"), headers)
        assert resp.status_code == 401, resp.text
        assert Status.FromString(resp.content).message


def test_logs_in_json_join_their_span_in_the_keys_tenant_only(auth_server) -> None:
    trace_id, span_id = ids("events")
    traces = _post(auth_server, "/v1/traces", payload("events", "traces"), {**ACME, **PB})
    assert traces.status_code == 200
    # the same events sent with another tenant's key land in that tenant: acme's call stays empty
    other = _post(
        auth_server, "/v1/logs", otlp_json(payload("events", "logs"), "logs"), {**GLOBEX, **JSON}
    )
    assert other.status_code == 200, other.text
    detail = httpx.get(f"{auth_server.url}/api/v1/traces/{trace_id}", headers=ACME).json()
    (chat,) = [s for s in detail["spans"] if s["span_id"] == span_id]
    assert chat["input_hash"] == "" and chat["logs"] == []
    mine = _post(
        auth_server, "/v1/logs", otlp_json(payload("events", "logs"), "logs"), {**ACME, **JSON}
    )
    assert mine.status_code == 200 and json.loads(mine.content) == {}
    detail = httpx.get(f"{auth_server.url}/api/v1/traces/{trace_id}", headers=ACME).json()
    (chat,) = [s for s in detail["spans"] if s["span_id"] == span_id]
    assert chat["output_preview"] == MANIFEST["events"]["answer"]
    assert [log["event_name"] for log in chat["logs"]][-1] == "gen_ai.choice"
    # sent twice (an exporter's retry): stored once
    again = _post(auth_server, "/v1/logs", payload("events", "logs"), {**ACME, **PB})
    assert again.status_code == 200
    detail = httpx.get(f"{auth_server.url}/api/v1/traces/{trace_id}", headers=ACME).json()
    (chat,) = [s for s in detail["spans"] if s["span_id"] == span_id]
    assert len(chat["logs"]) == 3


def test_metrics_are_accepted_and_not_stored(auth_server) -> None:
    request = ExportMetricsServiceRequest()
    metric = request.resource_metrics.add().scope_metrics.add().metrics.add()
    metric.name = "gen_ai.client.token.usage"
    metric.histogram.data_points.add().count = 1
    resp = _post(auth_server, "/v1/metrics", request.SerializeToString(), {**ACME, **PB})
    assert resp.status_code == 200 and resp.headers["content-type"] == "application/x-protobuf"
    resp = _post(auth_server, "/v1/metrics", b"{}", {**ACME, **JSON})
    assert resp.status_code == 200 and resp.json() == {}
    resp = _post(auth_server, "/v1/metrics", b"\x0a\xff\xff\xff", {**ACME, **PB})
    assert resp.status_code == 400 and "malformed" in _status(resp)
