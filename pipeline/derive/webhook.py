"""Delivers newly found anomalies: a signed JSON webhook and OTLP log records, rate-limited, de-duplicated.

Best effort by design: a receiver that is down must not stop detection or the
pipeline. Failures are retried a few times with back-off, then logged; the
anomalies stay in the table either way (``agentledger anomalies`` lists them).

Signing. With a secret, every webhook request carries
``X-AgentLedger-Timestamp`` (Unix seconds) and ``X-AgentLedger-Signature:
sha256=<hex>``, the HMAC-SHA256 of ``"<timestamp>.<body>"`` under the
secret (the scheme of Stripe and Slack): the receiver recomputes it over the
raw body (``verify_signature``) and rejects stale timestamps, so a captured
request can be neither forged nor replayed later.

Storms. ``Notifier`` remembers the ids it delivered (a bounded set), so an
anomaly re-found by later passes is not sent again, and allows at most
``alert_max_per_minute`` deliveries a minute: anomalies found meanwhile wait
(bounded) and go with the next allowed delivery, in one payload.

OTLP. Each anomaly is also exportable as one OTLP log record
(``ExportLogsServiceRequest``, protobuf over HTTP, e.g. to a collector's
``/v1/logs``): severity WARN, body the one-sentence explanation, attributes
the anomaly's fields, trace id the first example trace, so log backends show
detections next to the traces that prove them.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from datetime import datetime
from typing import Any

import httpx
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.logs.v1.logs_pb2 import SEVERITY_NUMBER_WARN

__all__ = [
    "WEBHOOK_EVENT",
    "Notifier",
    "otlp_logs",
    "post_anomalies",
    "sign",
    "verify_signature",
]

log = logging.getLogger(__name__)

WEBHOOK_EVENT = "agentledger.anomalies.new"
"""Value of the ``event`` field of every webhook payload."""
SIGNATURE_HEADER, TIMESTAMP_HEADER = "X-AgentLedger-Signature", "X-AgentLedger-Timestamp"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """``sha256=<hex>``: HMAC-SHA256 of ``b"<timestamp>." + body``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify_signature(
    secret: str, headers: Any, body: bytes, *, tolerance_s: int = 300, now: float | None = None
) -> bool:
    """What a receiver runs: the signature matches and the timestamp is recent."""
    try:
        timestamp = int(headers[TIMESTAMP_HEADER])
        signature = str(headers[SIGNATURE_HEADER])
    except (KeyError, TypeError, ValueError):
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance_s:
        return False
    return hmac.compare_digest(signature, sign(secret, timestamp, body))


def _post(url: str, body: bytes, headers: dict[str, str], *, timeout: float, attempts: int) -> bool:
    for attempt in range(1, attempts + 1):
        try:
            resp = httpx.post(url, content=body, headers=headers, timeout=timeout)
            if resp.is_success:
                return True
            log.warning(
                "alert receiver %s answered %s (%d/%d)", url, resp.status_code, attempt, attempts
            )
        except httpx.HTTPError as exc:
            log.warning("alert delivery to %s failed: %s (%d/%d)", url, exc, attempt, attempts)
        if attempt < attempts:
            time.sleep(0.5 * 2 ** (attempt - 1))
    return False


def post_anomalies(
    url: str,
    anomalies: list[dict[str, Any]],
    *,
    timeout: float = 5.0,
    attempts: int = 3,
    secret: str | None = None,
) -> bool:
    """POST ``{"event": ..., "count": n, "anomalies": [...]}`` (signed with ``secret``); True on a 2xx."""
    payload = {"event": WEBHOOK_EVENT, "count": len(anomalies), "anomalies": anomalies}
    body = json.dumps(payload, separators=(",", ":"), default=str).encode()
    headers = {"Content-Type": "application/json"}
    if secret:
        ts = int(time.time())
        headers |= {TIMESTAMP_HEADER: str(ts), SIGNATURE_HEADER: sign(secret, ts, body)}
    return _post(url, body, headers, timeout=timeout, attempts=attempts)


def _nanos(iso: str) -> int:
    return int(datetime.fromisoformat(iso).timestamp() * 1e9)


def otlp_logs(
    anomalies: list[dict[str, Any]], service: str = "agentledger"
) -> ExportLogsServiceRequest:
    """One OTLP log record per anomaly (event name ``agentledger.anomaly``)."""
    req = ExportLogsServiceRequest()
    rl = req.resource_logs.add()
    kv = rl.resource.attributes.add()
    kv.key, kv.value.string_value = "service.name", service
    scope = rl.scope_logs.add()
    scope.scope.name = "agentledger.detection"
    for a in anomalies:
        rec = scope.log_records.add()
        rec.time_unix_nano = _nanos(a["window_start"])
        rec.observed_time_unix_nano = _nanos(a.get("detected_at") or a["window_end"])
        rec.severity_number, rec.severity_text = SEVERITY_NUMBER_WARN, "WARN"
        rec.event_name = "agentledger.anomaly"
        rec.body.string_value = a["detail"]
        if a["example_trace_ids"]:
            rec.trace_id = bytes.fromhex(a["example_trace_ids"][0])
        attrs: dict[str, Any] = {
            "agentledger.anomaly.id": a["anomaly_id"],
            "agentledger.anomaly.type": a["type"],
            "agentledger.anomaly.metric": a["metric"],
            "agentledger.anomaly.score": float(a["score"]),
            "agentledger.tenant": a["tenant"],
            **{f"agentledger.anomaly.dimension.{k}": v for k, v in a["dimensions"].items()},
        }
        for key, value in attrs.items():
            kv = rec.attributes.add()
            kv.key = key
            if isinstance(value, float):
                kv.value.double_value = value
            else:
                kv.value.string_value = str(value)
        ex = rec.attributes.add()
        ex.key = "agentledger.anomaly.example_trace_ids"
        for t in a["example_trace_ids"]:
            ex.value.array_value.values.add().string_value = t
    return req


class Notifier:
    """Sends new anomalies to a webhook and/or an OTLP logs endpoint, once each, at a bounded rate."""

    def __init__(
        self,
        webhook_url: str | None = None,
        *,
        secret: str | None = None,
        otlp_logs_url: str | None = None,
        max_per_minute: int = 6,
        timeout: float = 5.0,
        attempts: int = 3,
        remember: int = 10_000,
        max_pending: int = 1000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.webhook_url, self.secret, self.otlp_logs_url = webhook_url, secret, otlp_logs_url
        self.max_per_minute, self.timeout, self.attempts = max_per_minute, timeout, attempts
        self.remember, self.max_pending, self.clock = remember, max_pending, clock
        self._sent: OrderedDict[str, None] = OrderedDict()
        self._pending: list[dict[str, Any]] = []
        self._deliveries: deque[float] = deque()
        self.dropped = 0

    def notify(self, anomalies: list[dict[str, Any]]) -> int:
        """Queue ``anomalies`` not delivered before; deliver the queue if the rate allows. Returns how many went."""
        queued = {a["anomaly_id"] for a in self._pending}
        for a in anomalies:
            if a["anomaly_id"] not in self._sent and a["anomaly_id"] not in queued:
                self._pending.append(a)
                queued.add(a["anomaly_id"])
        if len(self._pending) > self.max_pending:
            self.dropped += len(self._pending) - self.max_pending
            log.warning(
                "alert queue full: %d anomalies not delivered",
                len(self._pending) - self.max_pending,
            )
            self._pending = self._pending[-self.max_pending :]
        if not self._pending:
            return 0
        now = self.clock()
        while self._deliveries and now - self._deliveries[0] >= 60:
            self._deliveries.popleft()
        if len(self._deliveries) >= self.max_per_minute:
            return 0  # rate limited: the queue goes with the next allowed delivery
        batch, self._pending = self._pending, []
        self._deliveries.append(now)
        ok = True
        if self.webhook_url:
            ok &= post_anomalies(
                self.webhook_url,
                batch,
                timeout=self.timeout,
                attempts=self.attempts,
                secret=self.secret,
            )
        if self.otlp_logs_url:
            body = otlp_logs(batch).SerializeToString()
            ok &= _post(
                self.otlp_logs_url,
                body,
                {"Content-Type": "application/x-protobuf"},
                timeout=self.timeout,
                attempts=self.attempts,
            )
        for a in batch:  # delivered or given up on: never re-sent (the table keeps them)
            self._sent[a["anomaly_id"]] = None
        while len(self._sent) > self.remember:
            self._sent.popitem(last=False)
        return len(batch) if ok else 0
