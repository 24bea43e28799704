"""The ``logs`` table: OTLP log records as stored, and the GenAI log events read as messages.

OpenTelemetry's own GenAI instrumentations (``opentelemetry-instrumentation-openai-v2`` and its
siblings) send prompts and completions as log events linked to the model call's span by trace and
span id, not as span attributes. They are stored as they came, one row per log record; the read
side (``pipeline/services/span_logs.py``) turns the GenAI events of a call into its canonical input
and output messages (``schemas/calls.py``) when the span recorded none of its own. History is
insert-only, so that join happens when a call is read, whichever of the two arrived first.

A row's ``log_id`` names it: SHA-256 of its trace and span ids, the serialized record and its
position among that span's records in the request, so a re-sent request collapses onto the rows
it made while two equal records of one call (the same question asked twice) stay two rows.
"""

from __future__ import annotations

from typing import Final

import pyarrow as pa

from agentledger.schemas.spans import Column, arrow_type

__all__ = [
    "GENAI_INPUT_EVENTS",
    "GENAI_OUTPUT_EVENTS",
    "EVENT_NAME_ATTRIBUTE",
    "GenAIEvent",
    "LOGS_TABLE",
    "LOG_COLUMNS",
    "LOG_COLUMN_NAMES",
    "LOG_ARROW_SCHEMA",
]

LOGS_TABLE: Final = "logs"
"""Name of the log records table."""

EVENT_NAME_ATTRIBUTE: Final = "event.name"
"""Where SDKs before the ``event_name`` field (OTLP 1.5) put an event's name."""


class GenAIEvent:
    """Names of the OpenTelemetry GenAI log events that carry a model call's messages."""

    SYSTEM = "gen_ai.system.message"
    """An input system message; body ``{"content"}``."""
    USER = "gen_ai.user.message"
    """An input user message; body ``{"content"}``."""
    ASSISTANT = "gen_ai.assistant.message"
    """An earlier assistant turn in the input; body ``{"content", "tool_calls"}``."""
    TOOL = "gen_ai.tool.message"
    """A tool result in the input; body ``{"content", "id"}`` (``id``: the tool call's)."""
    CHOICE = "gen_ai.choice"
    """One output choice; body ``{"index", "finish_reason", "message": {"role", "content",
    "tool_calls"}}``."""
    OPERATION_DETAILS = "gen_ai.client.inference.operation.details"
    """The newer single event: ``gen_ai.input.messages`` / ``gen_ai.output.messages`` (and
    ``gen_ai.system_instructions``) as structured attributes, in the GenAI ``parts`` shape."""


GENAI_INPUT_EVENTS: Final = {
    GenAIEvent.SYSTEM: "system",
    GenAIEvent.USER: "user",
    GenAIEvent.ASSISTANT: "assistant",
    GenAIEvent.TOOL: "tool",
}
"""Input message events -> the role of the message each carries."""
GENAI_OUTPUT_EVENTS: Final = frozenset({GenAIEvent.CHOICE})
"""Output message events."""

LOG_COLUMNS: Final[tuple[Column, ...]] = (
    Column(
        "tenant", "LowCardinality(String)", "Tenant, stamped by the collector from the API key."
    ),
    Column(
        "time", "DateTime64(9, 'UTC')", "When the event happened; its observed time when unset."
    ),
    Column("observed_time", "DateTime64(9, 'UTC')", "When the SDK observed the record."),
    Column("trace_id", "String", "Trace id, 32 lowercase hex digits; empty when none."),
    Column("span_id", "String", "Span id, 16 lowercase hex digits; empty when none."),
    Column("log_id", "String", "The record's id (see the module docstring), 64 hex digits."),
    Column("seq", "UInt32", "Position of the record in the request it came in."),
    Column("severity_number", "UInt8", "OTLP SeverityNumber (0: unset)."),
    Column("severity_text", "LowCardinality(String)", "Severity as the source spelled it."),
    Column("event_name", "LowCardinality(String)", "Event name (event_name or event.name)."),
    Column("body", "String", "The body as canonical JSON; empty when stored by hash or unset."),
    Column("body_hash", "String", "Content hash of a large body (in contents); else empty."),
    Column("attributes", "Map(String, String)", "Record attributes; large values by reference."),
    Column("attribute_refs", "Map(String, String)", "Attribute key -> content hash of its value."),
    Column("resource_attributes", "Map(String, String)", "Attributes of the emitting resource."),
    Column("scope_name", "LowCardinality(String)", "Instrumentation scope name."),
    Column("service", "LowCardinality(String)", "service.name of the emitting resource."),
    Column("flags", "UInt32", "OTLP log record flags (trace flags)."),
    Column("ingest_time", "DateTime64(3, 'UTC')", "When the collector received the record."),
    Column("source_topic", "LowCardinality(String)", "Kafka topic, or embedded."),
    Column("source_partition", "Int32", "Kafka partition (0 embedded)."),
    Column("source_offset", "Int64", "Kafka offset, or the embedded request sequence."),
    Column("sent_by", "String", "Name of the API key that sent the record."),
)
"""Columns of the ``logs`` table, in table order (``0016_logs.sql``)."""

LOG_COLUMN_NAMES: Final = tuple(c.name for c in LOG_COLUMNS)
"""Column names of ``logs``, in table order."""

LOG_ARROW_SCHEMA: Final[pa.Schema] = pa.schema(
    [pa.field(c.name, arrow_type(c.ch_type)) for c in LOG_COLUMNS]
)
"""Arrow schema of a batch of log rows."""
