"""The canonical span row: one definition, three renderings.

``SPAN_COLUMNS`` is the single list of columns with their ClickHouse types.
The Arrow schema is derived from it; the pydantic ``SpanRow`` is written out
for readers and API responses; the migrations create the table. A test
(``tests/schemas/test_schema_agreement.py``) applies the migrations to the
real engine and checks that all three agree column by column.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Final

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "SpanKind",
    "Convention",
    "CostSource",
    "Column",
    "SPAN_COLUMNS",
    "SPAN_COLUMN_NAMES",
    "CALL_COLUMN_NAMES",
    "SPAN_ARROW_SCHEMA",
    "SpanRow",
    "ToolCallRef",
    "DocumentRef",
    "SPANS_TABLE",
    "SENT_BY",
    "STAMPED_COLUMNS",
    "arrow_type",
]

SPANS_TABLE: Final = "spans"
"""Name of the canonical span table."""


class SpanKind(str, enum.Enum):
    """What a span did, in OpenInference's vocabulary."""

    LLM = "LLM"
    TOOL = "TOOL"
    RETRIEVER = "RETRIEVER"
    EMBEDDING = "EMBEDDING"
    RERANKER = "RERANKER"
    AGENT = "AGENT"
    CHAIN = "CHAIN"
    GUARDRAIL = "GUARDRAIL"
    EVALUATOR = "EVALUATOR"
    UNKNOWN = "UNKNOWN"


class Convention(str, enum.Enum):
    """Which instrumentation convention a span was recorded in."""

    OPENINFERENCE = "openinference"
    GENAI = "otel_genai"
    OPENLLMETRY = "openllmetry"
    OPENLIT = "openlit"
    LANGFUSE = "langfuse"
    UNKNOWN = "unknown"


class CostSource(str, enum.Enum):
    """Where a row's cost came from."""

    SPAN = "span"
    """The instrumentation reported it on the span."""
    PRICE_TABLE = "price_table"
    """Computed from tokens and the provider price table."""
    NONE = "none"
    """No cost known (not an LLM call, or an unpriced model)."""


@dataclass(frozen=True)
class Column:
    """One column of a stored table: name, ClickHouse type, meaning."""

    name: str
    ch_type: str
    doc: str


_DOC_TUPLE = "Array(Tuple(id String, content_hash String, score Float64))"
_TOOL_TUPLE = "Array(Tuple(id String, name String, arguments_hash String))"

SPAN_COLUMNS: Final[tuple[Column, ...]] = (
    Column(
        "tenant", "LowCardinality(String)", "Tenant, stamped by the collector from the API key."
    ),
    Column("trace_id", "String", "Trace id, 32 lowercase hex digits."),
    Column("span_id", "String", "Span id, 16 lowercase hex digits."),
    Column("parent_span_id", "String", "Parent span id, empty for a root span."),
    Column("start_time", "DateTime64(9, 'UTC')", "Span start."),
    Column("end_time", "DateTime64(9, 'UTC')", "Span end."),
    Column("duration_ms", "Float64", "end_time - start_time in milliseconds."),
    Column("name", "String", "Span name."),
    Column("kind", "LowCardinality(String)", "SpanKind value."),
    Column("status_code", "LowCardinality(String)", "UNSET, OK or ERROR."),
    Column("status_message", "String", "Status description (error message)."),
    Column("service", "LowCardinality(String)", "service.name of the emitting resource."),
    Column("agent_name", "LowCardinality(String)", "Agent that produced the span."),
    Column("session_id", "String", "Session or conversation id."),
    Column("user_id", "String", "End-user id."),
    Column("principal_id", "String", "Named principal the agent acted for; empty if unattributed."),
    Column("principal_chain", "Array(String)", "Delegation chain, outermost first."),
    Column("policy_id", "String", "Policy the action ran under."),
    Column("provider", "LowCardinality(String)", "Model provider (openai, anthropic...)."),
    Column("operation", "LowCardinality(String)", "Operation (chat, embeddings, execute_tool...)."),
    Column("request_model", "LowCardinality(String)", "Model the caller requested."),
    Column("response_model", "LowCardinality(String)", "Model the provider answered with."),
    Column("system_fingerprint", "String", "Provider's system fingerprint, where given."),
    Column("input_tokens", "UInt64", "Input (prompt) tokens."),
    Column("output_tokens", "UInt64", "Output (completion) tokens."),
    Column("cache_read_tokens", "UInt64", "Input tokens read from the prompt cache."),
    Column("cache_write_tokens", "UInt64", "Input tokens written to the prompt cache."),
    Column("reasoning_tokens", "UInt64", "Output tokens spent on reasoning."),
    Column("cost_usd", "Float64", "Cost in US dollars."),
    Column("cost_source", "LowCardinality(String)", "CostSource value."),
    Column("tool_name", "LowCardinality(String)", "Tool a TOOL span executed."),
    Column("tool_call_id", "String", "Tool call id a TOOL span executed."),
    Column("tool_calls", _TOOL_TUPLE, "Tool calls an LLM span chose, in order."),
    Column("input_hash", "String", "Content hash of the input (messages or value)."),
    Column("output_hash", "String", "Content hash of the output."),
    Column("system_prompt_hash", "String", "Content hash of the system prompt."),
    Column(
        "request_params",
        "String",
        "Request parameters as canonical JSON, canonical names (schemas.calls); empty if none.",
    ),
    Column("tools_hash", "String", "Content hash of the canonical list of tools offered."),
    Column("finish_reasons", "Array(String)", "Why the model stopped, one per choice."),
    Column("request_hash", "String", "schemas.calls.request_hash of the call; empty if no input."),
    Column("raw_request_hash", "String", "Content hash of the request as recorded verbatim."),
    Column("input_preview", "String", "First characters of the input, for listings."),
    Column("output_preview", "String", "First characters of the output, for listings."),
    Column("documents", _DOC_TUPLE, "Retrieved documents in rank order; score is NaN if absent."),
    Column("convention", "LowCardinality(String)", "Convention value the span came in."),
    Column("scope_name", "LowCardinality(String)", "Instrumentation scope name."),
    Column("attributes", "Map(String, String)", "All span attributes; large values by reference."),
    Column("attribute_refs", "Map(String, String)", "Attribute key -> content hash of its value."),
    Column("resource_attributes", "Map(String, String)", "All resource attributes."),
    Column("events", "String", "Span events as JSON (exceptions, legacy GenAI events)."),
    Column("ingest_time", "DateTime64(3, 'UTC')", "When the collector received the span."),
    Column("source_topic", "LowCardinality(String)", "Kafka topic, or 'embedded'."),
    Column("source_partition", "Int32", "Kafka partition (0 embedded)."),
    Column("source_offset", "Int64", "Kafka offset, or the embedded request sequence."),
)
"""Columns of the ``spans`` table, in table order."""

SPAN_COLUMN_NAMES: Final[tuple[str, ...]] = tuple(c.name for c in SPAN_COLUMNS)
"""Column names in table order."""

CALL_COLUMN_NAMES: Final[tuple[str, ...]] = (
    "request_params",
    "tools_hash",
    "finish_reasons",
    "request_hash",
    "raw_request_hash",
)
"""The canonical-call columns (``agentledger.schemas.calls``), added by migration 0007: rows
stored before it read them empty."""


def _split_top(inner: str) -> list[str]:
    parts, depth, cur = [], 0, ""
    for ch in inner:
        if ch == "," and depth == 0:
            parts.append(cur.strip())
            cur = ""
            continue
        depth += ch == "("
        depth -= ch == ")"
        cur += ch
    if cur.strip():
        parts.append(cur.strip())
    return parts


def arrow_type(ch_type: str) -> pa.DataType:
    """Arrow type that a ClickHouse type is inserted from and read back as."""
    t = ch_type.strip()
    simple: dict[str, pa.DataType] = {
        "String": pa.string(),
        "UInt64": pa.uint64(),
        "UInt32": pa.uint32(),
        "UInt8": pa.uint8(),
        "Int64": pa.int64(),
        "Int32": pa.int32(),
        "Float64": pa.float64(),
        "Bool": pa.bool_(),
    }
    if t in simple:
        return simple[t]
    head, _, rest = t.partition("(")
    inner = rest[:-1]
    if head == "LowCardinality":
        return arrow_type(inner)
    if head == "DateTime64":
        precision = int(_split_top(inner)[0])
        return pa.timestamp({3: "ms", 6: "us", 9: "ns"}[precision], tz="UTC")
    if head == "Array":
        return pa.list_(arrow_type(inner))
    if head == "Map":
        k, v = _split_top(inner)
        return pa.map_(arrow_type(k), arrow_type(v))
    if head == "Tuple":
        fields = []
        for part in _split_top(inner):
            fname, ftype = part.split(" ", 1)
            fields.append(pa.field(fname, arrow_type(ftype)))
        return pa.struct(fields)
    raise ValueError(f"no Arrow mapping for ClickHouse type {ch_type!r}")


SPAN_ARROW_SCHEMA: Final[pa.Schema] = pa.schema(
    [pa.field(c.name, arrow_type(c.ch_type)) for c in SPAN_COLUMNS]
)
"""Arrow schema of a batch of span rows, in table order."""


class ToolCallRef(BaseModel):
    """A tool call an LLM chose; arguments are stored by hash in ``contents``."""

    id: str
    name: str
    arguments_hash: str


class DocumentRef(BaseModel):
    """A retrieved document; its text is stored by hash in ``contents``."""

    id: str
    content_hash: str
    score: float


class SpanRow(BaseModel):
    """One canonical span, as read back from the store."""

    model_config = ConfigDict(extra="forbid")

    tenant: str
    trace_id: str
    span_id: str
    parent_span_id: str = ""
    start_time: datetime
    end_time: datetime
    duration_ms: float
    name: str
    kind: SpanKind
    status_code: str = "UNSET"
    status_message: str = ""
    service: str = ""
    agent_name: str = ""
    session_id: str = ""
    user_id: str = ""
    principal_id: str = ""
    principal_chain: list[str] = Field(default_factory=list)
    policy_id: str = ""
    provider: str = ""
    operation: str = ""
    request_model: str = ""
    response_model: str = ""
    system_fingerprint: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    cost_usd: float = 0.0
    cost_source: CostSource = CostSource.NONE
    tool_name: str = ""
    tool_call_id: str = ""
    tool_calls: list[ToolCallRef] = Field(default_factory=list)
    input_hash: str = ""
    output_hash: str = ""
    system_prompt_hash: str = ""
    request_params: str = ""
    tools_hash: str = ""
    finish_reasons: list[str] = Field(default_factory=list)
    request_hash: str = ""
    raw_request_hash: str = ""
    input_preview: str = ""
    output_preview: str = ""
    documents: list[DocumentRef] = Field(default_factory=list)
    convention: Convention = Convention.UNKNOWN
    scope_name: str = ""
    attributes: dict[str, str] = Field(default_factory=dict)
    attribute_refs: dict[str, str] = Field(default_factory=dict)
    resource_attributes: dict[str, str] = Field(default_factory=dict)
    events: str = ""
    ingest_time: datetime
    source_topic: str = ""
    source_partition: int = 0
    source_offset: int = 0
    sent_by: str = ""
    """Stamped by the server after normalization (``STAMPED_COLUMNS``)."""


SENT_BY: Final = "sent_by"
"""The column (migration 0013) naming the API key that sent a span: stamped by the server on each
row after normalization, never read from the request, and, like the ingest time, not content
(left out of the row hash and of the re-send comparison), so a span re-sent by another key is
still the same span."""

STAMPED_COLUMNS: Final[tuple[Column, ...]] = (
    Column(SENT_BY, "LowCardinality(String)", "Name of the API key that sent the span."),
)
"""Columns of ``spans`` after ``SPAN_COLUMNS`` that no normalizer writes: the server stamps them
on the normalized rows (``NormalizedBatch.stamped``); ``SPAN_ARROW_SCHEMA`` is what a normalizer
produces, so it leaves them out."""
