"""``governed_tool``: the decorator, and the sync and async wrappers that ask before the body
runs, park while paused, and report the outcome."""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar, overload

from opentelemetry import trace

from agentledger.instrumentation._intent_client import CollectorError
from agentledger.instrumentation.governance.call import _JSON_MIME, _Call, _Spec
from agentledger.instrumentation.governance.config import _tracer
from agentledger.instrumentation.governance.context import _CALL
from agentledger.instrumentation.governance.errors import (
    DelegationRefused,
    RunCancelled,
    RunPaused,
)
from agentledger.instrumentation.governance.parking import _ask_async, _park_async, _park_sync
from agentledger.instrumentation.handoff import delegation_refusal
from agentledger.schemas.attributes import AgentLedger as AL
from agentledger.schemas.attributes import Governance as GOV
from agentledger.schemas.attributes import OpenInference as OI
from agentledger.schemas.canonical import canonical_json

log = logging.getLogger("agentledger.instrumentation.governance")  # one logger, as before the split

_F = TypeVar("_F", bound=Callable[..., Any])


@overload
def governed_tool(fn: _F) -> _F: ...


@overload
def governed_tool(
    fn: None = None,
    *,
    name: str | None = None,
    fail_open: bool = False,
    policy: str | None = None,
    agent: str | None = None,
    max_pause_s: float | None = None,
    timeout_s: float | None = None,
    capture_arguments: bool = True,
    capture_result: bool = True,
    redact: Callable[[dict[str, Any]], Any] | None = None,
    cancel_event: threading.Event | None = None,
    exclude: tuple[str, ...] = ("self", "cls"),
    scope: str | None = None,
) -> Callable[[_F], _F]: ...


def governed_tool(
    fn: _F | None = None,
    *,
    name: str | None = None,
    fail_open: bool = False,
    policy: str | None = None,
    agent: str | None = None,
    max_pause_s: float | None = None,
    timeout_s: float | None = None,
    capture_arguments: bool = True,
    capture_result: bool = True,
    redact: Callable[[dict[str, Any]], Any] | None = None,
    cancel_event: threading.Event | None = None,
    exclude: tuple[str, ...] = ("self", "cls"),
    scope: str | None = None,
) -> Any:
    """Log the intent of every call before the tool runs; park while the run is paused.

    Bare (``@governed_tool``) or with options:

    * ``name``: tool name recorded (default: the function's name);
    * ``fail_open``: run the tool even when its intent cannot be recorded (default: it does not run);
    * ``policy``: policy id recorded (default: the principal's, from ``acting_for``);
    * ``agent``: agent name (default: ``governed_call(agent=)``, the context, ``AGENTLEDGER_AGENT_NAME``);
    * ``max_pause_s``: longest wait while paused before ``RunPaused`` (default: ``configure_governance``'s);
    * ``timeout_s``: longest wait for the acknowledgement of one ask;
    * ``capture_arguments``/``capture_result``: send the arguments and result themselves, not only
      their hashes; ``redact``: maps the arguments (a dict by parameter name) to what is sent,
      while the hash stays that of the real arguments;
    * ``cancel_event``: setting it cancels a parked call (``RunCancelled``);
    * ``exclude``: parameters left out of the recorded arguments (``self``, ``cls``);
    * ``scope``: the authority the tool needs; it is refused (``DelegationRefused``, before any
      intent is asked) when the principal's scopes do not include it, and so is any governed
      tool reached through a handoff that delegated no principal (``handoff.delegation_refusal``).
    """

    def decorate(func: _F) -> _F:
        try:
            signature: inspect.Signature | None = inspect.signature(func)
        except (TypeError, ValueError):  # some builtins have none
            signature = None
        tool_name: str = name or getattr(func, "__name__", None) or "tool"
        spec = _Spec(
            func,
            tool_name,
            fail_open,
            policy,
            agent,
            max_pause_s,
            timeout_s,
            capture_arguments,
            capture_result,
            redact,
            cancel_event,
            frozenset(exclude),
            signature,
            scope,
        )
        if inspect.iscoroutinefunction(func):
            return _async_wrapper(spec)  # type: ignore[return-value]
        return _sync_wrapper(spec)  # type: ignore[return-value]

    if fn is not None:
        return decorate(fn)
    return decorate


def _check_delegation(call: _Call, span: trace.Span) -> None:
    """Fail closed when no authority reached this call: recorded on the tool's span (status
    error, ``agentledger.delegation.refused``), logged, and raised before the tool runs."""
    reason = delegation_refusal(call.spec.scope)
    if reason is None:
        return
    span.set_attribute(GOV.INTENT_STATUS, "refused")
    span.set_attribute(AL.DELEGATION_REFUSED, reason)
    log.warning("governed tool %r refused: %s", call.spec.name, reason)
    raise DelegationRefused(
        f"{call.spec.name}: {reason}", tool=call.spec.name, intent_id=call.intent_id
    )


def _first_answer(
    call: _Call, span: trace.Span, exc: CollectorError | None, ack: dict[str, Any] | None
) -> bool:
    """Handle the first ask's result; True when the call must park. Raises IntentNotRecorded
    (fail-closed)."""
    if exc is not None:
        if not call.spec.fail_open:
            span.set_attribute(GOV.INTENT_STATUS, "unrecorded")
            raise call.not_recorded(exc) from exc
        log.warning("tool %r runs without a recorded intent (fail_open): %s", call.spec.name, exc)
        span.set_attribute(GOV.INTENT_STATUS, "unrecorded")
        return False
    assert ack is not None
    span.set_attribute(GOV.INTENT_STATUS, "recorded")
    if ack.get("decision") == "proceed":
        span.set_attribute(GOV.INTENT_DECISION, "proceed")
        return False
    call.control_id = ack.get("control_id")
    if call.control_id:
        span.set_attribute(GOV.INTENT_CONTROL_ID, str(call.control_id))
    log.info("tool %r parked: run paused by control %s", call.spec.name, call.control_id)
    return True


def _parked_out(call: _Call, span: trace.Span, err: BaseException) -> None:
    span.set_attribute(GOV.INTENT_DECISION, "paused")
    span.set_attribute(GOV.INTENT_PAUSED_S, call.paused_s)
    span.set_attribute(
        GOV.INTENT_STATUS,
        "cancelled" if isinstance(err, (RunCancelled, asyncio.CancelledError)) else "paused_out",
    )
    call.report("not_run", error=err)


def _proceeded(call: _Call, span: trace.Span, parked: bool) -> None:
    if parked:
        span.set_attribute(GOV.INTENT_DECISION, "proceed")
        span.set_attribute(GOV.INTENT_PAUSED_S, call.paused_s)


def _finish(call: _Call, span: trace.Span, result: Any, duration: float) -> None:
    text = call.report("ok", result=result, duration_s=duration)
    try:
        if call.spec.capture_result:
            span.set_attribute(
                OI.OUTPUT_VALUE, text if text is not None else canonical_json(result)
            )
            span.set_attribute(OI.OUTPUT_MIME_TYPE, _JSON_MIME)
    except Exception:  # telemetry never breaks the host
        log.debug("could not record the result on the span", exc_info=True)


def _sync_wrapper(spec: _Spec) -> Callable[..., Any]:
    fn = spec.fn

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        call = _Call.prepare(spec, args, kwargs)
        parent = trace.get_current_span().get_span_context()
        with _tracer(call.config).start_as_current_span(
            spec.name, attributes=call.span_attributes()
        ) as span:
            call.attach(span, parent)
            _check_delegation(call, span)
            ack, error = None, None
            try:
                ack = call.ask()
            except CollectorError as exc:
                error = exc
            parked = _first_answer(call, span, error, ack)
            if parked:
                assert ack is not None
                try:
                    _park_sync(call, ack)
                except RunPaused as err:
                    _parked_out(call, span, err)
                    raise
            _proceeded(call, span, parked)
            token = _CALL.set(None)
            started = time.perf_counter()
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:
                call.report("error", error=exc, duration_s=time.perf_counter() - started)
                raise
            finally:
                _CALL.reset(token)
            _finish(call, span, result, time.perf_counter() - started)
            return result

    return wrapper


def _async_wrapper(spec: _Spec) -> Callable[..., Any]:
    fn = spec.fn

    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        call = _Call.prepare(spec, args, kwargs)
        parent = trace.get_current_span().get_span_context()
        with _tracer(call.config).start_as_current_span(
            spec.name, attributes=call.span_attributes()
        ) as span:
            call.attach(span, parent)
            _check_delegation(call, span)
            ack, error = None, None
            try:
                ack = await _ask_async(call)
            except CollectorError as exc:
                error = exc
            except asyncio.CancelledError as err:
                _parked_out(call, span, err)
                raise
            parked = _first_answer(call, span, error, ack)
            if parked:
                assert ack is not None
                try:
                    await _park_async(call, ack)
                except (RunPaused, asyncio.CancelledError) as err:
                    _parked_out(call, span, err)
                    raise
            _proceeded(call, span, parked)
            token = _CALL.set(None)
            started = time.perf_counter()
            try:
                result = await fn(*args, **kwargs)
            except BaseException as exc:
                call.report("error", error=exc, duration_s=time.perf_counter() - started)
                raise
            finally:
                _CALL.reset(token)
            _finish(call, span, result, time.perf_counter() - started)
            return result

    return wrapper
