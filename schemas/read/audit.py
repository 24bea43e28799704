"""Read models of audit answers: the audit report of an action, and the ledger's verification.

An audit report lists what an agent saw before an action, which model version decided
it and under whose authority (``pipeline/services/audit``). The recorded contents in it
(messages, documents, tool arguments and results) are whatever JSON the agent exchanged:
those leaves are typed ``Any``; every other part is modelled.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from agentledger.schemas.read._base import IsoTime, ReadModel, absent

__all__ = [
    "ActionAudit",
    "AppliedControl",
    "AuditReport",
    "AuditToolCall",
    "Authority",
    "ContextStep",
    "DecidedBy",
    "DocumentSeen",
    "IntentAsk",
    "IntentSeen",
    "Integrity",
    "LeftOut",
    "LedgerProblem",
    "LedgerReport",
    "LlmAction",
    "LlmCall",
    "LlmCallSeen",
    "StepSeen",
    "TimelineEntry",
    "ToolAction",
    "ToolCallMade",
    "ToolOutputSeen",
    "UpstreamHandoff",
]

Recorded = Any
"""A recorded content as the agent exchanged it (decoded JSON: messages, a document's text, tool
arguments or results); null when the content was not captured or has been erased."""


class AuditToolCall(ReadModel):
    """A tool call an LLM chose, with its arguments."""

    id: str
    name: str
    arguments: Recorded
    arguments_hash: str


class LlmCall(ReadModel):
    """An LLM call: the model requested and answered, its parameters, input and answer."""

    span_id: str
    name: str
    started_at: IsoTime
    ended_at: IsoTime
    provider: str
    convention: str
    requested_model: str
    answered_model: str
    system_fingerprint: str
    parameters: dict[str, Any] = Field(
        description="Request parameters (temperature, max_tokens...) as the provider took them."
    )
    tools: list[Any] = Field(
        description="Tool definitions offered, as the convention recorded them."
    )
    tools_hash: str | None = Field(
        None, exclude_if=absent, description="Content hash of the canonical tools offered."
    )
    request_hash: str | None = Field(
        None, exclude_if=absent, description="The canonical call's hash (schemas/calls.py)."
    )
    messages: Recorded
    input_hash: str
    input_verified: bool | None = Field(description="Null when the content was not captured.")
    input_tokens: int
    output_tokens: int
    output: Recorded
    output_hash: str
    output_verified: bool | None
    tool_calls: list[AuditToolCall]
    finish_reason: str
    finish_reasons: list[str] | None = Field(
        None, exclude_if=absent, description="Why the model stopped, one per choice."
    )


class LlmCallSeen(LlmCall):
    """An earlier LLM call the agent saw (``seq``: its place in the timeline)."""

    seq: int


class LlmAction(LlmCall):
    """The audited action when it is a decision of the model."""

    kind: Literal["LLM"]
    agent_name: str
    session_id: str
    user_id: str
    service: str


class ToolCallMade(ReadModel):
    """A tool call as made: its arguments (the result is not part of what the agent saw)."""

    span_id: str
    tool_name: str
    tool_call_id: str
    started_at: IsoTime
    ended_at: IsoTime
    status: str
    arguments: Recorded
    arguments_hash: str


class ToolAction(ToolCallMade):
    """The audited action when it is a tool call."""

    kind: str
    name: str
    agent_name: str
    session_id: str
    user_id: str
    service: str


class ToolOutputSeen(ToolCallMade):
    """An earlier tool call the agent saw, with its output."""

    seq: int
    output: Recorded
    output_hash: str
    verified: bool | None
    error: str


class DocumentSeen(ReadModel):
    """A retrieved document the agent saw."""

    seq: int
    span_id: str
    retriever: str
    query: Recorded
    rank: int
    id: str
    content_hash: str
    score: float | None
    retrieved_at: IsoTime
    content: Recorded
    verified: bool | None


class ContextStep(ReadModel):
    """A step still open around the action (the run that asked for it): its input only."""

    span_id: str
    kind: str
    name: str
    started_at: IsoTime
    input: Recorded
    input_hash: str


class StepSeen(ContextStep):
    """An earlier finished step (agent, chain...) the agent saw."""

    seq: int
    ended_at: IsoTime
    output: Recorded
    output_hash: str
    status: str


class TimelineEntry(ReadModel):
    """Everything the agent saw, in order."""

    seq: int
    span_id: str
    kind: str
    name: str
    started_at: IsoTime
    ended_at: IsoTime


class Authority(ReadModel):
    """Under whose authority the action ran: the principal, its delegation chain, the policy."""

    principal_id: str
    principal_name: str
    principal_role: str
    principal_chain: list[str]
    policy_id: str
    source: str = Field(
        description="Where it was found: a span, an enclosing span, the intent, none."
    )
    source_span_id: str
    attributed: bool


class DecidedBy(ReadModel):
    """The LLM call that chose the action, and how it was found."""

    span_id: str
    found_by: str
    provider: str
    requested_model: str
    answered_model: str
    system_fingerprint: str
    at: IsoTime
    chose: AuditToolCall | None
    executed_as_chosen: bool | None


class IntentAsk(ReadModel):
    """One ask of a governed tool call (a call parked by a pause asks again)."""

    attempt: int
    decision: str
    control_id: str
    acknowledged_at: IsoTime


class IntentSeen(ReadModel):
    """The intent a governed tool recorded before it ran."""

    intent_id: str
    tool_name: str
    tool_call_id: str
    requested_at: IsoTime
    acknowledged_at: IsoTime
    decision: str
    attempts: int
    control_id: str
    held_by: list[str]
    asks: list[IntentAsk]
    arguments: str | None
    arguments_sha256: str
    arguments_redacted: bool
    arguments_match_action: bool | None
    chosen_by_span_id: str


class AppliedControl(ReadModel):
    """A run control (pause, resume) that applied to the action up to its acknowledgement."""

    control_id: str
    action: str
    scope: str
    target: str
    by: str
    reason: str
    at: IsoTime
    held_this_call: bool


class LeftOut(ReadModel):
    """What the report leaves out, and why it is not part of what the agent saw."""

    spans_after_action: int
    action_result: bool


class Integrity(ReadModel):
    """The contents shown, re-hashed against their SHA-256. ``erased``: contents an erasure
    removed (their hashes stay in the ledger); neither missing nor changed."""

    contents_checked: int
    contents_verified: int
    missing: list[str]
    changed: list[str]
    erased: list[str] = Field(default_factory=list)


class UpstreamHandoff(ReadModel):
    """A handoff that led to the action, and what its sending agent saw before handing on.

    Each item carries ``agent`` and ``delegation_step`` (``planner -> executor``) besides the
    fields of the same item in the action's own lists. ``sender_recorded`` false: the receiving
    span names a sender whose spans are not stored (then only the receiving side is given).
    """

    delegation_step: str
    from_agent: str
    to_agent: str
    handoff_id: str
    received_span_id: str
    received_at: IsoTime
    sender_recorded: bool
    handoff_span_id: str | None = None
    trace_id: str | None = None
    handed_off_at: IsoTime | None = None
    principal_id: str | None = None
    llm_calls: list[LlmCallSeen] = Field(default_factory=list)
    documents: list[DocumentSeen] = Field(default_factory=list)
    tool_outputs: list[ToolOutputSeen] = Field(default_factory=list)
    other_steps: list[StepSeen] = Field(default_factory=list)
    integrity: Integrity | None = None


class ActionAudit(ReadModel):
    """The audit of one action: what the agent saw, who decided, under whose authority."""

    tenant: str
    trace_id: str
    action: LlmAction | ToolAction
    authority: Authority
    decided_by: DecidedBy | None
    context: list[ContextStep]
    timeline: list[TimelineEntry]
    llm_calls: list[LlmCallSeen]
    documents: list[DocumentSeen]
    tool_outputs: list[ToolOutputSeen]
    other_steps: list[StepSeen]
    intent: IntentSeen | None
    controls: list[AppliedControl]
    pauses_in_force_at_action: list[str]
    governance_recorded: bool
    left_out: LeftOut
    integrity: Integrity
    upstream: list[UpstreamHandoff] = Field(
        default_factory=list,
        description="Handoffs that led to the action, nearest first: what upstream agents saw.",
    )


class AuditReport(ReadModel):
    """``GET /api/v1/audit/{ref}``: the audits of a span, or of a trace's tool calls."""

    tenant: str
    trace_id: str
    query: str = Field(description="The span or trace id asked about.")
    actions: list[ActionAudit]


# -- the ledger --------------------------------------------------------------------------------


class LedgerProblem(ReadModel):
    """Where the ledger does not verify: the checkpoint and the spans involved."""

    kind: str
    stream: str
    seq: int
    detail: str
    spans: list[str]


class LedgerReport(ReadModel):
    """``GET /api/v1/ledger/verify``: the tenant's ledger recomputed."""

    tenant: str
    ok: bool
    checkpoints: int
    rows: int
    contents_checked: int
    heads: dict[str, str] = Field(description="The head checkpoint hash of each stream.")
    problems: list[LedgerProblem]
