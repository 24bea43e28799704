"""The lean span itself: a recording span whose attributes stay a plain dict until it ends.

Kept apart from the tracer that decides when a lean span may be started
(``_lean.py``, whose docstring says when and why, and which SDK internals both
rely on): this module is what runs on the agent's thread for every call, the
tracer only once per span start.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Callable, ItemsView, Iterator, KeysView, Mapping, ValuesView
from time import time_ns
from typing import TYPE_CHECKING, Any

from opentelemetry import trace as trace_api
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.trace import SpanContext, SpanKind
from opentelemetry.trace.status import Status, StatusCode
from opentelemetry.util import types

if TYPE_CHECKING:
    from agentledger.instrumentation._lean import LeanTracer

__all__ = ["LeanSpan"]

logger = logging.getLogger(__name__)

_UNSET = Status(StatusCode.UNSET)


class LeanSpan(trace_api.Span):
    """A recording span whose attributes are a plain dict until it ends (see ``_lean.py``'s docstring)."""

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
        if isinstance(status, StatusCode):
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
        try:
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
            tracer.span_processor.on_end(readable)
        except Exception:  # telemetry never breaks the agent
            logger.exception("an AgentLedger span could not be handed to the span processors")


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

    # The rewriter and the encoder read a span's attributes through ``items()`` (the span's
    # mapping proxy forwards to these); the Mapping mixins would call resolved() and look up
    # every key again: a few µs per chat span on the export thread, which shares the GIL.
    def items(self) -> ItemsView[str, Any]:
        return self.resolved().items()

    def keys(self) -> KeysView[str]:
        return self.resolved().keys()

    def values(self) -> ValuesView[Any]:
        return self.resolved().values()

    def get(self, key: str, default: Any = None) -> Any:
        return self.resolved().get(key, default)


class _LeanReadableSpan(ReadableSpan):
    """An SDK ``ReadableSpan`` whose attribute drop count sees through deferred attributes."""

    @property
    def dropped_attributes(self) -> int:
        attrs = self._attributes
        if isinstance(attrs, _DeferredAttributes):
            attrs = attrs.resolved()
        return attrs.dropped if isinstance(attrs, BoundedAttributes) else 0
