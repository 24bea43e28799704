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
- no attribute value length limit is set, for spans or in general (the
  attribute count limit is applied at ``end``, by the SDK's own bounded
  container).

Code running inside the span sees a real recording span
(``trace.get_current_span()``): attributes, events, status and name set on it
are kept, with the SDK's validation of attribute values.

Private SDK internals, and the version gate
-------------------------------------------
The emulation reads SDK state that is not public API: the tracer's
``_span_limits`` and ``_instrumentation_scope``; its
``span_processor._span_processors`` (the provider's processors); its
``_is_enabled()`` (SDK 1.40 and later: the tracer configurator; before, every
tracer is enabled); its ``_tracer_metrics`` and
``opentelemetry.sdk.trace._tracer_metrics.NoOpTracerMetrics`` (the SDK's own
span metrics, 1.40 and later); the processors' ``_on_ending`` hook (1.40 and
later); ``ReadableSpan._attributes`` (the drop count of deferred attributes);
and the API's ``opentelemetry.trace.propagation._SPAN_KEY`` with ``Context``
being a ``dict`` (:func:`context_with`). ``_spans.set_attributes`` writes an SDK
span's ``_attributes._dict`` under its ``_lock``. Beyond those names, it
reproduces what the SDK's ``start_span``, ``Span`` and ``record_exception`` do,
which any release may change.

So the fast path (lean spans, :func:`context_with`'s one copy, the direct
attribute write) is used only

- on an ``opentelemetry-sdk`` release within :data:`TESTED_SDK` (read once,
  with ``importlib.metadata``; scripts/test_otel_versions.sh tests the oldest,
  the pinned and the newest release);
- whose internals are all found (feature detection: SDK 1.40 and 1.41, for
  one, count every span in self-metrics a lean span cannot emulate);
- unless ``AGENTLEDGER_FAST_PATH=0`` (also ``false``, ``no``, ``off``) turns
  it off. The variable is read once, with the version, at the first use
  (``instrument()``); ``1`` or unset: on where supported, never outside the
  tested range.

Otherwise :class:`LeanTracer` always starts the SDK's own spans, and the
reason is logged once at debug level; :func:`fast_path_supported` (and
:func:`fast_path_status`, with the reason) say which applies. A private
attribute missing from one tracer, or any unexpected failure on the fast path,
is logged and falls back to the SDK path too: it never raises into the agent.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Mapping
from importlib import metadata
from importlib.util import find_spec
from typing import TYPE_CHECKING, Any

from opentelemetry import context as context_api
from opentelemetry import trace as trace_api
from opentelemetry.sdk import trace as sdk_trace
from opentelemetry.sdk.trace import SpanProcessor, sampling
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.trace import SpanContext, SpanKind, TraceFlags

from agentledger.instrumentation._lean_span import (
    _UNSET,
    LeanSpan,
    _DeferredAttributes,
    _LeanReadableSpan,
)

if TYPE_CHECKING:  # imported where used: processors -> _spans -> this module
    from agentledger.instrumentation.processors import AttributionProcessor, Switchboard

try:
    from opentelemetry.trace.propagation import _SPAN_KEY
except ImportError:  # pragma: no cover - an API without it: context_with takes the public path
    _SPAN_KEY = None  # type: ignore[assignment]

try:
    from opentelemetry.sdk.trace._tracer_metrics import NoOpTracerMetrics as _NoOpMetrics
except ImportError:  # SDKs before self-metrics (< 1.40), or with them always on (1.40, 1.41)
    _NoOpMetrics = None  # type: ignore[assignment,misc]

__all__ = [
    "FAST_PATH_ENV",
    "TESTED_SDK",
    "LeanSpan",
    "LeanTracer",
    "context_with",
    "fast_path_status",
    "fast_path_supported",
]

logger = logging.getLogger(__name__)

TESTED_SDK: tuple[str, str] = ("1.30.0", "1.45.2")
"""The ``opentelemetry-sdk`` releases the fast path is known to be right on, both ends included.

The oldest is the floor in pyproject.toml, the newest the newest release when
this was last checked (scripts/test_otel_versions.sh runs the tests on the
oldest, the pinned and the newest release: move the upper end once they pass
on a new release). Outside it the SDK's own path is taken, whatever
``AGENTLEDGER_FAST_PATH`` says.
"""

FAST_PATH_ENV = "AGENTLEDGER_FAST_PATH"
_OFF = frozenset({"0", "false", "no", "off"})
_ON = frozenset({"", "1", "true", "yes", "on", "auto"})

_status: tuple[bool, str] | None = None  # (supported, why): decided once, at the first use


def fast_path_supported() -> bool:
    """Whether AgentLedger's fast path (lean spans) may be used in this process (module docstring).

    False outside :data:`TESTED_SDK`, when an SDK internal it needs is missing,
    or with ``AGENTLEDGER_FAST_PATH=0``; then every span is the SDK's own.
    Decided once; the reason is logged at debug level then.
    """
    status = _status
    if status is None:
        status = fast_path_status()
    return status[0]


def fast_path_status() -> tuple[bool, str]:
    """``(fast_path_supported(), why)``: why, in words, e.g. for ``agentledger version``."""
    global _status
    status = _status
    if status is None:
        try:
            status = _decide()
        except Exception as exc:  # never raise into the agent: the SDK path is always right
            status = (False, f"the check failed ({type(exc).__name__}: {exc})")
        _status = status
        if status[0]:
            logger.debug("AgentLedger's lean span path is on: %s", status[1])
        else:
            logger.debug(
                "AgentLedger's lean span path is off, spans take the SDK's own path: %s",
                status[1],
            )
    return status


def _installed_sdk_version() -> str | None:
    """The installed ``opentelemetry-sdk`` distribution's version (None when not found)."""
    try:
        return metadata.version("opentelemetry-sdk")
    except metadata.PackageNotFoundError:
        return None


def _release(version: str) -> tuple[int, ...] | None:
    """``"1.45.1"`` -> ``(1, 45, 1)``, trailing zeros dropped; None for pre-, post-, dev or local releases."""
    if not re.fullmatch(r"\d+(?:\.\d+)*", version):
        return None
    parts = [int(p) for p in version.split(".")]
    while len(parts) > 1 and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


def _decide() -> tuple[bool, str]:
    raw = os.environ.get(FAST_PATH_ENV, "")
    setting = raw.strip().lower()
    if setting in _OFF:
        return False, f"turned off by {FAST_PATH_ENV}={raw.strip()}"
    if setting not in _ON:
        logger.warning(
            "%s=%r is neither 0 nor 1: the fast path stays automatic", FAST_PATH_ENV, raw
        )
    version = _installed_sdk_version()
    if version is None:
        return False, "the opentelemetry-sdk distribution was not found (its version is unknown)"
    low, high = TESTED_SDK
    release = _release(version)
    if release is None or not _release(low) <= release <= _release(high):  # type: ignore[operator]
        return False, f"opentelemetry-sdk {version} is outside the tested range {low} to {high}"
    missing = _missing_internals()
    if missing:
        return (
            False,
            f"opentelemetry-sdk {version} lacks what the fast path uses: {'; '.join(missing)}",
        )
    return True, f"opentelemetry-sdk {version} is within the tested range {low} to {high}"


def _missing_internals() -> list[str]:
    """The SDK internals the fast path needs that this SDK lacks (those of a tracer: ``LeanTracer``)."""
    missing = []
    if _SPAN_KEY is None or not issubclass(context_api.Context, dict):
        missing.append("opentelemetry.trace.propagation._SPAN_KEY in a dict Context")
    if _NoOpMetrics is None and find_spec("opentelemetry.sdk.trace._tracer_metrics") is not None:
        missing.append("NoOpTracerMetrics (its span self-metrics are always on)")
    try:
        multi = sdk_trace.SynchronousMultiSpanProcessor()  # type: ignore[no-untyped-call]
        ok = isinstance(multi._span_processors, tuple)
    except Exception:
        ok = False
    if not ok:
        missing.append("SynchronousMultiSpanProcessor._span_processors")
    try:  # the ReadableSpan built at end, with the fields it is built with
        probe = _LeanReadableSpan(
            name="probe",
            context=None,
            parent=None,
            resource=None,
            attributes=_DeferredAttributes({"a": 1}, [], None),
            events=(),
            links=(),
            kind=SpanKind.INTERNAL,
            status=_UNSET,
            start_time=0,
            end_time=0,
            instrumentation_info=None,
            instrumentation_scope=None,
        )
        ok = probe.dropped_attributes == 0 and dict(probe.attributes or {}) == {"a": 1}
    except Exception:
        ok = False
    if not ok:
        missing.append("ReadableSpan(...) as a lean span builds it, with ReadableSpan._attributes")
    return missing


_NOOP_ON_START = {SpanProcessor.on_start, BatchSpanProcessor.on_start, SimpleSpanProcessor.on_start}
_NOOP_ON_ENDING = {
    getattr(c, "_on_ending", None) for c in (SpanProcessor, BatchSpanProcessor, SimpleSpanProcessor)
}
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_SAMPLED_RANDOM = TraceFlags(TraceFlags.SAMPLED | getattr(TraceFlags, "RANDOM_TRACE_ID", 0))
_EMPTY_STATE = trace_api.TraceState()


class LeanTracer:
    """Starts :class:`LeanSpan` when equivalent to the SDK's span, else an SDK span (module docstring)."""

    def __init__(self, tracer: trace_api.Tracer, board: Switchboard | None) -> None:
        self.tracer: Any = tracer
        self.board = board
        self.limits: Any = getattr(tracer, "_span_limits", None)
        # SDK 1.40+: whether the tracer configurator enables this tracer; before, always enabled
        self._enabled: Callable[[], bool] = getattr(tracer, "_is_enabled", None) or _always
        self._told = False  # the reason this tracer is not lean, logged once
        fast_path_supported()  # decided (and, when off, logged) at instrument() time
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
        if not fast_path_supported():
            return False, None
        try:
            return self._judge_tracer(processors)
        except Exception as exc:  # an SDK unlike the tested ones: its own path, never an error
            self._tell(f"judging the tracer failed ({type(exc).__name__}: {exc})")
            return False, None

    def _tell(self, why: str) -> None:
        if not self._told:
            self._told = True
            logger.debug("AgentLedger's lean spans step aside for this tracer: %s", why)

    def _judge_tracer(self, processors: Any) -> tuple[bool, AttributionProcessor | None]:
        from agentledger.instrumentation.processors import AttributionProcessor

        tracer, board = self.tracer, self.board
        if board is None or processors != (board,) or not isinstance(tracer, sdk_trace.Tracer):
            return False, None
        internals = ("_span_limits", "_instrumentation_scope", "span_processor", "id_generator")
        missing = [name for name in internals if not hasattr(tracer, name)]
        if missing:
            self._tell(f"the SDK's tracer has no {', '.join(missing)}")
            return False, None
        limits = self.limits
        if (
            limits is None
            or limits.max_attribute_length is not None
            or getattr(limits, "max_span_attribute_length", None) is not None
        ):
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
        lean, attribution = self._eligible()
        if not lean or not self._enabled():
            return self._sdk_span(name, kind)
        try:
            return self._start_lean(name, kind, attribution)
        except Exception as exc:  # an SDK unlike the tested ones: its own span, never an error
            self._tell(f"starting a lean span failed ({type(exc).__name__}: {exc})")
            return self._sdk_span(name, kind)

    def _sdk_span(self, name: str, kind: SpanKind) -> trace_api.Span:
        span: trace_api.Span = self.tracer.start_span(name, kind=kind)
        return span

    def _start_lean(
        self, name: str, kind: SpanKind, attribution: AttributionProcessor | None
    ) -> trace_api.Span:
        current = trace_api.get_current_span().get_span_context()
        gen = self.tracer.id_generator
        parent: SpanContext | None
        if current.is_valid:
            if not current.trace_flags.sampled:
                return self._sdk_span(name, kind)
            parent = current
            trace_id = current.trace_id
            random = getattr(current.trace_flags, "random_trace_id", False)
            state = current.trace_state
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
    """The current context with ``span`` current and ``values`` set under their keys, in one copy.

    One copy relies on the API's private span key; off the fast path, the public
    functions make one copy a value.
    """
    if not fast_path_supported():
        context = trace_api.set_span_in_context(span)
        for key, value in values.items():
            context = context_api.set_value(key, value, context)
        return context
    current = dict(context_api.get_current())
    current[_SPAN_KEY] = span
    current.update(values)
    return context_api.Context(current)


def _always() -> bool:
    return True
