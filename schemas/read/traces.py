"""Read models of traces: the list, one trace (its spans, flat and as a tree), a content record."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from agentledger.schemas.read._base import IsoTime, ReadModel, absent

__all__ = [
    "Content",
    "Document",
    "Span",
    "SpanLog",
    "SpanNode",
    "ToolCall",
    "TraceDetail",
    "TraceSummary",
]


class TraceSummary(ReadModel):
    """One trace in a list of recent traces."""

    trace_id: str
    root_name: str = Field(description="Name of the root span (of the earliest span, if none).")
    service: str
    agent_name: str
    principal_id: str
    start_time: IsoTime
    duration_ms: float | None
    span_count: int
    llm_calls: int
    input_tokens: int
    output_tokens: int
    cost_usd: float
    status: Literal["OK", "ERROR"]


class ToolCall(ReadModel):
    """A tool call an LLM chose; its arguments are a content record (``arguments_hash``)."""

    id: str
    name: str
    arguments_hash: str


class Document(ReadModel):
    """A retrieved document; its text is a content record (``content_hash``)."""

    id: str
    content_hash: str
    score: float | None = Field(description="Retrieval score; null when none was recorded.")


class SpanLog(ReadModel):
    """An OTLP log record of a span (``POST /v1/logs``), as stored: GenAI message events also
    become the call's messages (``input_hash``/``output_hash``) when the span recorded none."""

    time: IsoTime
    observed_time: IsoTime
    event_name: str
    severity_number: int
    severity_text: str
    body: str = Field(description="The body as canonical JSON; empty when stored by hash.")
    body_hash: str = Field(description="Content hash of a large body; else empty.")
    attributes: dict[str, str]
    attribute_refs: dict[str, str]
    scope_name: str


class Span(ReadModel):
    """One span as the read API shows it: the canonical row (``schemas/spans.py``) without its
    tenant, times as ISO text, maps as objects. A column added to the row is carried through."""

    trace_id: str
    span_id: str
    parent_span_id: str
    start_time: IsoTime
    end_time: IsoTime
    duration_ms: float
    name: str
    kind: str = Field(description="SpanKind: LLM, TOOL, RETRIEVER, AGENT, CHAIN...")
    status_code: str
    status_message: str
    service: str
    agent_name: str
    session_id: str
    user_id: str
    principal_id: str
    principal_chain: list[str]
    policy_id: str
    provider: str
    operation: str
    request_model: str
    response_model: str
    system_fingerprint: str
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    reasoning_tokens: int
    cost_usd: float
    cost_source: str
    tool_name: str
    tool_call_id: str
    tool_calls: list[ToolCall]
    input_hash: str
    output_hash: str
    system_prompt_hash: str
    # the canonical LLM call (schemas/calls.py): absent where a reader does not select them
    request_params: str | None = Field(
        None, exclude_if=absent, description="Request parameters as canonical JSON."
    )
    tools_hash: str | None = Field(
        None, exclude_if=absent, description="Content hash of the canonical tools offered."
    )
    finish_reasons: list[str] | None = Field(
        None, exclude_if=absent, description="Why the model stopped, one per choice."
    )
    request_hash: str | None = Field(None, exclude_if=absent, description="The call's hash.")
    raw_request_hash: str | None = Field(
        None, exclude_if=absent, description="Content hash of the request as recorded verbatim."
    )
    input_preview: str
    output_preview: str
    documents: list[Document]
    convention: str
    scope_name: str
    attributes: dict[str, str]
    attribute_refs: dict[str, str]
    resource_attributes: dict[str, str]
    events: str = Field(description="The span's events as JSON text.")
    ingest_time: IsoTime
    source_topic: str
    source_partition: int
    source_offset: int
    sent_by: str = Field("", description="Name of the API key that sent the span.")
    logs: list[SpanLog] = Field(
        default_factory=list, description="The span's log records, in the order emitted."
    )


class SpanNode(Span):
    """A span with the spans it parents (a trace as a tree; orphans are roots)."""

    children: list[SpanNode] = Field(default_factory=list)


class TraceDetail(ReadModel):
    """Every span of one trace, in start order, and the same spans as a tree."""

    trace_id: str
    spans: list[Span]
    tree: list[SpanNode]


class Content(ReadModel):
    """A content record: a prompt, message list, document or tool argument, stored by its SHA-256."""

    hash: str
    kind: str
    content: str | None = Field(description="The canonical form itself; null once erased.")
    size: int
