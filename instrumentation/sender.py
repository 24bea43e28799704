"""One OTLP/HTTP POST, answered in three words: delivered, retry later, or refused for good.

Why not the SDK's exporter: it retries in a loop on its export thread (up to
its timeout) and then drops the batch; AgentLedger instead keeps what was not
delivered in its spool and re-sends it, in order, with its own backoff (see
:mod:`agentledger.instrumentation.delivery`). So a send here is one attempt,
and its answer says which of the three happened:

- ``DELIVERED``: 2xx;
- ``RETRY``: the collector could not take it now: connection refused or reset,
  a timeout, 408, 429, or any 5xx (``retry_after`` carries its ``Retry-After``);
- ``REFUSED``: any other answer (400 malformed, 401/403 a bad key, 413 too
  large): re-sending would get the same answer, so it is counted as lost.

Endpoint, headers, timeout (``OTEL_EXPORTER_OTLP_TRACES_TIMEOUT`` /
``OTEL_EXPORTER_OTLP_TIMEOUT``, seconds, default 10) and gzip compression
(``OTEL_EXPORTER_OTLP_(TRACES_)COMPRESSION=gzip``) follow the OTLP exporter
variables.
"""

from __future__ import annotations

import enum
import gzip
import logging
from collections.abc import Mapping
from dataclasses import dataclass

import requests

from agentledger.instrumentation import config as cfg

__all__ = ["Outcome", "OTLPSender", "SendResult"]

logger = logging.getLogger(__name__)


class Outcome(enum.Enum):
    DELIVERED = "delivered"
    RETRY = "retry"
    REFUSED = "refused"


@dataclass(frozen=True)
class SendResult:
    outcome: Outcome
    detail: str = ""
    retry_after: float | None = None


def _timeout() -> float:
    for name in ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT"):
        if (raw := cfg.env(name)) is not None:
            try:
                value = float(raw)
            except ValueError:
                raise ValueError(f"{name}={raw!r} is not a number of seconds") from None
            return value / 1000 if value > 1000 else value  # some set milliseconds
    return 10.0


def _gzip() -> bool:
    raw = cfg.env("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION") or cfg.env(
        "OTEL_EXPORTER_OTLP_COMPRESSION"
    )
    return (raw or "").lower() == "gzip"


class OTLPSender:
    """Posts encoded ``ExportTraceServiceRequest`` bodies to one endpoint, one attempt each."""

    def __init__(
        self, endpoint: str, headers: Mapping[str, str] | None = None, timeout: float | None = None
    ) -> None:
        self.endpoint = endpoint
        self.headers = {"content-type": "application/x-protobuf", **(headers or {})}
        self.timeout = _timeout() if timeout is None else timeout
        self.gzip = _gzip()
        if self.gzip:
            self.headers["content-encoding"] = "gzip"
        self._session = requests.Session()

    @property
    def key(self) -> str:
        """What a spooled request depends on: where it goes and as whom."""
        return f"{self.endpoint}\n{self.headers.get('authorization', '')}"

    def send(self, body: bytes) -> SendResult:
        data = gzip.compress(body, compresslevel=6) if self.gzip else body
        try:
            resp = self._session.post(
                self.endpoint, data=data, headers=self.headers, timeout=self.timeout
            )
        except requests.RequestException as exc:  # refused, reset, timed out: try again later
            return SendResult(Outcome.RETRY, f"{type(exc).__name__}: {exc}")
        code = resp.status_code
        if 200 <= code < 300:
            return SendResult(Outcome.DELIVERED)
        detail = f"HTTP {code}: {resp.text[:200]}"
        if code in (408, 429) or code >= 500:
            return SendResult(Outcome.RETRY, detail, _retry_after(resp.headers.get("retry-after")))
        return SendResult(Outcome.REFUSED, detail)

    def close(self) -> None:
        self._session.close()


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: the backoff decides
