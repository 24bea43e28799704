"""Governance records: the wire models of intents, outcomes and controls, and their table rows.

Direction matters (requests in, answers out), so each has its own model:
``IntentIn`` -> ``IntentAck``; ``OutcomeIn``; ``ControlIn`` -> ``ControlOut``.
The agent-side client (``agentledger.instrumentation.governance``) writes the
same JSON field names; it cannot import this module (it must stay light), so
the field names below are the contract between the two.

Rows are plain dicts keyed by column name with times as Unix nanoseconds;
``to_arrow`` turns a list of them into the batch a store inserts. The same
dicts (plus ``type``) are the JSON records on the intents Kafka topic.
"""

from __future__ import annotations

import enum
import hashlib
import uuid
from typing import Any, Final

import pyarrow as pa
from pydantic import BaseModel, Field, field_validator

from agentledger.schemas.spans import Column, arrow_type

__all__ = [
    "INTENTS_TABLE",
    "OUTCOMES_TABLE",
    "CONTROLS_TABLE",
    "INTENT_COLUMNS",
    "OUTCOME_COLUMNS",
    "CONTROL_COLUMNS",
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
    "intent_row",
    "outcome_row",
    "control_row",
    "to_arrow",
    "time_columns",
    "new_id",
    "MAX_CONTENT_CHARS",
]

INTENTS_TABLE: Final = "intents"
"""Intent records of governed tool calls."""
OUTCOMES_TABLE: Final = "intent_outcomes"
"""Outcomes recorded against intents."""
CONTROLS_TABLE: Final = "controls"
"""Pause and resume events."""

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


class RecordType(str, enum.Enum):
    """``type`` of a JSON record on the intents topic: which table it goes to."""

    INTENT = "intent"
    OUTCOME = "outcome"
    CONTROL = "control"


def new_id() -> str:
    """A fresh 32-hex-digit id (controls; the agent chooses intent ids itself)."""
    return uuid.uuid4().hex


# -- wire models ------------------------------------------------------------------------------


class IntentIn(BaseModel):
    """One ask to run a governed tool. Re-asks of a parked call repeat it with attempt + 1."""

    intent_id: str = Field(pattern=_HEX32)
    attempt: int = Field(0, ge=0, le=10_000_000)
    requested_at_ns: int | None = Field(None, ge=0)
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
    finished_at_ns: int | None = Field(None, ge=0)
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
    """Who asks; the collector records ``api-key:<tenant>`` when empty."""
    reason: str = Field("", max_length=4096)

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
    reason: str


# -- rows -------------------------------------------------------------------------------------

INTENT_COLUMNS: Final[tuple[Column, ...]] = (
    Column(
        "tenant", "LowCardinality(String)", "Tenant, stamped by the collector from the API key."
    ),
    Column("requested_at", "DateTime64(6, 'UTC')", "When the agent first asked."),
    Column("intent_id", "String", "Intent id chosen by the agent."),
    Column("attempt", "UInt32", "Ask number, 0 first."),
    Column("received_at", "DateTime64(6, 'UTC')", "When the collector acknowledged this ask."),
    Column("decision", "LowCardinality(String)", "proceed or paused."),
    Column("control_id", "String", "Pause control that held the call."),
    Column("tool_name", "LowCardinality(String)", "Name of the governed tool."),
    Column("tool_call_id", "String", "Tool call id the model chose."),
    Column("arguments", "String", "Canonical JSON of the arguments as sent."),
    Column("arguments_sha256", "String", "SHA-256 of the canonical arguments."),
    Column("arguments_redacted", "Bool", "Arguments redacted or not captured."),
    Column("trace_id", "String", "Trace id of the run."),
    Column("span_id", "String", "Span id of the governed tool span."),
    Column("parent_span_id", "String", "Span that chose the call."),
    Column("principal_id", "String", "Named principal."),
    Column("principal_name", "String", "Display name of the principal."),
    Column("principal_role", "String", "Role of the principal."),
    Column("principal_chain", "Array(String)", "Delegation chain."),
    Column("policy_id", "String", "Policy the call ran under."),
    Column("agent_name", "LowCardinality(String)", "Agent that asked."),
    Column("session_id", "String", "Session id."),
    Column("user_id", "String", "End-user id."),
)
"""Columns of ``intents``, in table order."""

OUTCOME_COLUMNS: Final[tuple[Column, ...]] = (
    Column("tenant", "LowCardinality(String)", "Tenant."),
    Column("finished_at", "DateTime64(6, 'UTC')", "When the tool finished."),
    Column("intent_id", "String", "Intent the outcome belongs to."),
    Column("status", "LowCardinality(String)", "ok, error or not_run."),
    Column("result", "String", "Canonical JSON of the result."),
    Column("result_sha256", "String", "SHA-256 of the result."),
    Column("error_type", "String", "Exception class."),
    Column("error_message", "String", "Exception message."),
    Column("duration_ms", "Float64", "Time the tool body ran."),
    Column("paused_ms", "Float64", "Time the call waited parked."),
    Column("received_at", "DateTime64(6, 'UTC')", "When the collector received the outcome."),
)
"""Columns of ``intent_outcomes``, in table order."""

CONTROL_COLUMNS: Final[tuple[Column, ...]] = (
    Column("tenant", "LowCardinality(String)", "Tenant."),
    Column("created_at", "DateTime64(6, 'UTC')", "When the control was recorded."),
    Column("control_id", "String", "Control id."),
    Column("action", "LowCardinality(String)", "pause or resume."),
    Column("scope", "LowCardinality(String)", "trace, session, agent or principal."),
    Column("target", "String", "What the control applies to."),
    Column("by", "String", "Who asked for it."),
    Column("reason", "String", "Why."),
)
"""Columns of ``controls``, in table order."""

_COLUMNS = {
    INTENTS_TABLE: INTENT_COLUMNS,
    OUTCOMES_TABLE: OUTCOME_COLUMNS,
    CONTROLS_TABLE: CONTROL_COLUMNS,
}
_SCHEMAS = {
    table: pa.schema([pa.field(c.name, arrow_type(c.ch_type)) for c in cols])
    for table, cols in _COLUMNS.items()
}


def intent_row(
    tenant: str, intent: IntentIn, decision: Decision, control_id: str, received_ns: int
) -> dict[str, Any]:
    return {
        "tenant": tenant,
        "requested_at": intent.requested_at_ns or received_ns,
        "intent_id": intent.intent_id,
        "attempt": intent.attempt,
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
    }


def outcome_row(
    tenant: str, intent_id: str, outcome: OutcomeIn, received_ns: int
) -> dict[str, Any]:
    return {
        "tenant": tenant,
        "finished_at": outcome.finished_at_ns or received_ns,
        "intent_id": intent_id,
        "status": outcome.status.value,
        "result": outcome.result or "",
        "result_sha256": outcome.result_sha256,
        "error_type": outcome.error_type,
        "error_message": outcome.error_message,
        "duration_ms": float(outcome.duration_ms),
        "paused_ms": float(outcome.paused_ms),
        "received_at": received_ns,
    }


def control_row(control: ControlOut) -> dict[str, Any]:
    return {
        "tenant": control.tenant,
        "created_at": control.created_at_ns,
        "control_id": control.control_id,
        "action": control.action.value,
        "scope": control.scope.value,
        "target": control.target,
        "by": control.by,
        "reason": control.reason,
    }


def time_columns(table: str) -> frozenset[str]:
    """Columns of ``table`` that hold times (Unix ns in rows)."""
    return frozenset(c.name for c in _COLUMNS[table] if c.ch_type.startswith("DateTime64"))


def to_arrow(table: str, rows: list[dict[str, Any]]) -> pa.Table:
    """Rows (times as Unix ns) as the Arrow batch ``table`` is inserted from."""
    schema = _SCHEMAS[table]
    times = time_columns(table)
    arrays = []
    for f in schema:
        values = [row[f.name] for row in rows]
        if f.name in times:
            values = [int(v) // 1000 for v in values]  # ns -> the column's microseconds
        arrays.append(pa.array(values, f.type))
    return pa.Table.from_arrays(arrays, schema=schema)
