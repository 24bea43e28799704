"""Governance records: the wire models of intents, outcomes and controls, and their table rows.

Direction matters (requests in, answers out), so each has its own model:
``IntentIn`` -> ``IntentAck``; ``OutcomeIn``; ``ControlIn`` -> ``ControlOut``.
The agent-side client (``agentledger.instrumentation.governance``) writes the
same JSON field names; it cannot import this module (it must stay light), so
the field names below are the contract between the two.

What is stored is a record of the record log (``agentledger.schemas.records``):
``intent_record``, ``outcome_record`` and ``control_record`` build it once, where the
collector accepts it, and every record log (store, journal, intents topic) carries that
same record. The typed views ``intents_v``, ``intent_outcomes_v`` and ``controls_v`` read them.
"""

from __future__ import annotations

import enum
import hashlib
import uuid
from typing import Any, Final

from pydantic import BaseModel, Field, field_validator

from agentledger.schemas.records import VIEWS, Actor, Record, RecordKind, make_record

__all__ = [
    "INTENTS_VIEW",
    "OUTCOMES_VIEW",
    "CONTROLS_VIEW",
    "Decision",
    "ControlAction",
    "ControlScope",
    "OutcomeStatus",
    "RecordType",
    "IntentIn",
    "IntentAck",
    "OutcomeIn",
    "ControlIn",
    "ControlOut",
    "intent_record",
    "outcome_record",
    "control_record",
    "legacy_record",
    "new_id",
    "MAX_CONTENT_CHARS",
]

MAX_TIME_NS = 4_102_444_800 * 1_000_000_000
"""2100-01-01 in Unix nanoseconds: the latest time a client may state (the store's DateTime64
range and Python's datetime both hold it)."""

INTENTS_VIEW: Final = VIEWS[RecordKind.INTENT]
"""Typed view of the intent records: one row per ask (a parked call asks again)."""
OUTCOMES_VIEW: Final = VIEWS[RecordKind.OUTCOME]
"""Typed view of the outcomes recorded against intents."""
CONTROLS_VIEW: Final = VIEWS[RecordKind.CONTROL]
"""Typed view of the pause and resume events."""

MAX_CONTENT_CHARS: Final = 16 * 1024 * 1024
"""Longest arguments or result text an intent or outcome may carry (HTTP 422 beyond)."""

_HEX32 = r"^[0-9a-f]{32}$"
_HEX16_OR_EMPTY = r"^([0-9a-f]{16})?$"
_HEX32_OR_EMPTY = r"^([0-9a-f]{32})?$"
_SHA256 = r"^[0-9a-f]{64}$"


class Decision(str, enum.Enum):
    """What the collector tells a governed tool."""

    PROCEED = "proceed"
    PAUSED = "paused"


class ControlAction(str, enum.Enum):
    PAUSE = "pause"
    RESUME = "resume"


class ControlScope(str, enum.Enum):
    """What a control applies to: runs in this trace, session, of this agent, or for this principal."""

    TRACE = "trace"
    SESSION = "session"
    AGENT = "agent"
    PRINCIPAL = "principal"


class OutcomeStatus(str, enum.Enum):
    OK = "ok"
    ERROR = "error"
    NOT_RUN = "not_run"


RecordType = RecordKind
"""The kind of a governance record (intent, outcome, control): ``RecordKind`` by its older name."""


def new_id() -> str:
    """A fresh 32-hex-digit id (a control sent without an idempotency key; the agent chooses
    intent ids itself, see ``idempotency``)."""
    return uuid.uuid4().hex


# -- wire models ------------------------------------------------------------------------------


class IntentIn(BaseModel):
    """One ask to run a governed tool. Re-asks of a parked call repeat it with attempt + 1."""

    intent_id: str = Field(pattern=_HEX32)
    attempt: int = Field(0, ge=0, le=10_000_000)
    requested_at_ns: int | None = Field(None, ge=0, le=MAX_TIME_NS)
    """When the agent first asked (kept across re-asks); the collector's clock when absent."""
    tool_name: str = Field(min_length=1, max_length=512)
    tool_call_id: str = Field("", max_length=512)
    arguments: str | None = Field(None, max_length=MAX_CONTENT_CHARS)
    """Canonical JSON of the arguments (``None`` when not captured)."""
    arguments_sha256: str = Field(pattern=_SHA256)
    arguments_redacted: bool = False
    trace_id: str = Field("", pattern=_HEX32_OR_EMPTY)
    span_id: str = Field("", pattern=_HEX16_OR_EMPTY)
    parent_span_id: str = Field("", pattern=_HEX16_OR_EMPTY)
    principal_id: str = Field("", max_length=1024)
    principal_name: str = Field("", max_length=1024)
    principal_role: str = Field("", max_length=1024)
    principal_chain: list[str] = Field(default_factory=list, max_length=64)
    policy_id: str = Field("", max_length=1024)
    agent_name: str = Field("", max_length=512)
    session_id: str = Field("", max_length=1024)
    user_id: str = Field("", max_length=1024)

    def check_hash(self) -> str | None:
        """Why the arguments do not match their hash, or None. Redacted arguments are not checked
        (the hash is over what the tool received, the text over what left the agent)."""
        if self.arguments is None or self.arguments_redacted:
            return None
        actual = hashlib.sha256(self.arguments.encode("utf-8", "surrogatepass")).hexdigest()
        if actual != self.arguments_sha256:
            return f"arguments_sha256 {self.arguments_sha256} does not match the arguments sent (sha256 {actual})"
        return None


class IntentAck(BaseModel):
    """The answer to an ask: stored durably, and whether the tool may run now."""

    intent_id: str
    attempt: int
    stored: bool = True
    decision: Decision
    control_id: str | None = None
    """The pause that holds the call (``paused`` only)."""
    retry_after_s: float | None = None
    """When to ask again (``paused`` only)."""


class OutcomeIn(BaseModel):
    """What a governed tool returned or raised."""

    status: OutcomeStatus
    finished_at_ns: int | None = Field(None, ge=0, le=MAX_TIME_NS)
    result: str | None = Field(None, max_length=MAX_CONTENT_CHARS)
    """Canonical JSON of the result (``None`` when not captured)."""
    result_sha256: str = Field("", pattern=r"^([0-9a-f]{64})?$")
    error_type: str = Field("", max_length=512)
    error_message: str = Field("", max_length=65_536)
    duration_ms: float = Field(0.0, ge=0)
    paused_ms: float = Field(0.0, ge=0)


class ControlIn(BaseModel):
    """Pause or resume the runs of one trace, session, agent or principal."""

    action: ControlAction
    scope: ControlScope
    target: str = Field(min_length=1, max_length=1024)
    by: str = Field("", max_length=512)
    """Who the client says asks: kept as the event's ``note`` only. The event's ``by`` is the name
    of the API key that sent it (identity comes from the key, never from a body)."""
    reason: str = Field("", max_length=4096)
    idempotency_key: str | None = Field(None, min_length=1, max_length=200)
    """The client's key for this event: sent again with the same fields, the event recorded then
    is answered (nothing new is recorded); with other fields, HTTP 409. The server derives the
    control id from it (``idempotency.derived_id``)."""

    def note(self) -> str:
        """The client's ``by``, kept beside the key's name."""
        return self.by.strip()

    @field_validator("target")
    @classmethod
    def _strip(cls, v: str) -> str:
        v = v.strip()
        if not v:
            raise ValueError("target must not be blank")
        return v


class ControlOut(BaseModel):
    """A recorded control event."""

    control_id: str
    tenant: str
    created_at_ns: int
    action: ControlAction
    scope: ControlScope
    target: str
    by: str
    """The name of the API key that recorded it (``api`` without keys, ``cli`` on the store)."""
    reason: str
    note: str = ""
    """Who the client said asked (its ``by``); empty when it said nothing."""


# -- records ----------------------------------------------------------------------------------


def intent_record(
    tenant: str,
    intent: IntentIn,
    decision: Decision,
    control_id: str,
    received_ns: int,
    *,
    actor: str = Actor.API,
    requested_at: int | str | None = None,
) -> Record:
    """The record of one ask (recorded when the collector acknowledged it). ``requested_at``:
    when the intent was first asked, if known, for an ask that does not say (else received)."""
    return make_record(
        RecordKind.INTENT,
        tenant,
        {
            "intent_id": intent.intent_id,
            "attempt": intent.attempt,
            "requested_at": intent.requested_at_ns or requested_at or received_ns,
            "received_at": received_ns,
            "decision": decision.value,
            "control_id": control_id,
            "tool_name": intent.tool_name,
            "tool_call_id": intent.tool_call_id,
            "arguments": intent.arguments or "",
            "arguments_sha256": intent.arguments_sha256,
            "arguments_redacted": intent.arguments_redacted or intent.arguments is None,
            "trace_id": intent.trace_id,
            "span_id": intent.span_id,
            "parent_span_id": intent.parent_span_id,
            "principal_id": intent.principal_id,
            "principal_name": intent.principal_name,
            "principal_role": intent.principal_role,
            "principal_chain": list(intent.principal_chain),
            "policy_id": intent.policy_id,
            "agent_name": intent.agent_name,
            "session_id": intent.session_id,
            "user_id": intent.user_id,
        },
        actor=actor,
        recorded_at_ns=received_ns,
    )


def outcome_record(
    tenant: str,
    intent_id: str,
    outcome: OutcomeIn,
    received_ns: int,
    *,
    actor: str = Actor.API,
    finished_at: int | str | None = None,
) -> Record:
    """The record of what a governed tool returned or raised. ``finished_at``: the time of the
    outcome recorded before, for a re-sent one that does not say (else received)."""
    return make_record(
        RecordKind.OUTCOME,
        tenant,
        {
            "intent_id": intent_id,
            "finished_at": outcome.finished_at_ns or finished_at or received_ns,
            "received_at": received_ns,
            "status": outcome.status.value,
            "result": outcome.result or "",
            "result_sha256": outcome.result_sha256,
            "error_type": outcome.error_type,
            "error_message": outcome.error_message,
            "duration_ms": float(outcome.duration_ms),
            "paused_ms": float(outcome.paused_ms),
        },
        actor=actor,
        recorded_at_ns=received_ns,
    )


def control_record(control: ControlOut, *, actor: str = Actor.API) -> Record:
    """The record of a pause or a resume."""
    return make_record(
        RecordKind.CONTROL,
        control.tenant,
        {
            "control_id": control.control_id,
            "created_at": control.created_at_ns,
            "action": control.action.value,
            "scope": control.scope.value,
            "target": control.target,
            "by": control.by,
            "reason": control.reason,
            "note": control.note,
        },
        actor=actor,
        recorded_at_ns=control.created_at_ns,
    )


_LEGACY_TABLES: Final = {
    "intents": RecordKind.INTENT,
    "intent_outcomes": RecordKind.OUTCOME,
    "controls": RecordKind.CONTROL,
}
_LEGACY_RECORDED_AT: Final = {
    RecordKind.INTENT: "received_at",
    RecordKind.OUTCOME: "received_at",
    RecordKind.CONTROL: "created_at",
}


def legacy_record(kind: RecordKind | str, row: dict[str, Any]) -> Record:
    """The record of a row as versions before the record log wrote one (a line of a journal left
    by such a version, a value on the intents topic produced by one): the row of ``kind``'s table
    (or the table's name), tenant included, times in Unix ns. Raises ValueError or KeyError when
    it is not such a row."""
    kind = _LEGACY_TABLES[kind] if kind in _LEGACY_TABLES else RecordKind(kind)
    if kind not in _LEGACY_RECORDED_AT:
        raise ValueError(f"{kind.value} is not a governance record")
    fields = {k: v for k, v in row.items() if k != "tenant"}
    return make_record(
        kind,
        str(row["tenant"]),
        fields,
        actor=Actor.API,
        recorded_at_ns=int(fields[_LEGACY_RECORDED_AT[kind]]),
    )
