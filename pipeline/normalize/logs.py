"""OTLP log records -> ``logs`` rows and content records; GenAI log events -> canonical messages.

Logs are normalized once, like spans, but kept close to how they came: one row per record
(``schemas/logs.py``), the body as canonical JSON, large bodies and attribute values stored once in
``contents`` by hash. What the GenAI events mean is decided when a call is read
(``genai_messages``, used by ``pipeline/services/span_logs.py``): history is insert-only and the
span may arrive before or after its events.

For each span whose GenAI events arrive together in one request, the canonical input and output
message lists are stored as content records too, so that the hashes the read side computes for the
call resolve in ``contents`` like those of any other call (the console and ``GET
/api/v1/contents/{hash}`` read them there).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from agentledger.pipeline.normalize.base import NormalizeError, SourcePosition
from agentledger.pipeline.normalize.conventions.genai import from_parts
from agentledger.pipeline.normalize.fields import from_openai_messages, message, parse_json
from agentledger.pipeline.normalize.otlp import anyvalue_to_python, anyvalue_to_str
from agentledger.schemas.attributes import GenAI as G
from agentledger.schemas.attributes import Resource
from agentledger.schemas.canonical import canonical_bytes, canonical_json
from agentledger.schemas.contents import CONTENT_ARROW_SCHEMA, ContentKind
from agentledger.schemas.logs import (
    EVENT_NAME_ATTRIBUTE,
    GENAI_INPUT_EVENTS,
    GENAI_OUTPUT_EVENTS,
    LOG_ARROW_SCHEMA,
    LOG_COLUMN_NAMES,
    GenAIEvent,
)

__all__ = [
    "LogEvent",
    "NormalizedLogs",
    "count_log_records",
    "genai_messages",
    "is_genai_event",
    "normalize_logs",
    "parse_logs",
]

REF_THRESHOLD = 512
"""Bodies and attribute values longer than this many characters are stored by hash (as span
attribute values are)."""

_SYSTEM_INSTRUCTIONS = "gen_ai.system_instructions"


@dataclass(frozen=True)
class LogEvent:
    """One log record as the message builder reads it: its event name, body and attributes as
    plain values (large ones already fetched from ``contents``)."""

    name: str
    body: Any
    attributes: dict[str, Any]


@dataclass
class NormalizedLogs:
    """Log rows and content records, as Arrow tables in the stored schemas."""

    logs: pa.Table = field(default_factory=LOG_ARROW_SCHEMA.empty_table)
    contents: pa.Table = field(default_factory=CONTENT_ARROW_SCHEMA.empty_table)

    @property
    def count(self) -> int:
        return int(self.logs.num_rows)


def parse_logs(raw: bytes) -> ExportLogsServiceRequest:
    """A serialized ExportLogsServiceRequest, or NormalizeError saying why not."""
    try:
        request: ExportLogsServiceRequest = ExportLogsServiceRequest.FromString(raw)
    except DecodeError as exc:
        raise NormalizeError(f"malformed OTLP logs protobuf: {exc}") from exc
    return request


def count_log_records(request: ExportLogsServiceRequest) -> int:
    return sum(len(sl.log_records) for rl in request.resource_logs for sl in rl.scope_logs)


def is_genai_event(name: str) -> bool:
    """Whether a record with this event name carries a model call's messages."""
    return (
        name in GENAI_INPUT_EVENTS
        or name in GENAI_OUTPUT_EVENTS
        or name == GenAIEvent.OPERATION_DETAILS
    )


# -- GenAI events -> canonical messages --------------------------------------------------------


def _structured(value: Any) -> Any:
    """An attribute recorded as JSON text or as a structured value, as a plain value."""
    return parse_json(value) if isinstance(value, str) else value


def _input_message(role: str, body: Any) -> dict[str, Any] | None:
    if not isinstance(body, dict):
        return message(role, body if isinstance(body, str) else None)
    fields = {**body, "role": body.get("role") or role}
    if role == "tool" and "tool_call_id" not in fields and body.get("id"):
        fields["tool_call_id"] = body["id"]
    converted = from_openai_messages([fields])
    return converted[0] if converted else None


def _choice(body: Any) -> tuple[int, dict[str, Any] | None]:
    if not isinstance(body, dict):
        return 0, None
    index = body.get("index")
    msg = body.get("message")
    if not isinstance(msg, dict):
        return (index if isinstance(index, int) else 0), None
    converted = from_openai_messages([{**msg, "role": msg.get("role") or "assistant"}])
    return (index if isinstance(index, int) else 0), converted[0] if converted else None


def _captured(messages: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
    """None when no message carries more than its role (content capture off)."""
    return messages if any(len(m) > 1 for m in messages) else None


def genai_messages(
    events: Iterable[LogEvent],
) -> tuple[list[dict[str, Any]] | None, list[dict[str, Any]] | None]:
    """The canonical input and output messages (``schemas/calls.py``) of one model call, from its
    GenAI log events in the order they were emitted; None for a side they do not record.

    The per-message events (``gen_ai.<role>.message``, ``gen_ai.choice``) and the newer
    ``gen_ai.client.inference.operation.details`` event are both read; where a call sent both,
    the details event wins (it is the complete record of the call)."""
    inputs: list[dict[str, Any]] = []
    choices: list[tuple[int, int, dict[str, Any]]] = []
    detail_in: list[dict[str, Any]] | None = None
    detail_out: list[dict[str, Any]] | None = None
    for order, event in enumerate(events):
        if event.name in GENAI_INPUT_EVENTS:
            msg = _input_message(GENAI_INPUT_EVENTS[event.name], event.body)
            if msg is not None:
                inputs.append(msg)
        elif event.name in GENAI_OUTPUT_EVENTS:
            index, msg = _choice(event.body)
            if msg is not None:
                choices.append((index, order, msg))
        elif event.name == GenAIEvent.OPERATION_DETAILS:
            attrs = event.attributes
            found_in = from_parts(_structured(attrs.get(G.INPUT_MESSAGES)))
            system = _structured(attrs.get(_SYSTEM_INSTRUCTIONS))
            if isinstance(system, list):
                texts = [p.get("content", "") for p in system if isinstance(p, dict)]
                system = "\n".join(t for t in texts if isinstance(t, str))
            if isinstance(system, str) and system:
                found_in = [message("system", system), *(found_in or [])]
            detail_in = found_in or detail_in
            detail_out = from_parts(_structured(attrs.get(G.OUTPUT_MESSAGES))) or detail_out
    outputs = [m for _, _, m in sorted(choices, key=lambda c: (c[0], c[1]))]
    return (
        detail_in if detail_in is not None else _captured(inputs),
        detail_out if detail_out is not None else _captured(outputs),
    )


# -- OTLP requests -> rows ---------------------------------------------------------------------


class _Rows:
    """Column lists of the log rows and the content records of one batch."""

    def __init__(self) -> None:
        self.columns: dict[str, list[Any]] = {name: [] for name in LOG_COLUMN_NAMES}
        self.contents: dict[str, list[Any]] = {f.name: [] for f in CONTENT_ARROW_SCHEMA}
        self._seen: set[tuple[str, str]] = set()

    def content(self, tenant: str, value: Any, kind: ContentKind, seen_ms: int) -> str:
        canonical = canonical_bytes(value)
        h = hashlib.sha256(canonical).hexdigest()
        if (tenant, h) not in self._seen:
            self._seen.add((tenant, h))
            for name, v in (
                ("tenant", tenant),
                ("hash", h),
                ("kind", kind.value),
                ("content", canonical.decode("utf-8")),
                ("size", len(canonical)),
                ("first_seen", seen_ms),
            ):
                self.contents[name].append(v)
        return h

    def build(self) -> NormalizedLogs:
        return NormalizedLogs(
            pa.Table.from_pydict(self.columns, schema=LOG_ARROW_SCHEMA),
            pa.Table.from_pydict(self.contents, schema=CONTENT_ARROW_SCHEMA),
        )


def normalize_logs(
    requests: Sequence[tuple[ExportLogsServiceRequest | bytes, SourcePosition, str]],
    ref_threshold: int = REF_THRESHOLD,
) -> NormalizedLogs:
    """Rows for every log record of every request, in request order; each request comes with where
    it came from and the name of the key that sent it. A request that does not parse raises
    ``NormalizeError``."""
    rows = _Rows()
    for request, pos, sent_by in requests:
        parsed = parse_logs(request) if isinstance(request, bytes) else request
        _request(rows, parsed, pos, sent_by, ref_threshold)
    return rows.build()


def _request(
    rows: _Rows, request: ExportLogsServiceRequest, pos: SourcePosition, sent_by: str, limit: int
) -> None:
    seen_ms = pos.received_at_ns // 1_000_000
    per_span: dict[tuple[str, str], int] = {}
    genai: dict[tuple[str, str], list[tuple[int, int, LogEvent]]] = {}
    c = rows.columns
    seq = 0
    for rl in request.resource_logs:
        resource = {kv.key: anyvalue_to_str(kv.value) for kv in rl.resource.attributes}
        service = resource.get(Resource.SERVICE_NAME, "")
        for sl in rl.scope_logs:
            for record in sl.log_records:
                trace_id, span_id = record.trace_id.hex(), record.span_id.hex()
                key = (trace_id, span_id)
                ordinal = per_span[key] = per_span.get(key, -1) + 1
                digest = hashlib.sha256(f"{trace_id}/{span_id}/{ordinal}/".encode())
                digest.update(record.SerializeToString(deterministic=True))
                values = {kv.key: anyvalue_to_python(kv.value) for kv in record.attributes}
                attrs: dict[str, str] = {}
                refs: dict[str, str] = {}
                for kv in record.attributes:
                    text = anyvalue_to_str(kv.value)
                    if len(text) > limit:
                        refs[kv.key] = rows.content(
                            pos.tenant, text, ContentKind.ATTRIBUTE, seen_ms
                        )
                    else:
                        attrs[kv.key] = text
                name = record.event_name or str(values.get(EVENT_NAME_ATTRIBUTE) or "")
                has_body = record.HasField("body") and record.body.WhichOneof("value") is not None
                body = anyvalue_to_python(record.body) if has_body else None
                body_text = canonical_json(body) if has_body else ""
                body_hash = ""
                if len(body_text) > limit:
                    kind = ContentKind.TEXT if isinstance(body, str) else ContentKind.ATTRIBUTE
                    body_hash, body_text = rows.content(pos.tenant, body, kind, seen_ms), ""
                observed = record.observed_time_unix_nano
                when = record.time_unix_nano or observed or pos.received_at_ns
                for column, value in (
                    ("tenant", pos.tenant),
                    ("time", when),
                    ("observed_time", observed or record.time_unix_nano or pos.received_at_ns),
                    ("trace_id", trace_id),
                    ("span_id", span_id),
                    ("log_id", digest.hexdigest()),
                    ("seq", seq),
                    ("severity_number", max(0, min(255, int(record.severity_number)))),
                    ("severity_text", record.severity_text),
                    ("event_name", name),
                    ("body", body_text),
                    ("body_hash", body_hash),
                    ("attributes", list(attrs.items())),
                    ("attribute_refs", list(refs.items())),
                    ("resource_attributes", list(resource.items())),
                    ("scope_name", sl.scope.name),
                    ("service", service),
                    ("flags", record.flags),
                    ("ingest_time", seen_ms),
                    ("source_topic", pos.topic),
                    ("source_partition", pos.partition),
                    ("source_offset", pos.offset),
                    ("sent_by", sent_by),
                ):
                    c[column].append(value)
                if span_id and is_genai_event(name):
                    genai.setdefault(key, []).append((when, seq, LogEvent(name, body, values)))
                seq += 1
    for events in genai.values():  # in the order the read side takes them: time, then position
        for messages in genai_messages(e for _, _, e in sorted(events, key=lambda x: x[:2])):
            if messages is not None:
                rows.content(pos.tenant, messages, ContentKind.MESSAGES, seen_ms)
