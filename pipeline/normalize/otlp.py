"""OTLP ``ExportTraceServiceRequest`` -> canonical span rows and content records.

Hot path: one pass over each span's attributes builds a string map (the raw
attributes, kept whole), a convention is detected from its keys, and the
convention's extractor probes that map by key. Rows are built column-wise and
turned into Arrow once per batch; no per-row objects are created.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
from array import array
from collections.abc import Sequence
from itertools import accumulate, chain
from typing import Any

import pyarrow as pa
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from agentledger.pipeline.normalize.base import NormalizedBatch, Normalizer, SourcePosition
from agentledger.pipeline.normalize.conventions import genai, langfuse, openinference, openlit, openllmetry
from agentledger.pipeline.normalize.fields import Fields, parse_json
from agentledger.schemas import (
    CONTENT_ARROW_SCHEMA,
    SPAN_ARROW_SCHEMA,
    ContentKind,
    Convention,
    CostSource,
    PriceTable,
    canonical_bytes,
    canonical_json,
    canonical_text,
)
from agentledger.schemas.attributes import AgentLedger as AL
from agentledger.schemas.attributes import Resource

__all__ = ["OtlpNormalizer", "anyvalue_to_python", "anyvalue_to_str"]

_STATUS = ("UNSET", "OK", "ERROR")
_AGENT, _KIND, _TRACE, _NAME = (SPAN_ARROW_SCHEMA.names.index(n) for n in ("agent_name", "kind", "trace_id", "name"))
_K_ATTRIBUTE, _K_MESSAGES, _K_TEXT, _K_DOCUMENT, _K_ARGS, _K_RESULT = (
    ContentKind.ATTRIBUTE.value, ContentKind.MESSAGES.value, ContentKind.TEXT.value, ContentKind.DOCUMENT.value,
    ContentKind.TOOL_ARGUMENTS.value, ContentKind.TOOL_RESULT.value,
)
_CONV_OPENINFERENCE, _CONV_LANGFUSE, _CONV_OPENLIT, _CONV_OPENLLMETRY, _CONV_GENAI, _CONV_UNKNOWN = (
    Convention.OPENINFERENCE.value, Convention.LANGFUSE.value, Convention.OPENLIT.value,
    Convention.OPENLLMETRY.value, Convention.GENAI.value, Convention.UNKNOWN.value,
)
_COST_SPAN, _COST_NONE, _COST_PRICE_TABLE = CostSource.SPAN.value, CostSource.NONE.value, CostSource.PRICE_TABLE.value
_SYSTEM_ROLES = ("system", "developer")
_PREVIEW = 200
_MAX_STRING_BYTES = 2**31 - 1  # what 32-bit Arrow string offsets can address


def anyvalue_to_python(v: AnyValue) -> Any:
    """An OTLP AnyValue as a plain Python value."""
    which = v.WhichOneof("value")
    if which == "string_value":
        return v.string_value
    if which == "int_value":
        return v.int_value
    if which == "double_value":
        return v.double_value
    if which == "bool_value":
        return v.bool_value
    if which == "array_value":
        return [anyvalue_to_python(x) for x in v.array_value.values]
    if which == "kvlist_value":
        return {kv.key: anyvalue_to_python(kv.value) for kv in v.kvlist_value.values}
    if which == "bytes_value":
        return base64.b64encode(v.bytes_value).decode()
    return None


def anyvalue_to_str(v: AnyValue) -> str:
    """An OTLP AnyValue as the string stored in the attribute maps."""
    which = v.WhichOneof("value")
    if which == "string_value":
        return v.string_value
    if which == "int_value":
        return str(v.int_value)
    if which == "double_value":
        d = v.double_value
        return repr(d) if math.isfinite(d) else str(d)
    if which == "bool_value":
        return "true" if v.bool_value else "false"
    if which is None:
        return ""
    if which == "bytes_value":
        return base64.b64encode(v.bytes_value).decode()
    return json.dumps(anyvalue_to_python(v), ensure_ascii=False, separators=(",", ":"))


def _preview(value: Any) -> str:
    if value is None:
        return ""
    text = value if isinstance(value, str) else canonical_json(value)
    return text[:_PREVIEW]


def _message_text(msg: dict[str, Any]) -> str:
    content = msg.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("text"))
    calls = msg.get("tool_calls")
    if calls:
        return "; ".join(f"{c['name']}({canonical_text(c['arguments'])})" for c in calls)
    return ""


_MAP_COLUMNS = frozenset({"attributes", "attribute_refs", "resource_attributes"})


def _map_array(dicts: Sequence[dict[str, str]], type_: pa.DataType) -> pa.Array:
    """A MapArray from Python dicts, built from flat key/value arrays (faster than per-dict conversion)."""
    offsets = list(accumulate(map(len, dicts), initial=0))
    keys = list(chain.from_iterable(dicts))
    values = list(chain.from_iterable(map(dict.values, dicts)))
    return pa.MapArray.from_arrays(
        pa.array(offsets, pa.int32()), pa.array(keys, pa.string()), pa.array(values, pa.string()), type=type_
    )


def _utf8_array(chunks: list[bytes], sizes: list[int]) -> pa.Array:
    """A string array from UTF-8 encoded values, built from their concatenation (no per-value decoding)."""
    offsets = list(accumulate(sizes, initial=0))
    if offsets[-1] > _MAX_STRING_BYTES:  # beyond 32-bit offsets: let pyarrow split it into chunks
        return pa.array([c.decode("utf-8") for c in chunks], type=pa.string())
    return pa.StringArray.from_buffers(
        len(chunks), pa.py_buffer(array("i", offsets)), pa.py_buffer(b"".join(chunks))
    )


class _Builder:
    """Accumulates span rows (one list each, in schema order) and content records.

    Content records are kept column-wise (parallel lists, in first-seen order)
    and deduplicated per tenant by hash.
    """

    def __init__(self) -> None:
        self.rows: list[list[Any]] = []
        self._text_hashes: dict[str, str] = {}  # str -> hash: the same text hashed once per batch
        self._seen_by_tenant: dict[str, set[str]] = {}  # contents are per tenant
        self._seen: set[str] = set()
        self.tenant = ""
        self._seen_ms = 0
        # content columns
        self.c_tenant: list[str] = []
        self.c_hash: list[str] = []
        self.c_kind: list[str] = []
        self.c_content: list[bytes] = []
        self.c_first_seen: list[int] = []

    def start(self, tenant: str, received_at_ns: int) -> None:
        """Content recorded from now on belongs to ``tenant`` and was first seen at ``received_at_ns``."""
        self.tenant = tenant
        self._seen_ms = received_at_ns // 1_000_000
        seen = self._seen_by_tenant.get(tenant)
        if seen is None:
            seen = self._seen_by_tenant[tenant] = set()
        self._seen = seen

    def _add(self, h: str, kind: str, canonical: bytes) -> None:
        self._seen.add(h)
        self.c_tenant.append(self.tenant)
        self.c_hash.append(h)
        self.c_kind.append(kind)
        self.c_content.append(canonical)
        self.c_first_seen.append(self._seen_ms)

    def content(self, value: Any, kind: str) -> str:
        """The hash of ``value``'s canonical form, recording the content the first time it is seen."""
        if isinstance(value, str):
            h = self._text_hashes.get(value)
            if h is None:
                canonical = canonical_bytes(value)
                h = self._text_hashes[value] = hashlib.sha256(canonical).hexdigest()
                if h not in self._seen:
                    self._add(h, kind, canonical)
            elif h not in self._seen:
                self._add(h, kind, canonical_bytes(value))
            return h
        canonical = canonical_bytes(value)
        h = hashlib.sha256(canonical).hexdigest()
        if h not in self._seen:
            self._add(h, kind, canonical)
        return h

    def build(self) -> NormalizedBatch:
        columns = list(zip(*self.rows)) if self.rows else [[] for _ in SPAN_ARROW_SCHEMA]
        arrays = [
            _map_array(col, f.type) if f.name in _MAP_COLUMNS else pa.array(col, type=f.type)
            for f, col in zip(SPAN_ARROW_SCHEMA, columns)
        ]
        spans = pa.Table.from_arrays(arrays, schema=SPAN_ARROW_SCHEMA)
        sizes = list(map(len, self.c_content))
        contents = pa.Table.from_arrays(
            [
                pa.array(self.c_tenant, type=pa.string()),
                pa.array(self.c_hash, type=pa.string()),
                pa.array(self.c_kind, type=pa.string()),
                _utf8_array(self.c_content, sizes),
                pa.array(sizes, type=pa.uint64()),
                pa.array(self.c_first_seen, type=pa.timestamp("ms", tz="UTC")),
            ],
            schema=CONTENT_ARROW_SCHEMA,
        )
        return NormalizedBatch(spans, contents)


class OtlpNormalizer(Normalizer):
    """The normalizer for OTLP traces.

    ``ref_threshold``: attribute values longer than this many characters are
    stored once in ``contents`` and referenced from ``attribute_refs``.
    """

    def __init__(self, prices: PriceTable | None = None, ref_threshold: int = 512) -> None:
        self.prices = prices or PriceTable.load()
        self.ref_threshold = ref_threshold

    def normalize(
        self, requests: list[tuple[ExportTraceServiceRequest, SourcePosition]]
    ) -> NormalizedBatch:
        builder = _Builder()
        for request, pos in requests:
            builder.start(pos.tenant, pos.received_at_ns)
            self._request(request, pos, builder)
        return builder.build()

    # -- one request ---------------------------------------------------------------------------

    def _request(self, request: ExportTraceServiceRequest, pos: SourcePosition, b: _Builder) -> None:
        threshold = self.ref_threshold
        first_row = len(b.rows)
        to_str = anyvalue_to_str
        for rs in request.resource_spans:
            resource = {kv.key: to_str(kv.value) for kv in rs.resource.attributes}
            service = resource.get(Resource.SERVICE_NAME, "")
            for ss in rs.scope_spans:
                scope_name = ss.scope.name
                for span in ss.spans:
                    span_attrs = span.attributes
                    attrs: dict[str, str] = {}
                    for kv in span_attrs:
                        v = kv.value
                        # a non-empty string_value is the set member of the oneof: skip WhichOneof
                        attrs[kv.key] = v.string_value or to_str(v)
                    if len(attrs) != len(span_attrs):  # a key repeated: keep every value's place
                        small, refs = self._split_repeated(span_attrs, threshold, b)
                    elif attrs and max(map(len, attrs.values())) > threshold:
                        small, refs = {}, {}
                        for key, value in attrs.items():
                            if len(value) > threshold:
                                refs[key] = b.content(value, _K_ATTRIBUTE)
                            else:
                                small[key] = value
                    else:  # nothing to reference: the stored map is the raw one (never mutated)
                        small, refs = attrs, {}
                    events = self._events(span) if len(span.events) else None
                    f = Fields()
                    convention = self._extract(attrs, resource, scope_name, span.name, events, f)
                    self._row(b, span, attrs, small, refs, resource, service, scope_name,
                              events, f, convention, pos)
        self._propagate_agent_names(b.rows, first_row)

    @staticmethod
    def _split_repeated(span_attrs: Any, threshold: int, b: _Builder) -> tuple[dict[str, str], dict[str, str]]:
        """Stored and referenced attributes of a span that repeats a key (each value goes where its size says)."""
        small: dict[str, str] = {}
        refs: dict[str, str] = {}
        for kv in span_attrs:
            value = anyvalue_to_str(kv.value)
            if len(value) > threshold:
                refs[kv.key] = b.content(value, _K_ATTRIBUTE)
            else:
                small[kv.key] = value
        return small, refs

    @staticmethod
    def _events(span: Any) -> list[dict[str, Any]]:
        return [
            {
                "name": ev.name,
                "time_unix_nano": ev.time_unix_nano,
                "attributes": {kv.key: anyvalue_to_python(kv.value) for kv in ev.attributes},
            }
            for ev in span.events
        ]

    @staticmethod
    def _extract(
        attrs: dict[str, str],
        resource: dict[str, str],
        scope_name: str,
        span_name: str,
        events: list[dict[str, Any]] | None,
        f: Fields,
    ) -> str:
        """Fill ``f`` by the span's convention; returns the convention's value."""
        if openinference.matches(attrs):
            openinference.extract(attrs, f)
            return _CONV_OPENINFERENCE
        if langfuse.matches(attrs):
            langfuse.extract(attrs, f, events, span_name)
            return _CONV_LANGFUSE
        if openlit.matches(attrs, resource, scope_name):
            openlit.extract(attrs, f, events)
            return _CONV_OPENLIT
        if openllmetry.matches(attrs):
            openllmetry.extract(attrs, f, events)
            return _CONV_OPENLLMETRY
        if genai.matches(attrs):
            genai.extract(attrs, f, events)
            return _CONV_GENAI
        return _CONV_UNKNOWN

    def _row(
        self,
        b: _Builder,
        span: Any,
        attrs: dict[str, str],
        small: dict[str, str],
        refs: dict[str, str],
        resource: dict[str, str],
        service: str,
        scope_name: str,
        events: list[dict[str, Any]] | None,
        f: Fields,
        convention: str,
        pos: SourcePosition,
    ) -> None:
        start, end = span.start_time_unix_nano, span.end_time_unix_nano
        if end < start:
            end = start
        content = b.content
        # content: messages, values, documents, tool calls
        input_hash = output_hash = system_hash = ""
        input_preview = output_preview = ""
        tool_calls: list[dict[str, str]] = []
        input_messages = f.input_messages
        if input_messages:
            input_hash = content(input_messages, _K_MESSAGES)
            system = [_message_text(m) for m in input_messages if m.get("role") in _SYSTEM_ROLES]
            if system:
                system_hash = content("\n".join(system), _K_TEXT)
            last_user = None
            for m in input_messages:
                if m.get("role") == "user":
                    last_user = m
            input_preview = _preview(_message_text(input_messages[-1] if last_user is None else last_user))
        elif f.input_value is not None and f.input_value != "":
            kind = _K_ARGS if f.input_kind == "tool_arguments" else _K_TEXT
            value = _canonical_value(f.input_value, kind)
            input_hash = content(value, kind)
            input_preview = _preview(value)
        output_messages = f.output_messages
        if output_messages:
            output_hash = content(output_messages, _K_MESSAGES)
            output_preview = _preview(_message_text(output_messages[-1]))
            for m in output_messages:
                for c in m.get("tool_calls") or ():
                    tool_calls.append({
                        "id": c["id"],
                        "name": c["name"],
                        "arguments_hash": content(c["arguments"], _K_ARGS),
                    })
        elif f.output_value is not None and f.output_value != "":
            kind = _K_RESULT if f.output_kind == "tool_result" else _K_TEXT
            value = _canonical_value(f.output_value, kind)
            output_hash = content(value, kind)
            output_preview = _preview(value)
        documents = []
        if f.documents:
            for did, text, score in f.documents:
                documents.append({"id": did, "content_hash": content(text, _K_DOCUMENT), "score": score})
        # cost
        input_tokens = f.input_tokens or 0
        output_tokens = f.output_tokens or 0
        cache_read = f.cache_read_tokens or 0
        cache_write = f.cache_write_tokens or 0
        cost = f.cost
        explicit = attrs.get(AL.COST_USD)
        if explicit:
            try:
                cost = float(explicit)
            except ValueError:
                pass
        model = f.response_model or f.request_model
        if cost is not None:
            cost_source = _COST_SPAN
        else:
            cost, cost_source = 0.0, _COST_NONE
            if model and (input_tokens or output_tokens):
                price = self.prices.lookup(f.provider, model)
                if price is not None:
                    cost = price.cost(input_tokens, output_tokens, cache_read, cache_write)
                    cost_source = _COST_PRICE_TABLE
        provider = f.provider or _provider_from_model(model)
        chain_attr = attrs.get(AL.PRINCIPAL_CHAIN)
        chain = parse_json(chain_attr) if chain_attr else None
        status = span.status
        code = status.code
        # one list per row, in SPAN_ARROW_SCHEMA order (transposed once in build())
        b.rows.append([
            pos.tenant,  # tenant
            span.trace_id.hex(),  # trace_id
            span.span_id.hex(),  # span_id
            span.parent_span_id.hex(),  # parent_span_id
            start,  # start_time
            end,  # end_time
            (end - start) / 1e6,  # duration_ms
            span.name,  # name
            f.kind or "UNKNOWN",  # kind
            _STATUS[code] if code < 3 else "UNSET",  # status_code
            status.message,  # status_message
            service,  # service
            attrs.get(AL.AGENT_NAME) or f.agent_name,  # agent_name
            f.session_id,  # session_id
            f.user_id,  # user_id
            attrs.get(AL.PRINCIPAL_ID, ""),  # principal_id
            [str(x) for x in chain] if isinstance(chain, list) else [],  # principal_chain
            attrs.get(AL.POLICY_ID, ""),  # policy_id
            provider,  # provider
            f.operation,  # operation
            f.request_model,  # request_model
            f.response_model,  # response_model
            f.system_fingerprint,  # system_fingerprint
            input_tokens,  # input_tokens
            output_tokens,  # output_tokens
            cache_read,  # cache_read_tokens
            cache_write,  # cache_write_tokens
            f.reasoning_tokens or 0,  # reasoning_tokens
            cost,  # cost_usd
            cost_source,  # cost_source
            f.tool_name,  # tool_name
            f.tool_call_id,  # tool_call_id
            tool_calls,  # tool_calls
            input_hash,  # input_hash
            output_hash,  # output_hash
            system_hash,  # system_prompt_hash
            input_preview,  # input_preview
            output_preview,  # output_preview
            documents,  # documents
            convention,  # convention
            scope_name,  # scope_name
            small,  # attributes
            refs,  # attribute_refs
            resource,  # resource_attributes
            json.dumps(events, ensure_ascii=False, default=str) if events else "",  # events
            pos.received_at_ns // 1_000_000,  # ingest_time
            pos.topic,  # source_topic
            pos.partition,  # source_partition
            pos.offset,  # source_offset
        ])

    @staticmethod
    def _propagate_agent_names(rows: list[list[Any]], first_row: int) -> None:
        """Spans of a trace whose AGENT span is in the same request inherit its agent name."""
        if all(r[_AGENT] for r in rows[first_row:]):
            return
        agents: dict[str, str] = {}
        for r in rows[first_row:]:
            if r[_KIND] == "AGENT":
                agents.setdefault(r[_TRACE], r[_AGENT] or r[_NAME])
        if agents:
            for r in rows[first_row:]:
                if not r[_AGENT] and r[_TRACE] in agents:
                    r[_AGENT] = agents[r[_TRACE]]


def _canonical_value(value: Any, kind: str) -> Any:
    """Tool arguments and results that are JSON text are stored as canonical JSON."""
    if kind in (_K_ARGS, _K_RESULT) and isinstance(value, str):
        parsed = parse_json(value)
        if isinstance(parsed, (dict, list)):
            return parsed
    return value


def _provider_from_model(model: str) -> str:
    m = model.lower()
    if m.startswith(("gpt-", "o1", "o3", "o4", "text-embedding", "chatgpt")):
        return "openai"
    if m.startswith("claude"):
        return "anthropic"
    if m.startswith("gemini"):
        return "google"
    if m.startswith(("mistral", "mixtral")):
        return "mistral"
    return ""
