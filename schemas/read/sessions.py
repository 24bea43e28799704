"""Read models of sessions (conversations): the spans sharing a ``session.id``, turn by turn."""

from __future__ import annotations

from pydantic import Field

from agentledger.schemas.read._base import IsoTime, ReadModel

__all__ = ["SessionPage", "SessionSummary", "SessionTurn", "SessionTurns"]


class SessionSummary(ReadModel):
    """One session in a list: its traces (turns), who it was for, what it cost."""

    session_id: str
    turns: int = Field(description="Traces recorded under the session id.")
    spans: int
    first_at: IsoTime
    last_at: IsoTime
    agent_name: str = Field(description="The agent of the session's earliest span.")
    principal_id: str
    user_id: str
    input_tokens: int
    output_tokens: int
    cost_usd: float
    errors: int


class SessionPage(ReadModel):
    """A page of sessions, most recently active first."""

    sessions: list[SessionSummary]
    offset: int
    limit: int
    more: bool = Field(description="Whether an older page exists.")


class SessionTurn(ReadModel):
    """One turn of a session: a trace, what it was asked and what it answered.

    ``input_hash``/``output_hash`` are the content records of the trace's root span (of its first
    and last LLM call when the root recorded none); the previews are their first characters."""

    trace_id: str
    root_name: str
    agent_name: str
    start_time: IsoTime
    duration_ms: float | None
    spans: int
    llm_calls: int
    input_tokens: int
    output_tokens: int
    cost_usd: float
    status: str = Field(description="ERROR when any span of the turn failed, else OK.")
    input_hash: str
    output_hash: str
    input_preview: str
    output_preview: str


class SessionTurns(ReadModel):
    """``session_id``'s turns in the order they started."""

    session_id: str
    turns: list[SessionTurn]
    more: bool = Field(description="Whether turns beyond ``limit`` exist.")
