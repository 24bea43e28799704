"""OTLP ``ExportTraceServiceRequest`` -> canonical span rows and content records.

Hot path: one pass over each span's attributes builds a string map (the raw
attributes, kept whole), a convention is detected from its keys, and the
convention's extractor probes that map by key. Each span becomes one tuple of
column values; the tuples are turned into Arrow a thousand or so at a time
(``_Builder.flush``) and the record batches joined once per batch.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
from array import array
from collections.abc import Sequence
from itertools import accumulate, chain, pairwise
from typing import Any

import pyarrow as pa
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from agentledger.pipeline.normalize.base import (
    NormalizedBatch,
    NormalizeError,
    Normalizer,
    SourcePosition,
)
from agentledger.pipeline.normalize.conventions import (
    genai,
    langfuse,
    openinference,
    openlit,
    openllmetry,
)
from agentledger.pipeline.normalize.fields import Fields, canonical_tool, parse_json
from agentledger.schemas import (
    CONTENT_ARROW_SCHEMA,
    SPAN_ARROW_SCHEMA,
    ContentKind,
    Convention,
    CostSource,
    PriceTable,
    canonical_bytes,
    canonical_text,
)
from agentledger.schemas.attributes import AgentLedger as AL
from agentledger.schemas.attributes import Resource
from agentledger.schemas.canonical import canonical_json, canonical_json_bytes

__all__ = ["OtlpNormalizer", "anyvalue_to_python", "anyvalue_to_str"]

_STATUS = ("UNSET", "OK", "ERROR")
# A span row is a tuple of the columns but these (kept in lists of their own, see _Builder),
# converted to Arrow as one struct array.
_MAP_COLUMNS = ("attributes", "attribute_refs", "resource_attributes")
_ROW_COLUMNS = [n for n in SPAN_ARROW_SCHEMA.names if n != "agent_name" and n not in _MAP_COLUMNS]
_ROW_TYPE = pa.struct([SPAN_ARROW_SCHEMA.field(n) for n in _ROW_COLUMNS])
_KIND, _TRACE, _NAME = (_ROW_COLUMNS.index(n) for n in ("kind", "trace_id", "name"))
_K_ATTRIBUTE, _K_MESSAGES, _K_TEXT, _K_DOCUMENT, _K_ARGS, _K_RESULT, _K_TOOLS = (
    ContentKind.ATTRIBUTE.value,
    ContentKind.MESSAGES.value,
    ContentKind.TEXT.value,
    ContentKind.DOCUMENT.value,
    ContentKind.TOOL_ARGUMENTS.value,
    ContentKind.TOOL_RESULT.value,
    ContentKind.TOOLS.value,
)
# enum values, looked up once (Enum.value is a property)
_CONV_OPENINFERENCE: str = Convention.OPENINFERENCE.value
_CONV_LANGFUSE: str = Convention.LANGFUSE.value
_CONV_OPENLIT: str = Convention.OPENLIT.value
_CONV_OPENLLMETRY: str = Convention.OPENLLMETRY.value
_CONV_GENAI: str = Convention.GENAI.value
_CONV_UNKNOWN: str = Convention.UNKNOWN.value
_COST_SPAN, _COST_NONE, _COST_PRICE_TABLE = (
    CostSource.SPAN.value,
    CostSource.NONE.value,
    CostSource.PRICE_TABLE.value,
)
_SYSTEM_ROLES = ("system", "developer")
# looked up on every span, in one pass (see _row)
_AL_KEYS = (AL.COST_USD, AL.AGENT_NAME, AL.PRINCIPAL_ID, AL.PRINCIPAL_CHAIN, AL.POLICY_ID)
_PREVIEW = 200
_FLUSH_ROWS = 1024  # rows turned into Arrow at a time (see _Builder)
_MAX_STRING_BYTES = 2**31 - 1  # what 32-bit Arrow string offsets can address
_SHA256 = hashlib.sha256()


def _sha256_hex(data: bytes) -> str:
    """``hashlib.sha256(data).hexdigest()``, from a copy of an empty hash (cheaper than a new one
    with OpenSSL 3)."""
    h = _SHA256.copy()
    h.update(data)
    return h.hexdigest()


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


_MODEL_JSON: dict[str, bytes] = {}  # model -> its canonical JSON string (few models, many calls)


def _request_hash(model: str, params_json: str, messages_hash: str, tools_hash: str) -> str:
    """``agentledger.schemas.calls.request_hash``, from the parameters' canonical JSON (no second
    serialization): the envelope's members are written in their canonical order."""
    model_json = _MODEL_JSON.get(model)
    if model_json is None:
        model_json = canonical_json_bytes(model)
        if len(_MODEL_JSON) < 4096:
            _MODEL_JSON[model] = model_json
    envelope = b'{"messages":"%s","model":%s,"params":%s,"tools":"%s"}' % (
        messages_hash.encode(),
        model_json,
        params_json.encode() if params_json else b"{}",
        tools_hash.encode(),
    )
    return _sha256_hex(envelope)


def _params_json(f: Fields, memo: dict[str, str]) -> str:
    """The canonical JSON of the request parameters; those read from one recorded JSON text
    (``Fields.params_text``) repeat across calls, so each text's is written once per batch."""
    key = f.params_text
    if key is None:
        return canonical_json(f.params)
    found = memo.get(key)
    if found is None:
        found = memo[key] = canonical_json(f.params)
    return found


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


def _map_array(dicts: Sequence[dict[str, str]], type_: pa.DataType) -> pa.Array:
    """A MapArray from Python dicts, built from flat key/value arrays (faster than per-dict conversion)."""
    offsets = list(accumulate(map(len, dicts), initial=0))
    keys = list(chain.from_iterable(dicts))
    values = list(chain.from_iterable(map(dict.values, dicts)))
    return pa.MapArray.from_arrays(
        pa.array(offsets, pa.int32()),
        pa.array(keys, pa.string()),
        pa.array(values, pa.string()),
        type=type_,
    )


def _utf8_array(data: bytearray, sizes: Sequence[int]) -> pa.Array:
    """A string array of the UTF-8 values concatenated in ``data`` (no per-value decoding or copy)."""
    offsets = list(accumulate(sizes, initial=0))
    if offsets[-1] > _MAX_STRING_BYTES:  # beyond 32-bit offsets: let pyarrow split it into chunks
        values = [data[start:end].decode("utf-8") for start, end in pairwise(offsets)]
        return pa.array(values, type=pa.string())
    return pa.StringArray.from_buffers(
        len(sizes), pa.py_buffer(array("i", offsets)), pa.py_buffer(data)
    )


class _Builder:
    """Accumulates span rows and content records.

    Rows are tuples of the ``_ROW_COLUMNS``; ``agent_name`` (which
    ``_propagate_agent_names`` fills in) and the three attribute maps are lists
    of their own. They are turned into Arrow every ``_FLUSH_ROWS`` or so
    (between requests): converted while still in cache, and not left for the
    garbage collector to traverse over and over in a large batch. Content
    records are kept column-wise (parallel lists, in first-seen order: no
    object per record for the garbage collector to track), deduplicated per
    tenant by hash; their canonical forms are appended to one buffer as they
    come (no concatenation at the end).
    """

    def __init__(self) -> None:
        self.rows: list[tuple[Any, ...]] = []  # values of the _ROW_COLUMNS
        self.agent_names: list[str] = []
        self.attributes: list[dict[str, str]] = []
        self.attribute_refs: list[dict[str, str]] = []
        self.resource_attributes: list[dict[str, str]] = []
        self._span_batches: list[pa.RecordBatch] = []
        self._text_hashes: dict[str, str] = {}  # str -> hash: the same text hashed once per batch
        self.params_json: dict[str, str] = {}  # recorded parameters' text -> canonical JSON
        self._tools: dict[str, tuple[str, bytes]] = {}  # recorded tools -> hash, canonical form
        self._seen_by_tenant: dict[str, set[str]] = {}  # contents are per tenant
        self._seen: set[str] = set()
        self.tenant = ""
        self._seen_ms = 0
        # the contents columns; the canonical forms concatenated
        self._c_tenant: list[str] = []
        self._c_hash: list[str] = []
        self._c_kind: list[str] = []
        self._c_size: list[int] = []
        self._c_first_seen: list[int] = []
        self._content_data = bytearray()

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
        self._c_tenant.append(self.tenant)
        self._c_hash.append(h)
        self._c_kind.append(kind)
        self._c_size.append(len(canonical))
        self._c_first_seen.append(self._seen_ms)
        self._content_data += canonical

    def content(self, value: Any, kind: str) -> str:
        """The hash of ``value``'s canonical form, recording the content the first time it is seen."""
        if isinstance(value, str):
            h = self._text_hashes.get(value)
            if h is None:
                canonical = canonical_bytes(value)
                h = self._text_hashes[value] = _sha256_hex(canonical)
                if h not in self._seen:
                    self._add(h, kind, canonical)
            elif h not in self._seen:
                self._add(h, kind, canonical_bytes(value))
            return h
        return self.canonical(canonical_bytes(value), kind)

    def canonical(self, canonical: bytes, kind: str) -> str:
        """The hash of a canonical form, recording the content the first time it is seen."""
        h = _sha256_hex(canonical)
        if h not in self._seen:
            self._add(h, kind, canonical)
        return h

    def tools(self, f: Fields) -> str:
        """The hash of the canonical list of the tools offered, recording it the first time it is
        seen; the same recorded definitions (``Fields.tools_text``) are made canonical once per
        batch (an agent offers the same tools on every call)."""
        key = f.tools_text
        found = self._tools.get(key) if key is not None else None
        if found is None:
            canonical = canonical_bytes([canonical_tool(t) for t in f.tools or ()])
            found = (_sha256_hex(canonical), canonical)
            if key is not None and len(self._tools) < 1024:
                self._tools[key] = found
        h, canonical = found
        if h not in self._seen:
            self._add(h, _K_TOOLS, canonical)
        return h

    def value(self, value: Any, kind: str) -> tuple[str, str]:
        """Hash and preview of an input or output value (not None). Tool arguments and results
        that are JSON text are stored as canonical JSON."""
        if isinstance(value, str):
            if kind in (_K_ARGS, _K_RESULT):
                parsed = parse_json(value)
                if isinstance(parsed, (dict, list)):
                    value = parsed
            if isinstance(value, str):
                return self.content(value, kind), value[:_PREVIEW]
        canonical = canonical_bytes(value)
        # the preview is the first _PREVIEW characters of the canonical JSON: at most 4 bytes each
        return self.canonical(canonical, kind), canonical[: 4 * _PREVIEW].decode("utf-8", "ignore")[
            :_PREVIEW
        ]

    def flush(self) -> None:
        """The rows so far as one Arrow record batch."""
        # one conversion for all row columns (a struct array's children are the columns)
        arrays = dict(zip(_ROW_COLUMNS, pa.array(self.rows, type=_ROW_TYPE).flatten()))
        arrays["agent_name"] = pa.array(self.agent_names, type=pa.string())
        for name in _MAP_COLUMNS:
            arrays[name] = _map_array(getattr(self, name), SPAN_ARROW_SCHEMA.field(name).type)
        self._span_batches.append(
            pa.RecordBatch.from_arrays(
                [arrays[name] for name in SPAN_ARROW_SCHEMA.names], schema=SPAN_ARROW_SCHEMA
            )
        )
        self.rows = []
        self.agent_names = []
        self.attributes = []
        self.attribute_refs = []
        self.resource_attributes = []

    def build(self) -> NormalizedBatch:
        if self.rows or not self._span_batches:
            self.flush()
        spans = pa.Table.from_batches(self._span_batches, schema=SPAN_ARROW_SCHEMA)
        if len(self._span_batches) > 1:
            spans = spans.combine_chunks()
        contents = pa.Table.from_arrays(
            [
                pa.array(self._c_tenant, type=pa.string()),
                pa.array(self._c_hash, type=pa.string()),
                pa.array(self._c_kind, type=pa.string()),
                _utf8_array(self._content_data, self._c_size),
                pa.array(self._c_size, type=pa.uint64()),
                pa.array(self._c_first_seen, type=pa.timestamp("ms", tz="UTC")),
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
        self, requests: list[tuple[ExportTraceServiceRequest | bytes, SourcePosition]]
    ) -> NormalizedBatch:
        builder = _Builder()
        for request, pos in requests:
            if isinstance(request, bytes):
                try:
                    request = ExportTraceServiceRequest.FromString(request)
                except DecodeError as exc:
                    raise NormalizeError(f"malformed OTLP protobuf: {exc}") from exc
            builder.start(pos.tenant, pos.received_at_ns)
            self._request(request, pos, builder)
            if len(builder.rows) >= _FLUSH_ROWS:
                builder.flush()
        return builder.build()

    # -- one request ---------------------------------------------------------------------------

    def _request(
        self, request: ExportTraceServiceRequest, pos: SourcePosition, b: _Builder
    ) -> None:
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
                    large: list[str] = []  # keys of the values stored as references
                    for kv in span_attrs:
                        v = kv.value
                        key = kv.key
                        # a non-empty string_value is the set member of the oneof: skip WhichOneof
                        value = attrs[key] = v.string_value or to_str(v)
                        if len(value) > threshold:
                            large.append(key)
                    if len(attrs) != len(span_attrs):  # a key repeated: keep every value's place
                        small, refs = self._split_repeated(span_attrs, threshold, b)
                    elif large:
                        small = attrs.copy()  # the small ones, in attribute order
                        refs = {}
                        for key in large:
                            del small[key]
                            refs[key] = b.content(attrs[key], _K_ATTRIBUTE)
                    else:  # nothing to reference: the stored map is the raw one (never mutated)
                        small, refs = attrs, {}
                    events = self._events(span) if len(span.events) else None
                    name = span.name
                    f = Fields()
                    convention = self._extract(attrs, resource, scope_name, name, events, f)
                    self._row(
                        b,
                        span,
                        name,
                        attrs,
                        small,
                        refs,
                        resource,
                        service,
                        scope_name,
                        events,
                        f,
                        convention,
                        pos,
                    )
        self._propagate_agent_names(b, first_row)

    @staticmethod
    def _split_repeated(
        span_attrs: Any, threshold: int, b: _Builder
    ) -> tuple[dict[str, str], dict[str, str]]:
        """Stored and referenced attributes of a span that repeats a key (each value goes where its
        size says)."""
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
        name: str,
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
        # tool calls and documents as tuples in their struct's field order (no dicts: tuples of
        # plain values drop out of the garbage collector's view)
        tool_calls: tuple[tuple[str, str, str], ...] = ()
        input_messages = f.input_messages
        if input_messages:
            input_hash = content(input_messages, _K_MESSAGES)
            system = []
            last_user = None
            for m in input_messages:
                role = m.get("role")
                if role in _SYSTEM_ROLES:
                    system.append(_message_text(m))
                elif role == "user":
                    last_user = m
            if system:
                system_hash = content("\n".join(system), _K_TEXT)
            input_preview = _message_text(input_messages[-1] if last_user is None else last_user)[
                :_PREVIEW
            ]
        elif f.input_value is not None and f.input_value != "":
            kind = _K_ARGS if f.input_kind == "tool_arguments" else _K_TEXT
            input_hash, input_preview = b.value(f.input_value, kind)
        output_messages = f.output_messages
        if output_messages:
            output_hash = content(output_messages, _K_MESSAGES)
            output_preview = _message_text(output_messages[-1])[:_PREVIEW]
            tool_calls = tuple(
                (c["id"], c["name"], content(c["arguments"], _K_ARGS))  # id, name, arguments_hash
                for m in output_messages
                for c in m.get("tool_calls") or ()
            )
        elif f.output_value is not None and f.output_value != "":
            kind = _K_RESULT if f.output_kind == "tool_result" else _K_TEXT
            output_hash, output_preview = b.value(f.output_value, kind)
        documents: tuple[tuple[str, str, float], ...] = ()
        if f.documents:
            documents = tuple(
                (did, content(text, _K_DOCUMENT), score)  # id, content_hash, score
                for did, text, score in f.documents
            )
        # the canonical call (agentledger.schemas.calls)
        tools_hash = b.tools(f) if f.tools else ""
        request_params = _params_json(f, b.params_json) if f.params else ""
        request_hash = (
            _request_hash(f.request_model, request_params, input_hash, tools_hash)
            if input_messages and f.kind == "LLM"
            else ""
        )
        raw_request_hash = content(f.raw_request, _K_ATTRIBUTE) if f.raw_request else ""
        # cost
        input_tokens = f.input_tokens or 0
        output_tokens = f.output_tokens or 0
        cache_read = f.cache_read_tokens or 0
        cache_write = f.cache_write_tokens or 0
        cost = f.cost
        explicit, agent_name, principal_id, chain_attr, policy_id = map(attrs.get, _AL_KEYS)
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
        provider = f.provider or (_provider_from_model(model) if model else "")
        chain = parse_json(chain_attr) if chain_attr else None
        status = span.status
        code = status.code
        # one tuple per row: the _ROW_COLUMNS, in schema order
        b.agent_names.append(agent_name or f.agent_name)
        b.attributes.append(small)
        b.attribute_refs.append(refs)
        b.resource_attributes.append(resource)
        b.rows.append(
            (
                pos.tenant,  # tenant
                span.trace_id.hex(),  # trace_id
                span.span_id.hex(),  # span_id
                span.parent_span_id.hex(),  # parent_span_id
                start,  # start_time
                end,  # end_time
                (end - start) / 1e6,  # duration_ms
                name,  # name
                f.kind or "UNKNOWN",  # kind
                _STATUS[code] if code < 3 else "UNSET",  # status_code
                status.message,  # status_message
                service,  # service
                f.session_id,  # session_id
                f.user_id,  # user_id
                principal_id or "",  # principal_id
                tuple(str(x) for x in chain) if isinstance(chain, list) else (),  # principal_chain
                policy_id or "",  # policy_id
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
                request_params,  # request_params
                tools_hash,  # tools_hash
                f.finish_reasons or (),  # finish_reasons
                request_hash,  # request_hash
                raw_request_hash,  # raw_request_hash
                input_preview,  # input_preview
                output_preview,  # output_preview
                documents,  # documents
                convention,  # convention
                scope_name,  # scope_name
                json.dumps(events, ensure_ascii=False, default=str) if events else "",  # events
                pos.received_at_ns // 1_000_000,  # ingest_time
                pos.topic,  # source_topic
                pos.partition,  # source_partition
                pos.offset,  # source_offset
            )
        )

    @staticmethod
    def _propagate_agent_names(b: _Builder, first_row: int) -> None:
        """Spans of a trace whose AGENT span is in the same request inherit its agent name."""
        names = b.agent_names
        if all(names[first_row:]):
            return
        agents: dict[str, str] = {}
        for i in range(first_row, len(names)):
            r = b.rows[i]
            if r[_KIND] == "AGENT":
                agents.setdefault(r[_TRACE], names[i] or r[_NAME])
        if agents:
            for i in range(first_row, len(names)):
                if not names[i]:
                    trace = b.rows[i][_TRACE]
                    if trace in agents:
                        names[i] = agents[trace]


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
