"""One invocation of a governed tool: its intent, its asks, and the outcome it reports."""

from __future__ import annotations

import hashlib
import inspect
import logging
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import trace

from agentledger.instrumentation import config as cfg
from agentledger.instrumentation._intent_client import CollectorError, IntentClient
from agentledger.instrumentation._outcomes import outcomes
from agentledger.instrumentation.governance.config import _Config, _current, _instrumented
from agentledger.instrumentation.governance.context import _CALL, _CallContext, _from_context
from agentledger.instrumentation.governance.errors import (
    IntentNotRecorded,
    RunCancelled,
    RunPaused,
)
from agentledger.instrumentation.principal import current_principal, principal_from_baggage
from agentledger.schemas.attributes import AgentLedger as AL
from agentledger.schemas.attributes import Governance as GOV
from agentledger.schemas.attributes import OpenInference as OI
from agentledger.schemas.canonical import canonical_json

log = logging.getLogger("agentledger.instrumentation.governance")  # one logger, as before the split

_JSON_MIME = "application/json"


# -- canonical form -----------------------------------------------------------------------------
# ``canonical_json`` is the one definition in ``agentledger.schemas.canonical`` (RFC 8785, with its
# fixed conversion of what JSON has no type for): the collector and the normalizers hash the same
# bytes, so an intent's arguments hash equals the tool span's input hash.


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


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
    scope: str | None = None


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
