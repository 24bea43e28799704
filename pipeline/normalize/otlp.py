"""OTLP ``ExportTraceServiceRequest`` -> canonical span rows and content records.

Hot path: one pass over each span's attributes builds a string map (the raw
attributes, kept whole), a convention is detected from its keys, and the
convention's extractor probes that map by key. Each span becomes one tuple of
column values; the tuples are turned into Arrow a thousand or so at a time
(``_Builder.flush``) and the record batches joined once per batch.
"""

from __future__ import annotations

import json
from typing import Any

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

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
from agentledger.pipeline.normalize.fields import Fields, parse_json
from agentledger.pipeline.normalize.rows import (
    _AL_KEYS,
    _COST_NONE,
    _COST_PRICE_TABLE,
    _COST_SPAN,
    _FLUSH_ROWS,
    _K_ARGS,
    _K_ATTRIBUTE,
    _K_DOCUMENT,
    _K_MESSAGES,
    _K_RESULT,
    _K_TEXT,
    _KIND,
    _NAME,
    _PREVIEW,
    _STATUS,
    _SYSTEM_ROLES,
    _TRACE,
    _Builder,
    _message_text,
    _params_json,
    _request_hash,
    anyvalue_to_python,
    anyvalue_to_str,
)
from agentledger.schemas import Convention, PriceTable
from agentledger.schemas.attributes import Resource

__all__ = ["OtlpNormalizer", "anyvalue_to_python", "anyvalue_to_str"]

# enum values, looked up once (Enum.value is a property)
_CONV_OPENINFERENCE: str = Convention.OPENINFERENCE.value
_CONV_LANGFUSE: str = Convention.LANGFUSE.value
_CONV_OPENLIT: str = Convention.OPENLIT.value
_CONV_OPENLLMETRY: str = Convention.OPENLLMETRY.value
_CONV_GENAI: str = Convention.GENAI.value
_CONV_UNKNOWN: str = Convention.UNKNOWN.value


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
