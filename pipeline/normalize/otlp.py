"""OTLP ``ExportTraceServiceRequest`` -> canonical span rows and content records.

Hot path: one pass over each span's attributes builds a string map (the raw
attributes, kept whole), a convention is detected from its keys, and the
convention's extractor probes that map by key. Rows are built column-wise and
turned into Arrow once per batch; no per-row objects are created.
"""

from __future__ import annotations

import base64
import json
import math
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
    canonical_json,
    canonical_text,
    content_hash,
)
from agentledger.schemas.attributes import AgentLedger as AL
from agentledger.schemas.attributes import Resource

__all__ = ["OtlpNormalizer", "anyvalue_to_python", "anyvalue_to_str"]

_STATUS = ("UNSET", "OK", "ERROR")
_PREVIEW = 200


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


class _Builder:
    """Column-wise accumulation of span rows and content records."""

    def __init__(self) -> None:
        self.cols: dict[str, list[Any]] = {name: [] for name in SPAN_ARROW_SCHEMA.names}
        # (tenant, hash) -> (kind, canonical text, first seen ns): contents are per tenant
        self.contents: dict[tuple[str, str], tuple[str, str, int]] = {}
        self.tenant = ""
        self.seen_ns = 0

    def content(self, value: Any, kind: ContentKind) -> str:
        canonical = canonical_text(value)
        h = content_hash(canonical)
        key = (self.tenant, h)
        if key not in self.contents:
            self.contents[key] = (kind.value, canonical, self.seen_ns)
        return h

    def build(self) -> NormalizedBatch:
        spans = pa.Table.from_arrays(
            [pa.array(self.cols[f.name], type=f.type) for f in SPAN_ARROW_SCHEMA], schema=SPAN_ARROW_SCHEMA
        )
        keys = list(self.contents)
        values = list(self.contents.values())
        texts = [v[1] for v in values]
        contents = pa.Table.from_arrays(
            [
                pa.array([k[0] for k in keys], type=pa.string()),
                pa.array([k[1] for k in keys], type=pa.string()),
                pa.array([v[0] for v in values], type=pa.string()),
                pa.array(texts, type=pa.string()),
                pa.array([len(t.encode("utf-8", "surrogatepass")) for t in texts], type=pa.uint64()),
                pa.array([v[2] // 1_000_000 for v in values], type=pa.timestamp("ms", tz="UTC")),
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
            builder.tenant, builder.seen_ns = pos.tenant, pos.received_at_ns
            self._request(request, pos, builder)
        return builder.build()

    # -- one request ---------------------------------------------------------------------------

    def _request(self, request: ExportTraceServiceRequest, pos: SourcePosition, b: _Builder) -> None:
        cols = b.cols
        threshold = self.ref_threshold
        first_row = len(cols["span_id"])
        for rs in request.resource_spans:
            resource = {kv.key: anyvalue_to_str(kv.value) for kv in rs.resource.attributes}
            service = resource.get(Resource.SERVICE_NAME, "")
            for ss in rs.scope_spans:
                scope_name = ss.scope.name
                for span in ss.spans:
                    attrs: dict[str, str] = {}
                    small: dict[str, str] = {}
                    refs: dict[str, str] = {}
                    for kv in span.attributes:
                        value = anyvalue_to_str(kv.value)
                        attrs[kv.key] = value
                        if len(value) > threshold:
                            refs[kv.key] = b.content(value, ContentKind.ATTRIBUTE)
                        else:
                            small[kv.key] = value
                    events = self._events(span) if len(span.events) else None
                    f = Fields()
                    convention = self._extract(attrs, resource, scope_name, span.name, events, f)
                    self._row(cols, b, span, attrs, small, refs, resource, service, scope_name,
                              events, f, convention, pos)
        self._propagate_agent_names(cols, first_row)

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
    ) -> Convention:
        if openinference.matches(attrs):
            openinference.extract(attrs, f)
            return Convention.OPENINFERENCE
        if langfuse.matches(attrs):
            langfuse.extract(attrs, f, events, span_name)
            return Convention.LANGFUSE
        if openlit.matches(attrs, resource, scope_name):
            openlit.extract(attrs, f, events)
            return Convention.OPENLIT
        if openllmetry.matches(attrs):
            openllmetry.extract(attrs, f, events)
            return Convention.OPENLLMETRY
        if genai.matches(attrs):
            genai.extract(attrs, f, events)
            return Convention.GENAI
        return Convention.UNKNOWN

    def _row(
        self,
        cols: dict[str, list[Any]],
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
        convention: Convention,
        pos: SourcePosition,
    ) -> None:
        start, end = span.start_time_unix_nano, span.end_time_unix_nano
        if end < start:
            end = start
        # content: messages, values, documents, tool calls
        input_hash = output_hash = system_hash = ""
        input_preview = output_preview = ""
        tool_calls: list[dict[str, str]] = []
        if f.input_messages:
            input_hash = b.content(f.input_messages, ContentKind.MESSAGES)
            system = [_message_text(m) for m in f.input_messages if m.get("role") in ("system", "developer")]
            if system:
                system_hash = b.content("\n".join(system), ContentKind.TEXT)
            users = [m for m in f.input_messages if m.get("role") == "user"]
            input_preview = _preview(_message_text(users[-1] if users else f.input_messages[-1]))
        elif f.input_value is not None and f.input_value != "":
            kind = ContentKind.TOOL_ARGUMENTS if f.input_kind == "tool_arguments" else ContentKind.TEXT
            value = _canonical_value(f.input_value, kind)
            input_hash = b.content(value, kind)
            input_preview = _preview(value)
        if f.output_messages:
            output_hash = b.content(f.output_messages, ContentKind.MESSAGES)
            output_preview = _preview(_message_text(f.output_messages[-1]))
            for m in f.output_messages:
                for c in m.get("tool_calls") or ():
                    tool_calls.append({
                        "id": c["id"],
                        "name": c["name"],
                        "arguments_hash": b.content(c["arguments"], ContentKind.TOOL_ARGUMENTS),
                    })
        elif f.output_value is not None and f.output_value != "":
            kind = ContentKind.TOOL_RESULT if f.output_kind == "tool_result" else ContentKind.TEXT
            value = _canonical_value(f.output_value, kind)
            output_hash = b.content(value, kind)
            output_preview = _preview(value)
        documents = []
        for did, text, score in f.documents or ():
            documents.append({"id": did, "content_hash": b.content(text, ContentKind.DOCUMENT), "score": score})
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
        if cost is not None:
            cost_source = CostSource.SPAN.value
        else:
            cost, cost_source = 0.0, CostSource.NONE.value
            model = f.response_model or f.request_model
            if model and (input_tokens or output_tokens):
                price = self.prices.lookup(f.provider, model)
                if price is not None:
                    cost = price.cost(input_tokens, output_tokens, cache_read, cache_write)
                    cost_source = CostSource.PRICE_TABLE.value
        provider = f.provider or _provider_from_model(f.response_model or f.request_model)
        chain = parse_json(attrs.get(AL.PRINCIPAL_CHAIN))
        cols["tenant"].append(pos.tenant)
        cols["trace_id"].append(span.trace_id.hex())
        cols["span_id"].append(span.span_id.hex())
        cols["parent_span_id"].append(span.parent_span_id.hex())
        cols["start_time"].append(start)
        cols["end_time"].append(end)
        cols["duration_ms"].append((end - start) / 1e6)
        cols["name"].append(span.name)
        cols["kind"].append(f.kind or "UNKNOWN")
        cols["status_code"].append(_STATUS[span.status.code] if span.status.code < 3 else "UNSET")
        cols["status_message"].append(span.status.message)
        cols["service"].append(service)
        cols["agent_name"].append(attrs.get(AL.AGENT_NAME) or f.agent_name)
        cols["session_id"].append(f.session_id)
        cols["user_id"].append(f.user_id)
        cols["principal_id"].append(attrs.get(AL.PRINCIPAL_ID, ""))
        cols["principal_chain"].append([str(x) for x in chain] if isinstance(chain, list) else [])
        cols["policy_id"].append(attrs.get(AL.POLICY_ID, ""))
        cols["provider"].append(provider)
        cols["operation"].append(f.operation)
        cols["request_model"].append(f.request_model)
        cols["response_model"].append(f.response_model)
        cols["system_fingerprint"].append(f.system_fingerprint)
        cols["input_tokens"].append(input_tokens)
        cols["output_tokens"].append(output_tokens)
        cols["cache_read_tokens"].append(cache_read)
        cols["cache_write_tokens"].append(cache_write)
        cols["reasoning_tokens"].append(f.reasoning_tokens or 0)
        cols["cost_usd"].append(cost)
        cols["cost_source"].append(cost_source)
        cols["tool_name"].append(f.tool_name)
        cols["tool_call_id"].append(f.tool_call_id)
        cols["tool_calls"].append(tool_calls)
        cols["input_hash"].append(input_hash)
        cols["output_hash"].append(output_hash)
        cols["system_prompt_hash"].append(system_hash)
        cols["input_preview"].append(input_preview)
        cols["output_preview"].append(output_preview)
        cols["documents"].append(documents)
        cols["convention"].append(convention.value)
        cols["scope_name"].append(scope_name)
        cols["attributes"].append(small)
        cols["attribute_refs"].append(refs)
        cols["resource_attributes"].append(resource)
        cols["events"].append(json.dumps(events, ensure_ascii=False, default=str) if events else "")
        cols["ingest_time"].append(pos.received_at_ns // 1_000_000)
        cols["source_topic"].append(pos.topic)
        cols["source_partition"].append(pos.partition)
        cols["source_offset"].append(pos.offset)

    @staticmethod
    def _propagate_agent_names(cols: dict[str, list[Any]], first_row: int) -> None:
        """Spans of a trace whose AGENT span is in the same request inherit its agent name."""
        names = cols["agent_name"]
        if all(names[first_row:]):
            return
        kinds, traces, span_names = cols["kind"], cols["trace_id"], cols["name"]
        agents: dict[str, str] = {}
        for i in range(first_row, len(names)):
            if kinds[i] == "AGENT":
                agents.setdefault(traces[i], names[i] or span_names[i])
        if not agents:
            return
        for i in range(first_row, len(names)):
            if not names[i] and traces[i] in agents:
                names[i] = agents[traces[i]]


def _canonical_value(value: Any, kind: ContentKind) -> Any:
    """Tool arguments and results that are JSON text are stored as canonical JSON."""
    if kind in (ContentKind.TOOL_ARGUMENTS, ContentKind.TOOL_RESULT) and isinstance(value, str):
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
