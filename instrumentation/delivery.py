"""Where a batch of spans goes: the collector, else the spool, else (counted) nowhere.

The export queue (:mod:`agentledger.instrumentation.export_queue`) hands each
batch to a sink:

- :class:`OTLPSink` (the normal case): rewrites the spans (capture switches,
  redaction, pin flags: nothing unredacted is ever written to disk), encodes one
  OTLP request, and sends it with one attempt. If the collector cannot take it
  now, the request goes to the :class:`~agentledger.instrumentation.spool.Spool`;
  while the spool holds anything, new requests are appended behind it, so the
  collector receives them in the order they were made. The spool is re-sent
  oldest first, with exponential backoff (``Retry-After`` honoured), by this
  process or by the next one that starts after a crash.
- :class:`ExporterSink`: an exporter given to ``instrument(exporter=...)``
  (tests, other backends). It has no spool, by design: the spool keeps encoded
  OTLP requests for one collector endpoint and key, and an arbitrary
  ``SpanExporter`` (console, in-memory, a vendor's) neither takes those nor
  says whether a failure is worth retrying. So a batch it fails to export is
  counted as lost (reason ``exporter failed, no spool``), warned about and
  reported like any loss, and ``on_full="block"`` holds and retries it instead.
  For durability, export to an OTLP endpoint (the collector, or an
  OpenTelemetry Collector with a persistent queue in front of another backend).

:class:`DeliveryConfig` reads the ``AGENTLEDGER_*`` variables of both.
"""

from __future__ import annotations

import enum
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult

from agentledger.instrumentation import config as cfg
from agentledger.instrumentation.exporter import EdgeExporter, SpanRewriter
from agentledger.instrumentation.losses import LOSS_SPAN, LossLedger
from agentledger.instrumentation.otlp import encode_request
from agentledger.instrumentation.sender import OTLPSender, Outcome
from agentledger.instrumentation.spool import DEFAULT_MAX_MB, Spool, SpoolEntry, default_spool_dir

__all__ = ["DeliveryConfig", "ExporterSink", "OTLPSink", "Stored"]

logger = logging.getLogger(__name__)


class Stored(enum.Enum):
    SENT = "sent"
    SPOOLED = "spooled"
    REFUSED = "refused"  # the collector refused it for good (counted by the sink)
    NOWHERE = (
        "nowhere"  # neither sent nor spooled: the caller decides (count, or hold in block mode)
    )


def _number(name: str, default: float, low: float = 0.0) -> float:
    raw = cfg.env(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a number") from None
    if value < low:
        raise ValueError(f"{name}={raw!r}: must be at least {low}")
    return value


@dataclass(frozen=True)
class DeliveryConfig:
    """How the agent side holds spans it cannot send yet (README, configuration table)."""

    on_full: str = "spool"
    """``spool``: wait ``queue_wait_s`` for queue space, then spool; ``block``: wait, never drop."""
    queue_size: int = 4096
    queue_wait_s: float = 0.005
    batch_size: int = 1024
    schedule_delay_s: float = 0.2
    high_water: float = 0.5
    """Queue fill (fraction) above which deferred attributes are built on the caller's thread."""
    spool_dir: Path | None = None
    spool_max_bytes: int = DEFAULT_MAX_MB << 20
    flush_timeout_s: float = 5.0
    max_backoff_s: float = 5.0

    @classmethod
    def resolve(
        cls, on_full: str | None = None, spool_dir: str | Path | None = None
    ) -> DeliveryConfig:
        mode = (on_full or cfg.env("AGENTLEDGER_ON_FULL") or "spool").lower()
        if mode not in ("spool", "block"):
            raise ValueError(f"on_full / AGENTLEDGER_ON_FULL: {mode!r} is not 'spool' or 'block'")
        directory = spool_dir or cfg.env("AGENTLEDGER_SPOOL_DIR")
        return cls(
            on_full=mode,
            queue_size=int(_number("AGENTLEDGER_QUEUE_SIZE", 4096, 1)),
            queue_wait_s=_number("AGENTLEDGER_QUEUE_WAIT_MS", 5.0) / 1000,
            high_water=_number("AGENTLEDGER_QUEUE_HIGH_WATER", 0.5),
            spool_dir=Path(directory).expanduser() if directory else default_spool_dir(),
            spool_max_bytes=int(_number("AGENTLEDGER_SPOOL_MAX_MB", DEFAULT_MAX_MB) * (1 << 20)),
            flush_timeout_s=_number("AGENTLEDGER_FLUSH_TIMEOUT_S", 5.0),
        )


class ExporterSink:
    """A caller's ``SpanExporter`` behind the edge exporter; no spool (module docstring)."""

    spool: Spool | None = None
    unsent_reason = "exporter failed, no spool"

    def __init__(self, exporter: EdgeExporter, losses: LossLedger) -> None:
        self.exporter = exporter
        self.losses = losses

    def write(self, spans: Sequence[ReadableSpan]) -> Stored:
        if all(s.name == LOSS_SPAN for s in spans):  # our own counts: nothing to rewrite
            try:
                result = self.exporter.inner.export(spans)
            except Exception:
                logger.exception("span export failed")
                return Stored.NOWHERE
            return Stored.SENT if result is SpanExportResult.SUCCESS else Stored.NOWHERE
        before = self.exporter.rewriter.dropped
        result = self.exporter.export(spans)
        self.losses.add(self.exporter.rewriter.dropped - before, "not redactable")
        return Stored.SENT if result is SpanExportResult.SUCCESS else Stored.NOWHERE

    def spill(self, spans: Sequence[ReadableSpan]) -> bool:
        return False

    def drain(self, force: bool = False) -> None:
        pass

    def pending(self) -> int:
        return 0

    def retry_in(self) -> float:
        return 0.0

    def close(self) -> None:
        try:
            self.exporter.force_flush()
        finally:
            self.exporter.shutdown()


class OTLPSink:
    """OTLP/HTTP to the collector with the spool behind it (module docstring)."""

    unsent_reason = "collector unreachable and spool full"

    def __init__(
        self,
        sender: OTLPSender,
        rewriter: SpanRewriter,
        spool: Spool | None,
        losses: LossLedger,
        max_backoff_s: float = 5.0,
    ) -> None:
        self.sender = sender
        self.rewriter = rewriter
        self.spool = spool
        self.losses = losses
        self.max_backoff_s = max_backoff_s
        self.sent_spans = 0
        self._backoff = 0.0
        self._next_try = 0.0
        self._scanned = time.monotonic()
        # requests left by an earlier process (a crash, a collector that was down): they go first
        self._backlog = bool(spool and spool.entries())

    def encode(self, spans: Sequence[ReadableSpan]) -> tuple[bytes, int] | None:
        """The OTLP request of ``spans`` as they may leave the process (fail closed on redaction)."""
        rewriter = self.rewriter
        if rewriter.active:
            out = []
            for span in spans:
                if span.name == LOSS_SPAN:  # our own counts, no content: nothing to rewrite
                    out.append(span)
                    continue
                try:
                    out.append(rewriter.span(span))
                except Exception:
                    self.losses.add(1, "not redactable", self.losses.agent_of(span))
                    logger.exception("dropped span %r: it could not be redacted", span.name)
            spans = out
        return (encode_request(spans), len(spans)) if spans else None

    def write(self, spans: Sequence[ReadableSpan]) -> Stored:
        encoded = self.encode(spans)
        if encoded is None:
            return Stored.SENT  # nothing may leave (counted in encode)
        body, n = encoded
        if self.spool is not None and (self._backlog or time.monotonic() < self._next_try):
            return self._to_spool(body, n)  # behind what is waiting, in order
        result = self.sender.send(body)
        if result.outcome is Outcome.DELIVERED:
            self.sent_spans += n
            return Stored.SENT
        if result.outcome is Outcome.REFUSED:
            self._refused(n, result.detail, spans)
            return Stored.REFUSED
        self._failed(result.detail, result.retry_after)
        return self._to_spool(body, n)

    def spill(self, spans: Sequence[ReadableSpan]) -> bool:
        """Spans the export queue had no room for, written straight to the spool (caller's thread)."""
        if self.spool is None:
            return False
        encoded = self.encode(spans)
        return encoded is None or self._to_spool(*encoded) is Stored.SPOOLED

    def _to_spool(self, body: bytes, n: int) -> Stored:
        if self.spool is not None and self.spool.append(body, n):
            self._backlog = True
            return Stored.SPOOLED
        return Stored.NOWHERE

    def _refused(self, n: int, detail: str, spans: Sequence[ReadableSpan] = ()) -> None:
        logger.error("the collector refused %d spans for good (%s): they are lost", n, detail)
        if spans:
            self.losses.add_spans(spans, "refused by the collector")
        else:  # from the spool: counted, of no particular agent
            self.losses.add(n, "refused by the collector")

    def _failed(self, detail: str, retry_after: float | None) -> None:
        if self._backoff == 0.0:
            logger.warning(
                "the collector at %s cannot take spans now (%s): keeping them in the spool and "
                "re-sending with backoff",
                self.sender.endpoint,
                detail,
            )
        self._backoff = min(self.max_backoff_s, max(0.25, self._backoff * 2))
        wait = self._backoff if retry_after is None else min(60.0, retry_after)
        self._next_try = time.monotonic() + wait

    def retry_in(self) -> float:
        return max(0.0, self._next_try - time.monotonic())

    def pending(self) -> int:
        """Spans waiting in the spool (any process's)."""
        return sum(e.spans for e in self.spool.entries()) if self.spool is not None else 0

    def drain(self, force: bool = False, budget_s: float = 2.0) -> None:
        """Re-send the spool, oldest first, until it is empty, the collector fails, or ``budget_s``."""
        spool = self.spool
        if spool is None:
            return
        now = time.monotonic()
        if not self._backlog:
            if now - self._scanned < 5.0:
                return
            self._scanned = now  # another process's leftovers
            if not spool.entries():
                return
        if not force and now < self._next_try:
            return
        with spool.draining() as mine:
            if not mine:  # another process is sending it
                self._next_try = now + 1.0
                return
            deadline = now + budget_s
            entries = spool.entries()
            while entries:
                group, body = _coalesce(spool, entries)
                del entries[: len(group)]
                if not body:  # sent by another process meanwhile
                    continue
                result = self.sender.send(body)
                if result.outcome is Outcome.RETRY:
                    self._failed(result.detail, result.retry_after)
                    return
                spans = sum(e.spans for e in group)
                for entry in group:
                    spool.remove(entry)
                if result.outcome is Outcome.REFUSED:
                    self._refused(spans, result.detail)
                else:
                    self.sent_spans += spans
                    if self._backoff:
                        logger.warning(
                            "the collector at %s takes spans again: sending the spool",
                            self.sender.endpoint,
                        )
                    self._backoff, self._next_try = 0.0, 0.0
                if time.monotonic() > deadline:
                    return
            self._backlog = bool(spool.entries())

    def close(self) -> None:
        self.sender.close()


_GROUP_SPANS = 2048
_GROUP_BYTES = 4 << 20


def _coalesce(spool: Spool, entries: list[SpoolEntry]) -> tuple[list[SpoolEntry], bytes]:
    """The oldest entries as one request (up to 2,048 spans or 4 MB), and its body.

    Serialized ``ExportTraceServiceRequest`` messages concatenate into one valid
    request (their ``resource_spans`` are a repeated field), so a spool of many
    small requests goes out in a few large ones, in the same order. Entries that
    another process sent meanwhile are skipped (returned, with no body).
    """
    group: list[SpoolEntry] = []
    parts: list[bytes] = []
    spans = size = 0
    for entry in entries:
        if group and (spans + entry.spans > _GROUP_SPANS or size + entry.size > _GROUP_BYTES):
            break
        body = spool.read(entry)
        if body is None:
            if not group:
                return [entry], b""
            break
        group.append(entry)
        parts.append(body)
        spans += entry.spans
        size += len(body)
    return group, b"".join(parts)


def spool_for(config: DeliveryConfig, sender: OTLPSender) -> Spool | None:
    """The spool of this endpoint and credential (None: disabled, with the warning logged)."""
    base = config.spool_dir or default_spool_dir()
    if os.environ.get("AGENTLEDGER_SPOOL", "").strip().lower() in ("0", "off", "false", "no"):
        logger.warning("AgentLedger's spool is off (AGENTLEDGER_SPOOL=0)")
        return None
    return Spool.open(base, sender.key, config.spool_max_bytes)
