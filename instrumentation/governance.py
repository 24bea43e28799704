"""Logged before taken: governed tools, and runs that park while paused.

``@governed_tool`` wraps a tool function (sync or async). Before the body runs,
an intent record (tool, canonical arguments and their SHA-256, tool call id,
principal, the span that chose the call, policy, agent, session) is POSTed to
the collector's ``/v1/intents`` and must be acknowledged as durably stored. If
it is not (collector down, timeout, refused), the body does not run and
``IntentNotRecorded`` says why; ``fail_open=True`` runs the tool anyway and marks
its span ``unrecorded``. The outcome (result or exception, duration) is then
recorded against the intent by a background sender: best effort, never in the
way of the agent.

The acknowledgement also says whether the tool may run now. While a pause
holds the run (by trace, session, agent or principal), the call parks: it asks
again with the same intent id and a growing back-off, until the collector
answers ``proceed`` (the body then runs, once), the maximum wait passes
(``RunPaused``), or the wait is cancelled (``RunCancelled``: the tool's
``cancel_event``, ``cancel_paused_runs()``, or cancelling the asyncio task).
Nothing of the run's state is touched while it waits: the call simply returns
later.

Exceptions::

    GovernanceError
    ├── IntentNotRecorded   the intent was not acknowledged; the tool did not run
    └── RunPaused           still paused after max_pause_s; the tool did not run
        └── RunCancelled    the parked call was cancelled; the tool did not run

Configuration: ``configure_governance(...)``; by default governed tools follow
``instrument()`` (its collector, API key, tracer provider and agent name), else the
environment (``AGENTLEDGER_ENDPOINT``, ``AGENTLEDGER_URL``, ``OTEL_EXPORTER_OTLP_*``,
``AGENTLEDGER_API_KEY``, ``AGENTLEDGER_AGENT_NAME``).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import hashlib
import inspect
import logging
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar, overload

from opentelemetry import baggage, context, trace

from agentledger.instrumentation import config as cfg
from agentledger.instrumentation._intent_client import CollectorError, IntentClient
from agentledger.instrumentation._outcomes import flush_outcomes, outcomes
from agentledger.instrumentation.principal import current_principal, principal_from_baggage
from agentledger.schemas.attributes import AgentLedger as AL
from agentledger.schemas.attributes import Governance as GOV
from agentledger.schemas.attributes import OpenInference as OI
from agentledger.schemas.canonical import canonical_json

__all__ = [
    "GovernanceError",
    "IntentNotRecorded",
    "RunCancelled",
    "RunPaused",
    "cancel_paused_runs",
    "canonical_json",
    "configure_governance",
    "flush_outcomes",
    "governed_call",
    "governed_tool",
]

log = logging.getLogger(__name__)

_F = TypeVar("_F", bound=Callable[..., Any])

_TRACER_NAME = "agentledger.governance"
_JSON_MIME = "application/json"


# -- exceptions ---------------------------------------------------------------------------------


class GovernanceError(Exception):
    """A governed tool did not run."""

    def __init__(self, message: str, *, tool: str, intent_id: str | None = None) -> None:
        super().__init__(message)
        self.tool = tool
        self.intent_id = intent_id


class IntentNotRecorded(GovernanceError):
    """The collector did not acknowledge the intent as stored, so the tool did not run."""


class RunPaused(GovernanceError):
    """The run stayed paused longer than the tool's maximum wait; the tool did not run."""

    def __init__(
        self,
        message: str,
        *,
        tool: str,
        intent_id: str | None = None,
        control_id: str | None = None,
        waited_s: float = 0.0,
    ) -> None:
        super().__init__(message, tool=tool, intent_id=intent_id)
        self.control_id = control_id
        self.waited_s = waited_s


class RunCancelled(RunPaused):
    """The parked call was cancelled while it waited; the tool did not run."""


# -- canonical form -----------------------------------------------------------------------------
# ``canonical_json`` is the one definition in ``agentledger.schemas.canonical`` (RFC 8785, with its
# fixed conversion of what JSON has no type for): the collector and the normalizers hash the same
# bytes, so an intent's arguments hash equals the tool span's input hash.


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


# -- configuration ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Config:
    url: str | None = None
    """Explicit collector URL; None follows ``instrument()`` and the environment."""
    api_key: str | None = None
    timeout_s: float = 5.0
    initial_backoff_s: float = 0.2
    max_backoff_s: float = 2.0
    max_pause_s: float = 3600.0
    tracer_provider: trace.TracerProvider | None = None


_config_lock = threading.Lock()
_config = _Config()
_clients: dict[tuple[str, tuple[tuple[str, str], ...], float], IntentClient] = {}


def _instrumented() -> Any:
    """The active ``instrument()`` state, without importing the lifecycle module for it."""
    lifecycle = sys.modules.get("agentledger.instrumentation.lifecycle")
    return lifecycle.instrumentation() if lifecycle is not None else None


def _base(url: str) -> str:
    url = url.rstrip("/")
    return url.removesuffix(cfg.TRACES_PATH)


def _target(config: _Config) -> tuple[str, dict[str, str]]:
    """Collector base URL and request headers: explicit, then the URL ``instrument()`` exports
    to, then ``AGENTLEDGER_ENDPOINT``, ``AGENTLEDGER_URL``, the ``OTEL_EXPORTER_OTLP_*`` endpoints."""
    headers = cfg.resolve_headers(config.api_key)
    if config.url:
        return _base(config.url), headers
    state = _instrumented()
    if state is not None and state.endpoint:
        return _base(state.endpoint), headers
    if (value := cfg.env("AGENTLEDGER_ENDPOINT")) is not None:
        return _base(value), headers
    if (value := cfg.env("AGENTLEDGER_URL")) is not None:
        return _base(value), headers
    return _base(cfg.resolve_endpoint()), headers


def configure_governance(
    url: str | None = None,
    *,
    api_key: str | None = None,
    timeout_s: float = 5.0,
    initial_backoff_s: float = 0.2,
    max_backoff_s: float = 2.0,
    max_pause_s: float = 3600.0,
    tracer_provider: trace.TracerProvider | None = None,
) -> None:
    """Where governed tools send intents, and the defaults of every governed tool.

    ``url``/``api_key``: the collector (default: where ``instrument()`` exports, else
    ``AGENTLEDGER_ENDPOINT``, ``AGENTLEDGER_URL``, the ``OTEL_EXPORTER_OTLP_*`` endpoint; the
    key from ``AGENTLEDGER_API_KEY`` or the OTLP header variables); ``timeout_s``: how long one
    ask may take to be acknowledged; ``initial_backoff_s``/``max_backoff_s``: how often a parked
    call asks again; ``max_pause_s``: how long a call waits parked before ``RunPaused`` (a
    tool's own ``max_pause_s`` wins); ``tracer_provider``: where governed-tool spans go
    (default: ``instrument()``'s provider, else the global one). Calling it again replaces
    the whole configuration.
    """
    global _config
    if (
        timeout_s <= 0
        or initial_backoff_s <= 0
        or max_backoff_s < initial_backoff_s
        or max_pause_s < 0
    ):
        raise ValueError(
            "timeout_s and initial_backoff_s must be > 0, max_backoff_s >= initial_backoff_s, "
            "max_pause_s >= 0"
        )
    new = _Config(
        url, api_key, timeout_s, initial_backoff_s, max_backoff_s, max_pause_s, tracer_provider
    )
    if url:
        IntentClient(_base(url))  # a malformed URL fails here, not at the first tool call
    with _config_lock:
        _config = new
        old = list(_clients.values())
        _clients.clear()
    for client in old:
        client.close()


def _current() -> tuple[_Config, IntentClient]:
    config = _config
    url, headers = _target(config)
    key = (url, tuple(sorted(headers.items())), config.timeout_s)
    client = _clients.get(key)
    if client is None:
        with _config_lock:
            client = _clients.get(key)
            if client is None:
                client = _clients[key] = IntentClient(
                    url, timeout_s=config.timeout_s, headers=headers
                )
    return config, client


# -- call context -------------------------------------------------------------------------------


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


# -- parked calls -------------------------------------------------------------------------------


class _Waiter:
    """One parked call; ``cancel`` wakes it (from any thread) and makes it raise RunCancelled."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.cancelled = False
        self.loop = loop
        self.thread_event = threading.Event()
        self.async_event: asyncio.Event | None = asyncio.Event() if loop is not None else None

    def cancel(self) -> None:
        self.cancelled = True
        self.thread_event.set()
        if self.loop is not None and self.async_event is not None:
            try:
                self.loop.call_soon_threadsafe(self.async_event.set)
            except RuntimeError:  # loop closed: the task is gone anyway
                pass


_waiters: set[_Waiter] = set()
_waiters_lock = threading.Lock()


def cancel_paused_runs() -> int:
    """Cancel every call parked at a governed tool in this process; each raises RunCancelled.
    Returns how many were waiting."""
    with _waiters_lock:
        waiting = list(_waiters)
    for waiter in waiting:
        waiter.cancel()
    return len(waiting)


# -- one call -----------------------------------------------------------------------------------


@dataclass
class _Spec:
    """A governed tool's options, fixed at decoration."""

    fn: Callable[..., Any]
    name: str
    fail_open: bool
    policy: str | None
    agent: str | None
    max_pause_s: float | None
    timeout_s: float | None
    capture_arguments: bool
    capture_result: bool
    redact: Callable[[dict[str, Any]], Any] | None
    cancel_event: threading.Event | None
    exclude: frozenset[str]
    signature: inspect.Signature | None = field(default=None)


@dataclass
class _Call:
    """One invocation: its intent, its asks, and what it reports."""

    spec: _Spec
    config: _Config
    client: IntentClient
    ctx: _CallContext
    arguments_json: str
    arguments_sent: str | None
    arguments_sha256: str
    redacted: bool
    intent_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    requested_at_ns: int = field(default_factory=time.time_ns)
    attempt: int = 0
    trace_id: str = ""
    span_id: str = ""
    parent_span_id: str = ""
    recorded: bool = False
    control_id: str | None = None
    paused_s: float = 0.0
    _payload: dict[str, Any] | None = field(default=None, repr=False)

    @classmethod
    def prepare(cls, spec: _Spec, args: tuple[Any, ...], kwargs: dict[str, Any]) -> _Call:
        config, client = _current()
        arguments = _bind(spec, args, kwargs)
        try:
            text = canonical_json(arguments)
        except Exception:  # e.g. a circular structure: record what can be recorded
            text = canonical_json({"repr": repr(arguments)})
        sent: str | None = text
        redacted = False
        if not spec.capture_arguments:
            sent, redacted = None, True
        elif spec.redact is not None:
            sent, redacted = canonical_json(spec.redact(arguments)), True
        return cls(
            spec, config, client, _CALL.get() or _CallContext(), text, sent, _sha256(text), redacted
        )

    @property
    def max_pause_s(self) -> float:
        return (
            self.spec.max_pause_s if self.spec.max_pause_s is not None else self.config.max_pause_s
        )

    @property
    def timeout_s(self) -> float:
        return self.spec.timeout_s if self.spec.timeout_s is not None else self.config.timeout_s

    def attach(self, span: trace.Span, parent: trace.SpanContext) -> None:
        own = span.get_span_context()
        ctx = own if own.is_valid else parent
        if ctx.is_valid:
            self.trace_id = format(ctx.trace_id, "032x")
        if own.is_valid:
            self.span_id = format(own.span_id, "016x")
        if parent.is_valid:
            self.parent_span_id = format(parent.span_id, "016x")

    def span_attributes(self) -> dict[str, Any]:
        attrs: dict[str, Any] = {
            OI.SPAN_KIND: "TOOL",
            OI.TOOL_NAME: self.spec.name,
            GOV.INTENT_ID: self.intent_id,
            GOV.INTENT_ARGUMENTS_SHA256: self.arguments_sha256,
            GOV.FAIL_OPEN: self.spec.fail_open,
        }
        if self.ctx.tool_call_id:
            attrs[OI.TOOL_CALL_ID] = self.ctx.tool_call_id
        if self.arguments_sent is not None:
            attrs[OI.INPUT_VALUE] = self.arguments_sent
            attrs[OI.INPUT_MIME_TYPE] = _JSON_MIME
        session = self.session_id()
        if session:
            attrs[OI.SESSION_ID] = session
        return attrs

    def session_id(self) -> str:
        return self.ctx.session_id or _from_context(OI.SESSION_ID)

    def agent_name(self) -> str:
        explicit = self.spec.agent or self.ctx.agent
        if explicit:
            return explicit
        state = _instrumented()
        default = (
            state.agent_name if state is not None else (cfg.env("AGENTLEDGER_AGENT_NAME") or "")
        )
        processors = sys.modules.get(
            "agentledger.instrumentation.processors"
        )  # as_agent(...) lives there
        if processors is not None and (scoped := processors.current_agent()):
            return str(scoped)
        return _from_context(AL.AGENT_NAME) or _from_context(OI.AGENT_NAME) or default

    def payload(self) -> dict[str, Any]:
        """The ask's body; fixed at the first ask (re-asks repeat it with the next attempt)."""
        if self._payload is None:
            principal = current_principal() or principal_from_baggage()
            body: dict[str, Any] = {
                "intent_id": self.intent_id,
                "requested_at_ns": self.requested_at_ns,
                "tool_name": self.spec.name,
                "tool_call_id": self.ctx.tool_call_id or "",
                "arguments": self.arguments_sent,
                "arguments_sha256": self.arguments_sha256,
                "arguments_redacted": self.redacted,
                "trace_id": self.trace_id,
                "span_id": self.span_id,
                "parent_span_id": self.ctx.llm_span_id or self.parent_span_id,
                "policy_id": self.spec.policy
                or (principal.policy if principal is not None else ""),
                "agent_name": self.agent_name(),
                "session_id": self.session_id(),
                "user_id": _from_context(OI.USER_ID),
            }
            if principal is not None:
                body.update(
                    principal_id=principal.id,
                    principal_name=principal.name,
                    principal_role=principal.role,
                    principal_chain=list(principal.chain),
                )
            self._payload = body
        return {**self._payload, "attempt": self.attempt}

    # -- asking ---------------------------------------------------------------------------------

    def ask(self) -> dict[str, Any]:
        """One ask; CollectorError when it was not acknowledged."""
        ack = self.client.post("/v1/intents", self.payload(), self.timeout_s)
        if ack.get("intent_id") != self.intent_id or not ack.get("stored", False):
            raise CollectorError(
                f"collector at {self.client.url} did not confirm storing intent {self.intent_id}"
            )
        self.recorded = True
        return ack

    def not_recorded(self, exc: CollectorError) -> IntentNotRecorded:
        return IntentNotRecorded(
            f"tool {self.spec.name!r} did not run: its intent was not recorded ({exc})",
            tool=self.spec.name,
            intent_id=self.intent_id,
        )

    def next_wait(self, backoff: float, ack: dict[str, Any] | None, deadline: float) -> float:
        hint = ack.get("retry_after_s") if ack else None
        wait = min(backoff, float(hint)) if isinstance(hint, (int, float)) and hint > 0 else backoff
        return max(0.0, min(wait, deadline - time.monotonic()))

    def gave_up(self, waited: float, cancelled: bool) -> RunPaused:
        self.paused_s = waited
        kind = RunCancelled if cancelled else RunPaused
        why = (
            "was cancelled while paused"
            if cancelled
            else f"stayed paused for {waited:.1f}s (max_pause_s)"
        )
        return kind(
            f"tool {self.spec.name!r} did not run: the run {why}; control {self.control_id}",
            tool=self.spec.name,
            intent_id=self.intent_id,
            control_id=self.control_id,
            waited_s=waited,
        )

    def has_user_cancel(self) -> bool:
        return self.spec.cancel_event is not None or self.ctx.cancel_event is not None

    def user_cancelled(self) -> bool:
        return any(
            e is not None and e.is_set() for e in (self.spec.cancel_event, self.ctx.cancel_event)
        )

    # -- reporting ------------------------------------------------------------------------------

    def report(
        self,
        status: str,
        *,
        result: Any = None,
        error: BaseException | None = None,
        duration_s: float = 0.0,
    ) -> str | None:
        """Queue the outcome; returns the result's canonical JSON when captured (for the span)."""
        if not self.recorded:
            return None
        result_text: str | None = None
        payload: dict[str, Any] = {
            "status": status,
            "finished_at_ns": time.time_ns(),
            "duration_ms": duration_s * 1000.0,
            "paused_ms": self.paused_s * 1000.0,
        }
        try:
            if status == "ok":
                result_text = canonical_json(result)
                payload["result_sha256"] = _sha256(result_text)
                payload["result"] = result_text if self.spec.capture_result else None
            if error is not None:
                payload["error_type"] = type(error).__qualname__
                payload["error_message"] = str(error)[:65_536]
            outcomes.submit(self.client, self.intent_id, payload)
        except Exception:  # recording must never break the tool's caller
            log.exception("could not queue the outcome of intent %s", self.intent_id)
        return result_text


def _bind(spec: _Spec, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    if spec.signature is None:
        return {"args": list(args), "kwargs": kwargs}
    bound = spec.signature.bind(*args, **kwargs)  # TypeError as the call itself would raise
    bound.apply_defaults()
    return {k: v for k, v in bound.arguments.items() if k not in spec.exclude}


# -- the decorator ------------------------------------------------------------------------------


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
    * ``exclude``: parameters left out of the recorded arguments (``self``, ``cls``).
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
        )
        if inspect.iscoroutinefunction(func):
            return _async_wrapper(spec)  # type: ignore[return-value]
        return _sync_wrapper(spec)  # type: ignore[return-value]

    if fn is not None:
        return decorate(fn)
    return decorate


def _tracer(config: _Config) -> trace.Tracer:
    provider = config.tracer_provider
    if provider is None:
        state = _instrumented()
        provider = state.provider if state is not None else None
    return trace.get_tracer(_TRACER_NAME, tracer_provider=provider)


def _park_sync(call: _Call, ack: dict[str, Any]) -> None:
    """Wait until the collector answers proceed; raise RunPaused/RunCancelled otherwise."""
    started = time.monotonic()
    deadline = started + call.max_pause_s
    backoff = call.config.initial_backoff_s
    waiter = _Waiter()
    with _waiters_lock:
        _waiters.add(waiter)
    try:
        last: dict[str, Any] | None = ack
        while True:
            wait = call.next_wait(backoff, last, deadline)
            if wait <= 0:
                raise call.gave_up(time.monotonic() - started, cancelled=False)
            end = time.monotonic() + wait
            step = 0.1 if call.has_user_cancel() else wait  # a user's Event cannot wake us: poll it
            while not waiter.cancelled and not call.user_cancelled():
                remaining = end - time.monotonic()
                if remaining <= 0:
                    break
                waiter.thread_event.wait(min(remaining, step))
            if waiter.cancelled or call.user_cancelled():
                raise call.gave_up(time.monotonic() - started, cancelled=True)
            call.attempt += 1
            try:
                last = call.ask()
            except CollectorError as exc:  # the pause stands until the collector says otherwise
                log.warning("re-asking for paused tool %r failed: %s", call.spec.name, exc)
                last = None
            if last is not None and last.get("decision") == "proceed":
                call.paused_s = time.monotonic() - started
                return
            if last is not None:
                call.control_id = last.get("control_id") or call.control_id
            backoff = min(backoff * 2, call.config.max_backoff_s)
    finally:
        with _waiters_lock:
            _waiters.discard(waiter)


async def _ask_async(call: _Call) -> dict[str, Any]:
    """One ask from a coroutine (on a worker thread, which carries the context: principal, span).

    Cancelled while the ask is on the wire, it lets the ask land first (bounded by the
    timeout), so that an intent the collector stored gets its ``not_run`` outcome.
    """
    task = asyncio.ensure_future(asyncio.to_thread(call.ask))
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        try:
            await asyncio.wait_for(task, call.timeout_s + 1)
        except (
            Exception,
            asyncio.CancelledError,
        ) as exc:  # only its effect (recorded or not) matters now
            log.debug("ask of cancelled call %s ended with %r", call.intent_id, exc)
        raise


async def _park_async(call: _Call, ack: dict[str, Any]) -> None:
    loop = asyncio.get_running_loop()
    started = time.monotonic()
    deadline = started + call.max_pause_s
    backoff = call.config.initial_backoff_s
    waiter = _Waiter(loop)
    with _waiters_lock:
        _waiters.add(waiter)
    try:
        last: dict[str, Any] | None = ack
        while True:
            wait = call.next_wait(backoff, last, deadline)
            if wait <= 0:
                raise call.gave_up(time.monotonic() - started, cancelled=False)
            end = time.monotonic() + wait
            step = 0.1 if call.has_user_cancel() else wait
            assert waiter.async_event is not None
            while not waiter.cancelled and not call.user_cancelled():
                remaining = end - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    await asyncio.wait_for(waiter.async_event.wait(), min(remaining, step))
                except asyncio.TimeoutError:
                    pass
            if waiter.cancelled or call.user_cancelled():
                raise call.gave_up(time.monotonic() - started, cancelled=True)
            call.attempt += 1
            try:
                last = await _ask_async(call)
            except CollectorError as exc:
                log.warning("re-asking for paused tool %r failed: %s", call.spec.name, exc)
                last = None
            if last is not None and last.get("decision") == "proceed":
                call.paused_s = time.monotonic() - started
                return
            if last is not None:
                call.control_id = last.get("control_id") or call.control_id
            backoff = min(backoff * 2, call.config.max_backoff_s)
    except asyncio.CancelledError:
        call.paused_s = time.monotonic() - started
        raise
    finally:
        with _waiters_lock:
            _waiters.discard(waiter)


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
