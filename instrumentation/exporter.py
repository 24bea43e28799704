"""The edge exporter: capture switches, redaction and pin flags applied before spans leave.

Why an exporter wrapper and not a span processor: an ended span is immutable
(``ReadableSpan``), and ``on_end`` runs on the thread that ended it, that is,
inside the agent's own call. Wrapping the exporter does the work on the batch
processor's worker thread, once per batch, and rebuilds only the spans it
changes; the agent's thread pays nothing for redaction (measured in
``bench/instrumentation_overhead.py``).

Fail closed: if rewriting a span fails, that span is dropped (and counted),
never exported unredacted. The wrapped exporter's own failures are its result.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import Status

from agentledger.instrumentation.capture import CaptureConfig, content_kind
from agentledger.instrumentation.pinning import ModelPins
from agentledger.instrumentation.redaction import RedactionPolicy, Redactor
from agentledger.schemas.attributes import AgentLedger as AL
from agentledger.schemas.attributes import GenAI as G
from agentledger.schemas.attributes import OpenInference as OI

__all__ = ["EdgeExporter", "SpanRewriter"]

logger = logging.getLogger(__name__)

_LLM_MODEL_KEYS = (OI.LLM_RESPONSE_MODEL, OI.LLM_MODEL_NAME, G.RESPONSE_MODEL)


class SpanRewriter:
    """Turns one span's attributes into what may leave the process.

    ``agent_name`` is the configured default agent (a span's own
    ``agentledger.agent.name`` wins) for pin lookups.
    """

    def __init__(
        self,
        capture: CaptureConfig,
        redaction: RedactionPolicy | None,
        pins: ModelPins | None = None,
        agent_name: str = "",
    ) -> None:
        self.capture = capture
        self.redactor = Redactor(redaction) if redaction is not None else None
        self.policy_label = redaction.label if redaction is not None else ""
        self.pins = pins if pins else None
        self.agent_name = agent_name
        self.dropped = 0

    @property
    def active(self) -> bool:
        """False when no span would ever change (the exporter then passes spans straight through)."""
        return not self.capture.everything or self.redactor is not None or self.pins is not None

    def attributes(self, attrs: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
        """The rewritten attributes and whether anything changed."""
        out: dict[str, Any] = {}
        changed = False
        redacted = 0
        capture = self.capture
        everything = capture.everything
        redactor = self.redactor
        span_kind = str(attrs.get(OI.SPAN_KIND, "")).upper()
        for key, value in attrs.items():
            if not everything:
                kind = content_kind(key, span_kind, attrs)
                if kind is not None and not capture.allows(kind):
                    continue
            if redactor is not None:
                if isinstance(value, str):
                    new = redactor.value(key, value)
                    if new != value:
                        changed = True
                        redacted += 1
                        if new is None:
                            continue
                        value = new
                elif isinstance(value, (tuple, list)) and value and isinstance(value[0], str):
                    items = [redactor.value(key, v) if isinstance(v, str) else v for v in value]
                    kept = tuple(v for v in items if v is not None)
                    if kept != tuple(value):
                        changed = True
                        redacted += 1
                        value = kept
            out[key] = value
        if not everything:  # on every span: content absent by policy, not empty
            out[AL.CAPTURE_OMITTED] = capture.omitted
            changed = True
        if redactor is not None:
            out[AL.REDACTION_POLICY] = self.policy_label
            if redacted:
                out[AL.REDACTION_COUNT] = redacted
            changed = True
        if self.pins is not None and AL.MODEL_PIN not in attrs and span_kind in ("LLM", ""):
            answered = next((attrs[k] for k in _LLM_MODEL_KEYS if k in attrs), None)
            if isinstance(answered, str):
                agent = str(attrs.get(AL.AGENT_NAME) or self.agent_name)
                before = len(out)
                self.pins.check(agent, answered, out)
                changed = changed or len(out) != before
        return out, changed

    def _text(self, value: str) -> str:
        return self.redactor.text(value) if self.redactor is not None else value

    def span(self, span: ReadableSpan) -> ReadableSpan:
        """The span as it may be exported (the same object when nothing changes)."""
        attrs, changed = self.attributes(span.attributes or {})
        events = span.events
        if self.redactor is not None and events:
            new_events = []
            for ev in events:
                ev_attrs, ev_changed = self.attributes(ev.attributes or {})
                ev_attrs.pop(AL.REDACTION_POLICY, None)
                new_events.append(Event(ev.name, ev_attrs, ev.timestamp) if ev_changed else ev)
            events = tuple(new_events)
            changed = True
        status = span.status
        if self.redactor is not None and status.description:
            status = Status(status.status_code, self._text(status.description))
        if not changed:
            return span
        return ReadableSpan(
            name=span.name,
            context=span.context,
            parent=span.parent,
            resource=span.resource,
            attributes=attrs,
            events=events,
            links=span.links,
            kind=span.kind,
            status=status,
            start_time=span.start_time,
            end_time=span.end_time,
            instrumentation_scope=span.instrumentation_scope,
        )


class EdgeExporter(SpanExporter):
    """Wraps a ``SpanExporter``: rewrites each batch with a :class:`SpanRewriter`, then exports it.

    Contract: never exports a span it failed to rewrite; never raises from
    ``export`` (a failure is logged and reported as ``FAILURE``).
    """

    def __init__(self, inner: SpanExporter, rewriter: SpanRewriter) -> None:
        self.inner = inner
        self.rewriter = rewriter

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        rewriter = self.rewriter
        if rewriter.active:
            out = []
            for span in spans:
                try:
                    out.append(rewriter.span(span))
                except Exception:
                    rewriter.dropped += 1
                    logger.exception("dropped span %r: it could not be redacted", span.name)
            spans = out
        try:
            return self.inner.export(spans)
        except Exception:
            logger.exception("span export failed")
            return SpanExportResult.FAILURE

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        flush = getattr(self.inner, "force_flush", None)
        return bool(flush(timeout_millis)) if flush is not None else True
