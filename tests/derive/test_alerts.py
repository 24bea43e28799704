"""Alert delivery against a local receiver: HMAC-signed webhooks, OTLP log records, de-duplication
and the rate limit (``pipeline/derive/webhook.py``)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from agentledger.pipeline.derive.anomalies import anomaly_record
from agentledger.pipeline.derive.detectors import Anomaly
from agentledger.pipeline.derive.webhook import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    Notifier,
    verify_signature,
)

SECRET = "s3cret-shared-with-the-receiver"
T0 = datetime(2026, 3, 11, 14, tzinfo=timezone.utc)


class _Receiver(BaseHTTPRequestHandler):
    received: list[tuple[str, dict[str, str], bytes]] = []

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Receiver.received.append((self.path, dict(self.headers), body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Receiver.received = []
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def _record(n: int, type_: str = "cohort") -> dict:
    a = Anomaly(
        "default",
        type_,
        "principals",
        {"agent_name": "support-desk-agent", "n": str(n)},
        T0,
        T0 + timedelta(hours=1),
        12.5,
        0.0,
        25.0,
        ["0af7651916cd43dd8448eb211c80319c"],
        f"25 accounts sent near-identical prompts ({n}): suspend them.",
    )
    return anomaly_record(a, T0, T0)


def test_webhook_is_signed_and_verifiable(receiver: str) -> None:
    notifier = Notifier(f"{receiver}/hook", secret=SECRET, attempts=1)
    assert notifier.notify([_record(1), _record(2)]) == 2
    ((path, headers, body),) = _Receiver.received
    payload = json.loads(body)
    assert (
        path == "/hook"
        and payload["count"] == 2
        and payload["event"] == "agentledger.anomalies.new"
    )
    assert headers[SIGNATURE_HEADER].startswith("sha256=")
    assert verify_signature(SECRET, headers, body)
    assert not verify_signature("another-secret", headers, body)
    assert not verify_signature(SECRET, headers, body.replace(b"suspend", b"ignore"))
    stale = int(headers[TIMESTAMP_HEADER]) + 3600
    assert not verify_signature(SECRET, headers, body, now=stale)


def test_each_anomaly_is_delivered_once(receiver: str) -> None:
    notifier = Notifier(f"{receiver}/hook", attempts=1)
    assert notifier.notify([_record(1)]) == 1
    assert notifier.notify([_record(1)]) == 0  # found again by a later pass
    assert notifier.notify([_record(1), _record(2)]) == 1
    assert [json.loads(b)["count"] for _, _, b in _Receiver.received] == [1, 1]
    assert SIGNATURE_HEADER not in _Receiver.received[0][1]  # no secret, no signature


def test_rate_limit_batches_what_waits(receiver: str) -> None:
    clock = [1000.0]
    notifier = Notifier(f"{receiver}/hook", max_per_minute=1, attempts=1, clock=lambda: clock[0])
    assert notifier.notify([_record(1)]) == 1
    assert notifier.notify([_record(2)]) == 0 and notifier.notify([_record(3)]) == 0
    assert len(_Receiver.received) == 1
    clock[0] += 61
    assert notifier.notify([]) == 2  # what waited goes in one payload
    last = json.loads(_Receiver.received[-1][2])
    assert [a["dimensions"]["n"] for a in last["anomalies"]] == ["2", "3"]


def test_anomalies_as_otlp_log_records(receiver: str) -> None:
    notifier = Notifier(otlp_logs_url=f"{receiver}/v1/logs", attempts=1)
    assert notifier.notify([_record(1), _record(2, "model_changed")]) == 2
    ((path, headers, body),) = _Receiver.received
    assert path == "/v1/logs" and headers["Content-Type"] == "application/x-protobuf"
    req = ExportLogsServiceRequest.FromString(body)
    records = req.resource_logs[0].scope_logs[0].log_records
    assert [r.event_name for r in records] == ["agentledger.anomaly"] * 2
    first = records[0]
    assert first.severity_text == "WARN" and "suspend them" in first.body.string_value
    assert first.trace_id.hex() == "0af7651916cd43dd8448eb211c80319c"
    assert first.time_unix_nano == int(T0.timestamp()) * 10**9
    attrs = {kv.key: kv.value for kv in records[1].attributes}
    assert attrs["agentledger.anomaly.type"].string_value == "model_changed"
    assert attrs["agentledger.anomaly.dimension.agent_name"].string_value == "support-desk-agent"
    assert attrs["agentledger.anomaly.score"].double_value == 12.5


def test_a_receiver_that_is_down_does_not_raise() -> None:
    notifier = Notifier("http://127.0.0.1:9/hook", attempts=1, timeout=0.5)
    assert notifier.notify([_record(1)]) == 0
    assert notifier.notify([_record(1)]) == 0  # given up on, not retried forever
