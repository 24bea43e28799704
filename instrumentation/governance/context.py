"""What the framework knows about a call (``governed_call``), and values read from the
OpenTelemetry context or baggage."""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from opentelemetry import baggage, context


@dataclass(frozen=True)
class _CallContext:
    tool_call_id: str | None = None
    llm_span_id: str | None = None
    session_id: str | None = None
    agent: str | None = None
    cancel_event: threading.Event | None = None


_CALL: contextvars.ContextVar[_CallContext | None] = contextvars.ContextVar(
    "agentledger_governed_call", default=None
)


@contextmanager
def governed_call(
    *,
    tool_call_id: str | None = None,
    llm_span_id: str | None = None,
    session_id: str | None = None,
    agent: str | None = None,
    cancel_event: threading.Event | None = None,
) -> Iterator[None]:
    """Tell the governed tools called inside what the framework knows about this call:
    the model's tool call id, the LLM span that chose it (16 hex digits), the session, the
    agent, and an event that cancels the call while it is parked. (Tools called from inside a
    governed tool's body do not inherit it.)"""
    token = _CALL.set(_CallContext(tool_call_id, llm_span_id, session_id, agent, cancel_event))
    try:
        yield
    finally:
        _CALL.reset(token)


def _from_context(key: str) -> str:
    value = context.get_value(key)
    if value is None:
        value = baggage.get_baggage(key)
    return str(value) if value else ""
