"""Read models of governance: intents of governed tool calls with their outcomes, run controls."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from agentledger.schemas.read._base import ReadModel

__all__ = ["ControlEvent", "ControlList", "IntentOutcome", "IntentRecord", "OutcomeStored"]


class IntentOutcome(ReadModel):
    """What a governed tool returned or raised."""

    status: str = Field(description="ok, error or not_run.")
    result: str | None = Field(description="Canonical JSON of the result; empty when not captured.")
    result_sha256: str
    error_type: str
    error_message: str
    duration_ms: float
    paused_ms: float
    finished_at: datetime


class IntentRecord(ReadModel):
    """A governed tool call's intent, stored before the tool ran, with its outcome."""

    intent_id: str
    attempt: int = Field(description="The latest ask (0 first; a parked call asks again).")
    decision: str = Field(description="proceed or paused, as answered to the latest ask.")
    control_id: str = Field(description="The pause that held the call; empty when none.")
    tool_name: str
    tool_call_id: str
    arguments: str | None
    arguments_sha256: str
    arguments_redacted: bool
    trace_id: str
    span_id: str
    parent_span_id: str
    principal_id: str
    principal_name: str
    principal_role: str
    principal_chain: list[str]
    policy_id: str
    agent_name: str
    session_id: str
    user_id: str
    requested_at: datetime
    received_at: datetime
    outcome: IntentOutcome | None = Field(description="Null while no outcome was recorded.")


class OutcomeStored(ReadModel):
    """What ``POST /v1/intents/{intent_id}/outcome`` answers."""

    intent_id: str
    stored: bool


class ControlEvent(ReadModel):
    """A recorded pause or resume of the runs of a trace, session, agent or principal."""

    control_id: str
    tenant: str
    created_at_ns: int
    action: str = Field(description="pause or resume.")
    scope: str = Field(description="trace, session, agent or principal.")
    target: str
    by: str = Field(description="Name of the API key that recorded it (api, cli without keys).")
    reason: str
    note: str = Field("", description="Who the client said asked (its `by`), kept as a note.")


class ControlList(ReadModel):
    """``GET /v1/controls``: the pauses in force (or every control event), newest first."""

    controls: list[ControlEvent]
    shared: bool = Field(
        description="False when this collector keeps controls in its memory only (no store)."
    )
