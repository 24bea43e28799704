"""Lean spans: AgentLedger's own hot-path spans without the SDK's per-span machinery.

An SDK span costs the calling thread more than the whole rest of an LLM call's
instrumentation: ``Tracer.start_span`` builds a sampling result, bounded
attribute and event containers each with a lock, runs every processor's
``on_start``, and ``end`` copies the span into a ``ReadableSpan`` under another
lock (measured in ``bench/instrumentation_overhead.py``). When none of that
can change what is recorded, :class:`LeanTracer` starts a :class:`LeanSpan`
instead: ids from the provider's id generator, the parent and trace state the
SDK's default sampler would give, the attribution the
:class:`~agentledger.instrumentation.processors.AttributionProcessor` would
stamp, and at ``end`` one SDK ``ReadableSpan`` handed to the provider's
processors, exactly what the SDK path hands them.

"When none of that can change what is recorded" is checked on every start
(one tuple comparison once cached), else the SDK path is taken:

- the tracer is an SDK tracer, enabled, with the default sampler
  (parent-based, always on) and no SDK self-metrics;
- the provider's only span processor is AgentLedger's switchboard, and every
  processor in it is the attribution processor or one whose ``on_start`` and
  ``_on_ending`` do nothing (the SDK's batch and simple export processors);
- the parent, if any, is sampled (an unsampled parent gets the SDK's
  non-recording span);
- no attribute value length limit is set (the attribute count limit is
  applied at ``end``, by the SDK's own bounded container).

Code running inside the span sees a real recording span
(``trace.get_current_span()``): attributes, events, status and name set on it
are kept, with the SDK's validation of attribute values.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable, Iterator, Mapping
from time import time_ns
from typing import Any

from opentelemetry import context as context_api
from opentelemetry import trace as trace_api
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk import trace as sdk_trace
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanProcessor, sampling
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.trace import SpanContext, SpanKind, TraceFlags
from opentelemetry.trace.propagation import _SPAN_KEY
from opentelemetry.trace.status import Status, StatusCode
from opentelemetry.util import types

from agentledger.instrumentation.processors import AttributionProcessor, Switchboard

try:
    from opentelemetry.sdk.trace._tracer_metrics import NoOpTracerMetrics as _NoOpMetrics
except ImportError:  # pragma: no cover - SDKs before self-metrics
    _NoOpMetrics = None  # type: ignore[assignment,misc]

__all__ = ["LeanSpan", "LeanTracer"]

logger = logging.getLogger(__name__)

_NOOP_ON_START = {SpanProcessor.on_start, BatchSpanProcessor.on_start, SimpleSpanProcessor.on_start}
_NOOP_ON_ENDING = {
    getattr(c, "_on_ending", None) for c in (SpanProcessor, BatchSpanProcessor, SimpleSpanProcessor)
}
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_SAMPLED_RANDOM = TraceFlags(TraceFlags.SAMPLED | getattr(TraceFlags, "RANDOM_TRACE_ID", 0))
_UNSET = Status(StatusCode.UNSET)
_EMPTY_STATE = trace_api.TraceState()


class LeanSpan(trace_api.Span):
    """A recording span whose attributes are a plain dict until it ends (see the module docstring)."""

    __slots__ = (
        "_attrs",
        "_context",
        "_end",
        "_events",
        "_kind",
        "_later",
        "_name",
        "_owner",
        "_parent",
        "_start",
        "_status",
    )

    def __init__(
        self,
        owner: LeanTracer,
        name: str,
        context: SpanContext,
        parent: SpanContext | None,
        kind: SpanKind,
        attributes: dict[str, Any],
    ) -> None:
        self._owner = owner
        self._name = name
        self._context = context
        self._parent = parent
        self._kind = kind
        self._attrs = attributes
        self._events: list[Event] | None = None
        self._later: list[tuple[Callable[..., Mapping[str, Any]], tuple[Any, ...]]] | None = None
        self._status = _UNSET
        self._end: int | None = None
        self._start = time_ns()

    # -- trace_api.Span ---------------------------------------------------------------------------

    def get_span_context(self) -> SpanContext:
        return self._context

    def is_recording(self) -> bool:
        return self._end is None

    def set_attribute(self, key: str, value: types.AttributeValue) -> None:
        if self._end is None:  # validated and cleaned as the SDK's span does, by its own container
            checked = BoundedAttributes(None, None, immutable=False)
            checked[key] = value
            if key in checked:
                self._attrs[key] = checked[key]

    def set_attributes(self, attributes: Mapping[str, types.AttributeValue]) -> None:
        for key, value in attributes.items():
            self.set_attribute(key, value)

    def update_attributes(self, attributes: Mapping[str, Any]) -> None:
        """Values already known to be valid (AgentLedger's own), set without checking each one."""
        if self._end is None:
            self._attrs.update(attributes)

    def set_attributes_later(
        self, build: Callable[..., Mapping[str, Any]], args: tuple[Any, ...]
    ) -> None:
        """Attributes ``build(*args)`` computes, computed when the span is exported, off the caller's thread.

        For AgentLedger's own attributes of request and response objects the
        caller no longer changes (the caller snapshots what it may change).
        They are applied after the attributes set directly, in the order
        given; a ``build`` that fails is logged and contributes nothing.
        """
        if self._end is None:
            if self._later is None:
                self._later = []
            self._later.append((build, args))

    def add_event(
        self, name: str, attributes: types.Attributes = None, timestamp: int | None = None
    ) -> None:
        if self._end is not None:
            return
        limits = self._owner.limits
        bounded = BoundedAttributes(
            limits.max_event_attributes,
            attributes,
            max_value_len=limits.max_attribute_length,
            immutable=True,
        )
        events = self._events
        if events is None:
            events = self._events = []
        if limits.max_events is None or len(events) < limits.max_events:
            events.append(Event(name=name, attributes=bounded, timestamp=timestamp))

    def add_link(self, context: SpanContext, attributes: types.Attributes = None) -> None:
        logger.debug("links added after start are not recorded on AgentLedger's lean spans")

    def update_name(self, name: str) -> None:
        if self._end is None:
            self._name = name

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        if self._end is not None or self._status.status_code is StatusCode.OK:
            return  # the SDK's rule: OK is final
        if type(status) is StatusCode:
            status = Status(status, description)
        if status.status_code is not StatusCode.UNSET:
            self._status = status

    def record_exception(
        self,
        exception: BaseException,
        attributes: types.Attributes = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        # the attributes the SDK's Span.record_exception writes
        module = type(exception).__module__
        qualname = type(exception).__qualname__
        attrs: dict[str, Any] = {
            "exception.type": f"{module}.{qualname}"
            if module and module != "builtins"
            else qualname,
            "exception.message": str(exception),
            "exception.stacktrace": "".join(traceback.format_exception(exception)),
            "exception.escaped": str(escaped),
        }
        if attributes:
            attrs.update(attributes)
        self.add_event("exception", attrs, timestamp)

    def end(self, end_time: int | None = None) -> None:
        if self._end is not None:
            return
        self._end = end_time if end_time is not None else time_ns()
        owner = self._owner
        attrs: Any = self._attrs
        limit = owner.limits.max_span_attributes
        if self._later is not None:
            attrs = _DeferredAttributes(attrs, self._later, limit)
        elif (
            limit is not None and len(attrs) > limit
        ):  # the SDK's container decides what is dropped, and counts it
            attrs = BoundedAttributes(limit, attrs, immutable=True)
        tracer = owner.tracer
        readable = _LeanReadableSpan(
            name=self._name,
            context=self._context,
            parent=self._parent,
            resource=tracer.resource,
            attributes=attrs,
            events=tuple(self._events) if self._events else (),
            links=(),
            kind=self._kind,
            status=self._status,
            start_time=self._start,
            end_time=self._end,
            instrumentation_info=tracer.instrumentation_info,
            instrumentation_scope=tracer._instrumentation_scope,
        )
        try:
            tracer.span_processor.on_end(readable)
        except Exception:  # telemetry never breaks the agent
            logger.exception("a span processor failed on an AgentLedger span")


class _DeferredAttributes(Mapping[str, Any]):
    """A span's attributes with the deferred ones computed on first read (the exporter's thread)."""

    __slots__ = ("_done", "_immediate", "_later", "_limit")

    def __init__(
        self,
        immediate: dict[str, Any],
        later: list[tuple[Callable[..., Mapping[str, Any]], tuple[Any, ...]]],
        limit: int | None,
    ) -> None:
        self._immediate = immediate
        self._later = later
        self._limit = limit
        self._done: Mapping[str, Any] | None = None

    def resolved(self) -> Mapping[str, Any]:
        done = self._done
        if done is None:
            attrs = dict(self._immediate)
            for build, args in self._later:
                try:
                    attrs.update(build(*args))
                except Exception:  # telemetry never breaks the agent, nor the export
                    logger.exception("failed to compute the attributes of an AgentLedger span")
            limit = self._limit
            done = (
                BoundedAttributes(limit, attrs, immutable=True)
                if limit is not None and len(attrs) > limit
                else attrs
            )
            self._done = done
        return done

    def __getitem__(self, key: str) -> Any:
        return self.resolved()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.resolved())

    def __len__(self) -> int:
        return len(self.resolved())


class _LeanReadableSpan(ReadableSpan):
    """An SDK ``ReadableSpan`` whose attribute drop count sees through deferred attributes."""

    @property
    def dropped_attributes(self) -> int:
        attrs = self._attributes
        if isinstance(attrs, _DeferredAttributes):
            attrs = attrs.resolved()
        return attrs.dropped if isinstance(attrs, BoundedAttributes) else 0


class LeanTracer:
    """Starts :class:`LeanSpan` when equivalent to the SDK's span, else an SDK span (module docstring)."""

    def __init__(self, tracer: trace_api.Tracer, board: Switchboard | None) -> None:
        self.tracer: Any = tracer
        self.board = board
        self.limits: Any = getattr(tracer, "_span_limits", None)
        # (provider's processors, switchboard's processors, lean?, attribution processor): one tuple,
        # replaced whole, so a thread never reads a verdict with another configuration's attribution
        self._verdict: tuple[Any, Any, bool, AttributionProcessor | None] = (
            object(),
            object(),
            False,
            None,
        )

    def _eligible(self) -> tuple[bool, AttributionProcessor | None]:
        """Whether the lean path applies, and the attribution processor to emulate (module docstring)."""
        processors = getattr(getattr(self.tracer, "span_processor", None), "_span_processors", None)
        inner = self.board.processors if self.board is not None else None
        verdict = (
            self._verdict
        )  # both tuples are replaced, never changed in place: identity says "unchanged"
        if verdict[0] is not processors or verdict[1] is not inner:
            ok, attribution = self._judge(processors)
            verdict = self._verdict = (processors, inner, ok, attribution)
        return verdict[2], verdict[3]

    def _judge(self, processors: Any) -> tuple[bool, AttributionProcessor | None]:
        tracer, board = self.tracer, self.board
        if board is None or processors != (board,) or not isinstance(tracer, sdk_trace.Tracer):
            return False, None
        limits = self.limits
        if limits is None or limits.max_attribute_length is not None:
            return False, None
        if tracer.sampler is not sampling.DEFAULT_ON:
            return False, None
        metrics = getattr(tracer, "_tracer_metrics", None)
        if metrics is not None and (_NoOpMetrics is None or not isinstance(metrics, _NoOpMetrics)):
            return False, None
        attribution = None
        for p in board.processors:
            if isinstance(p, AttributionProcessor):
                if attribution is not None:
                    return False, None
                attribution = p
            elif (
                type(p).on_start not in _NOOP_ON_START
                or getattr(type(p), "_on_ending", None) not in _NOOP_ON_ENDING
            ):
                return False, None
        return True, attribution

    def start_span(self, name: str, kind: SpanKind = SpanKind.INTERNAL) -> trace_api.Span:
        """A span started in the current context (lean when that changes nothing, else the SDK's)."""
        tracer = self.tracer
        lean, attribution = self._eligible()
        if not lean or not tracer._is_enabled():
            return tracer.start_span(name, kind=kind)
        parent = trace_api.get_current_span().get_span_context()
        gen = tracer.id_generator
        if parent.is_valid:
            if not parent.trace_flags.sampled:
                return tracer.start_span(name, kind=kind)
            trace_id = parent.trace_id
            random = getattr(parent.trace_flags, "random_trace_id", False)
            state = parent.trace_state
        else:
            parent = None
            trace_id = gen.generate_trace_id()
            random = gen.is_trace_id_random() if hasattr(gen, "is_trace_id_random") else False
            state = _EMPTY_STATE
        context = SpanContext(
            trace_id,
            gen.generate_span_id(),
            is_remote=False,
            trace_flags=_SAMPLED_RANDOM if random else _SAMPLED,
            trace_state=state,
        )
        attrs: dict[str, Any] = {}
        if attribution is not None:
            try:
                attrs.update(attribution.attributes(None))
            except Exception:  # as the processor's on_start: telemetry never breaks the agent
                logger.exception("failed to stamp the principal on a span")
        return LeanSpan(self, name, context, parent, kind, attrs)


def context_with(span: trace_api.Span, values: Mapping[str, object]) -> context_api.Context:
    """The current context with ``span`` current and ``values`` set under their keys, in one copy."""
    current = dict(context_api.get_current())
    current[_SPAN_KEY] = span
    current.update(values)
    return context_api.Context(current)
