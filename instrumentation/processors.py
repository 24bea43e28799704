"""Span processors: attribution stamped at span start, and a switchboard for uninstrument().

``AttributionProcessor`` puts the current principal (``acting_for``), or the one
an upstream service sent in W3C baggage, on every span as it starts, and marks
spans started with none ``agentledger.unattributed=true``: never guessed. It
also stamps the agent's name, from ``as_agent(...)`` or the configured default, and inside a
received handoff (``handoff.receive_handoff``) the delegation chain and the run id.

``Switchboard`` is the one processor AgentLedger ever adds to a TracerProvider.
The SDK has no public way to remove a processor, so ``uninstrument()`` empties
the switchboard instead (after flushing what it holds), and a later
``instrument()`` fills it again: the provider never accumulates processors.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar

from opentelemetry import context as context_api
from opentelemetry.baggage import _BAGGAGE_KEY  # the key baggage lives under in a context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from agentledger.instrumentation._spans import set_attributes
from agentledger.instrumentation.principal import _CURRENT, principal_from_baggage
from agentledger.schemas.attributes import AgentLedger as AL

__all__ = ["AttributionProcessor", "Switchboard", "as_agent", "current_agent"]

F = TypeVar("F", bound=Callable[..., Any])
logger = logging.getLogger(__name__)

_AGENT: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "agentledger_agent", default=None
)
_CHAIN: contextvars.ContextVar[tuple[str, ...] | None] = contextvars.ContextVar(
    "agentledger_delegation_chain", default=None
)
"""The agents the current work passed through (``handoff.receive_handoff`` sets it)."""
_RUN: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "agentledger_run_id", default=None
)
"""The run id of the current multi-agent work (``handoff``)."""
_UNATTRIBUTED = {AL.UNATTRIBUTED: True}


def current_agent(default: str = "") -> str:
    """The agent name set by the innermost ``as_agent``, else ``default``."""
    return _AGENT.get() or default


@contextmanager
def _agent_scope(name: str) -> Iterator[None]:
    token = _AGENT.set(name)
    try:
        yield
    finally:
        _AGENT.reset(token)


class as_agent:
    """Context manager and decorator: spans started inside belong to agent ``name``.

    For processes that run several agents; model pins are looked up by this name.
    """

    def __init__(self, name: str) -> None:
        if not name:
            raise ValueError("as_agent needs a name")
        self.name = name
        self._tokens: list[contextvars.Token[str | None]] = []

    def __enter__(self) -> str:
        self._tokens.append(_AGENT.set(self.name))
        return self.name

    def __exit__(self, *exc: object) -> None:
        _AGENT.reset(self._tokens.pop())

    def __call__(self, fn: F) -> F:
        name = self.name
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                with _agent_scope(name):
                    return await fn(*args, **kwargs)

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with _agent_scope(name):
                return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]


class AttributionProcessor(SpanProcessor):
    """Stamps principal (or ``unattributed``) and agent name on every span at start.

    Cheap by design: it runs on the agent's thread for every span. The
    principal's attributes are built once per ``acting_for`` and copied in.
    """

    def __init__(self, agent_name: str = "") -> None:
        self.agent_name = agent_name

    def attributes(self, parent_context: context_api.Context | None = None) -> Mapping[str, Any]:
        """What ``on_start`` stamps on a span started now in ``parent_context`` (default: the current one)."""
        principal = _CURRENT.get()
        if principal is None:
            ctx = parent_context if parent_context is not None else context_api.get_current()
            principal = principal_from_baggage(ctx) if ctx.get(_BAGGAGE_KEY) else None
        attrs = principal.span_attributes if principal is not None else _UNATTRIBUTED
        agent = _AGENT.get() or self.agent_name
        chain = _CHAIN.get()
        if chain:  # inside a received handoff: the chain and run id go on every span
            attrs = {**attrs, AL.DELEGATION_CHAIN: chain, AL.RUN_ID: _RUN.get() or ""}
        return {**attrs, AL.AGENT_NAME: agent} if agent else attrs

    def on_start(self, span: Span, parent_context: context_api.Context | None = None) -> None:
        try:
            set_attributes(span, self.attributes(parent_context))
        except Exception:  # telemetry never breaks the agent
            logger.exception("failed to stamp the principal on a span")

    def on_end(self, span: ReadableSpan) -> None:
        pass

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


class Switchboard(SpanProcessor):
    """Forwards to a replaceable list of processors (see the module docstring).

    ``set`` swaps the list atomically; the hot path reads one tuple.
    """

    def __init__(self) -> None:
        self._processors: tuple[SpanProcessor, ...] = ()
        self._lock = threading.Lock()

    @property
    def processors(self) -> tuple[SpanProcessor, ...]:
        return self._processors

    def set(self, processors: tuple[SpanProcessor, ...]) -> tuple[SpanProcessor, ...]:
        """Install ``processors``; returns the previous ones (the caller shuts them down)."""
        with self._lock:
            old, self._processors = self._processors, tuple(processors)
        return old

    def on_start(self, span: Span, parent_context: context_api.Context | None = None) -> None:
        for p in self._processors:
            p.on_start(span, parent_context=parent_context)

    def _on_ending(self, span: Span) -> None:
        for p in self._processors:
            on_ending = getattr(p, "_on_ending", None)
            if on_ending is not None:
                on_ending(span)

    def on_end(self, span: ReadableSpan) -> None:
        for p in self._processors:
            p.on_end(span)

    def shutdown(self) -> None:
        for p in self.set(()):
            p.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return all(p.force_flush(timeout_millis) for p in self._processors)
