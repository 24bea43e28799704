"""OTLP/HTTP protobuf export with a direct encoder: the export thread's cost, cut to a fraction.

Why: the SDK's encoder builds one protobuf object per attribute, value and
span (``encode_spans``), about 3-4 times the cost of writing the same bytes
directly. The export thread shares the GIL with the agent, so in a process
that is busy (not waiting on the network) every microsecond it spends is taken
from the agent's own calls; ``bench/instrumentation_overhead.py`` shows it.

``encode_request`` writes an ``ExportTraceServiceRequest`` straight to bytes,
field for field what the SDK's encoder produces (``tests/instrumentation``
checks the two decode to the same message): spans grouped by resource, then
by instrumentation scope, in first-seen order; field encodings per the
protobuf wire format (varints, fixed64 times, length-delimited messages).
Attribute keys are encoded once and cached.

``FastOTLPSpanExporter`` is the SDK's OTLP/HTTP exporter (endpoint, headers,
compression, retries, timeouts unchanged) with only the encoding swapped; if
the SDK's internals it relies on change, it falls back to the SDK's export.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult

__all__ = ["FastOTLPSpanExporter", "encode_request"]

logger = logging.getLogger(__name__)

_pack_fixed64 = struct.Struct("<Q").pack
_pack_fixed32 = struct.Struct("<I").pack
_pack_double = struct.Struct("<d").pack
_VARINT_CACHE = 16384


def _varint_slow(n: int) -> bytes:
    if n < 0:
        n += 1 << 64
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


_SMALL = [_varint_slow(i) for i in range(_VARINT_CACHE)]


def _varint(n: int) -> bytes:
    return _SMALL[n] if 0 <= n < _VARINT_CACHE else _varint_slow(n)


def _ld(tag: bytes, payload: bytes) -> bytes:
    """A length-delimited field: tag, length, payload."""
    n = len(payload)
    return tag + (_SMALL[n] if n < _VARINT_CACHE else _varint_slow(n)) + payload


# tags: (field number << 3) | wire type (0 varint, 1 fixed64, 2 length-delimited, 5 fixed32)
_T_RESOURCE_SPANS = b"\x0a"
_T_RESOURCE = b"\x0a"
_T_SCOPE_SPANS = b"\x12"
_T_SCHEMA_URL = b"\x1a"
_T_SCOPE = b"\x0a"
_T_SPANS = b"\x12"
_T_ATTR_RESOURCE = b"\x0a"
_T_SCOPE_NAME, _T_SCOPE_VERSION, _T_SCOPE_ATTRS = b"\x0a", b"\x12", b"\x1a"
_T_KV_KEY, _T_KV_VALUE = b"\x0a", b"\x12"
_T_STRING, _T_BOOL, _T_INT, _T_DOUBLE, _T_ARRAY, _T_KVLIST, _T_BYTES = (
    b"\x0a",
    b"\x10",
    b"\x18",
    b"\x21",
    b"\x2a",
    b"\x32",
    b"\x3a",
)
_T_ARRAY_VALUES = b"\x0a"
# Span fields
_T_TRACE_ID, _T_SPAN_ID, _T_TRACE_STATE, _T_PARENT, _T_NAME, _T_KIND = (
    b"\x0a",
    b"\x12",
    b"\x1a",
    b"\x22",
    b"\x2a",
    b"\x30",
)
_T_START, _T_END, _T_ATTRS, _T_DROPPED_ATTRS = b"\x39", b"\x41", b"\x4a", b"\x50"
_T_EVENTS, _T_DROPPED_EVENTS, _T_LINKS, _T_DROPPED_LINKS, _T_STATUS, _T_FLAGS = (
    b"\x5a",
    b"\x60",
    b"\x6a",
    b"\x70",
    b"\x7a",
    b"\x85\x01",
)
# Event, Link, Status fields
_T_EV_TIME, _T_EV_NAME, _T_EV_ATTRS, _T_EV_DROPPED = b"\x09", b"\x12", b"\x1a", b"\x20"
_T_LINK_TRACE, _T_LINK_SPAN, _T_LINK_STATE, _T_LINK_ATTRS, _T_LINK_DROPPED, _T_LINK_FLAGS = (
    b"\x0a",
    b"\x12",
    b"\x1a",
    b"\x22",
    b"\x28",
    b"\x35",
)
_T_STATUS_MESSAGE, _T_STATUS_CODE = b"\x12", b"\x18"
_HAS_IS_REMOTE, _IS_REMOTE = 0x100, 0x200

_KEY_CACHE: dict[str, bytes] = {}
_MAX_KEYS = 65536


def _key(key: str) -> bytes:
    """``KeyValue.key`` field of ``key``, cached (attribute keys repeat on every span)."""
    encoded = _KEY_CACHE.get(key)
    if encoded is None:
        encoded = _ld(_T_KV_KEY, key.encode("utf-8"))
        if len(_KEY_CACHE) < _MAX_KEYS:
            _KEY_CACHE[key] = encoded
    return encoded


def _any_value(value: Any) -> bytes:
    """An ``AnyValue`` message body, as the SDK encodes it (None: the empty message)."""
    if isinstance(value, str):
        return _ld(_T_STRING, value.encode("utf-8"))
    if isinstance(value, bool):
        return _T_BOOL + (b"\x01" if value else b"\x00")
    if isinstance(value, int):
        return _T_INT + _varint(value)
    if isinstance(value, float):
        return _T_DOUBLE + _pack_double(value)
    if value is None:
        return b""
    if isinstance(value, bytes):
        return _ld(_T_BYTES, value)
    if isinstance(value, Sequence):
        return _ld(_T_ARRAY, b"".join([_ld(_T_ARRAY_VALUES, _any_value(v)) for v in value]))
    if isinstance(value, Mapping):
        return _ld(
            _T_KVLIST,
            b"".join([_ld(_T_ARRAY_VALUES, _key_value(str(k), v)) for k, v in value.items()]),
        )
    raise TypeError(f"invalid attribute value type {type(value).__name__}")


def _key_value(key: str, value: Any) -> bytes:
    if type(value) is str:  # the common case, inlined
        encoded = value.encode("utf-8")
        n = len(encoded)
        inner = _T_STRING + (_SMALL[n] if n < _VARINT_CACHE else _varint_slow(n)) + encoded
    else:
        inner = _any_value(value)
    n = len(inner)
    return _key(key) + _T_KV_VALUE + (_SMALL[n] if n < _VARINT_CACHE else _varint_slow(n)) + inner


def _attributes(tag: bytes, attributes: Mapping[str, Any] | None) -> list[bytes]:
    if not attributes:
        return []
    out = []
    for key, value in attributes.items():
        try:
            out.append(_ld(tag, _key_value(key, value)))
        except Exception:  # as the SDK does: one bad attribute is dropped, not the span
            logger.exception("failed to encode attribute %s", key)
    return out


def _flags(parent: Any) -> int:
    return (
        _HAS_IS_REMOTE | _IS_REMOTE if parent is not None and parent.is_remote else _HAS_IS_REMOTE
    )


def _span(span: ReadableSpan) -> bytes:
    ctx = span.get_span_context()
    if ctx is None:  # every SDK span has one; a hand-built ReadableSpan may not
        raise ValueError(f"span {span.name!r} has no span context")
    parts = [
        _T_TRACE_ID + b"\x10" + ctx.trace_id.to_bytes(16, "big"),
        _T_SPAN_ID + b"\x08" + ctx.span_id.to_bytes(8, "big"),
    ]
    state = ctx.trace_state
    if state:
        parts.append(_ld(_T_TRACE_STATE, ",".join(f"{k}={v}" for k, v in state.items()).encode()))
    parent = span.parent
    if parent is not None:
        parts.append(_T_PARENT + b"\x08" + parent.span_id.to_bytes(8, "big"))
    if span.name:
        parts.append(_ld(_T_NAME, span.name.encode("utf-8")))
    parts.append(_T_KIND + _varint(span.kind.value + 1))
    if span.start_time:
        parts.append(_T_START + _pack_fixed64(span.start_time))
    if span.end_time:
        parts.append(_T_END + _pack_fixed64(span.end_time))
    parts += _attributes(_T_ATTRS, span.attributes)
    if span.dropped_attributes:
        parts.append(_T_DROPPED_ATTRS + _varint(span.dropped_attributes))
    for ev in span.events:
        body = [_T_EV_TIME + _pack_fixed64(ev.timestamp)] if ev.timestamp else []
        if ev.name:
            body.append(_ld(_T_EV_NAME, ev.name.encode("utf-8")))
        body += _attributes(_T_EV_ATTRS, ev.attributes)
        if ev.dropped_attributes:
            body.append(_T_EV_DROPPED + _varint(ev.dropped_attributes))
        parts.append(_ld(_T_EVENTS, b"".join(body)))
    if span.dropped_events:
        parts.append(_T_DROPPED_EVENTS + _varint(span.dropped_events))
    for link in span.links:
        lc = link.context
        body = [
            _T_LINK_TRACE + b"\x10" + lc.trace_id.to_bytes(16, "big"),
            _T_LINK_SPAN + b"\x08" + lc.span_id.to_bytes(8, "big"),
        ]
        body += _attributes(_T_LINK_ATTRS, link.attributes)
        if link.dropped_attributes:
            body.append(_T_LINK_DROPPED + _varint(link.dropped_attributes))
        body.append(_T_LINK_FLAGS + _pack_fixed32(_flags(lc)))
        parts.append(_ld(_T_LINKS, b"".join(body)))
    if span.dropped_links:
        parts.append(_T_DROPPED_LINKS + _varint(span.dropped_links))
    status = span.status
    if status is not None:
        body = []
        if status.description:
            body.append(_ld(_T_STATUS_MESSAGE, status.description.encode("utf-8")))
        if status.status_code.value:
            body.append(_T_STATUS_CODE + _varint(status.status_code.value))
        parts.append(_ld(_T_STATUS, b"".join(body)))
    parts.append(_T_FLAGS + _pack_fixed32(_flags(parent)))
    return b"".join(parts)


_SCOPE_CACHE: dict[Any, tuple[bytes, bytes]] = {}
_RESOURCE_CACHE: dict[int, tuple[Any, bytes, bytes]] = {}


def _scope(scope: Any) -> tuple[bytes, bytes]:
    """``ScopeSpans.scope`` and ``ScopeSpans.schema_url`` fields (cached per scope)."""
    cached = _SCOPE_CACHE.get(scope)
    if cached is None:
        body = []
        if scope is not None:
            if scope.name:
                body.append(_ld(_T_SCOPE_NAME, scope.name.encode("utf-8")))
            if scope.version:
                body.append(_ld(_T_SCOPE_VERSION, scope.version.encode("utf-8")))
            body += _attributes(_T_SCOPE_ATTRS, scope.attributes)
        schema = (
            _ld(_T_SCHEMA_URL, scope.schema_url.encode("utf-8"))
            if scope is not None and scope.schema_url
            else b""
        )
        cached = (_ld(_T_SCOPE, b"".join(body)), schema)
        if len(_SCOPE_CACHE) < 1024:
            _SCOPE_CACHE[scope] = cached
    return cached


def _resource(resource: Any) -> tuple[bytes, bytes]:
    """``ResourceSpans.resource`` and ``ResourceSpans.schema_url`` fields (cached per resource)."""
    cached = _RESOURCE_CACHE.get(id(resource))
    if cached is None or cached[0] is not resource:
        body = _ld(_T_RESOURCE, b"".join(_attributes(_T_ATTR_RESOURCE, resource.attributes)))
        schema = (
            _ld(_T_SCHEMA_URL, resource.schema_url.encode("utf-8")) if resource.schema_url else b""
        )
        cached = (resource, body, schema)
        if len(_RESOURCE_CACHE) < 256:
            _RESOURCE_CACHE[id(resource)] = cached
    return cached[1], cached[2]


def encode_request(spans: Sequence[ReadableSpan]) -> bytes:
    """The serialized ``ExportTraceServiceRequest`` of ``spans`` (what the SDK's encoder would produce)."""
    grouped: dict[int, dict[Any, list[bytes]]] = {}
    resources: dict[int, Any] = {}
    for span in spans:
        resource = span.resource
        rkey = id(resource)
        resources.setdefault(rkey, resource)
        grouped.setdefault(rkey, {}).setdefault(span.instrumentation_scope, []).append(
            _ld(_T_SPANS, _span(span))
        )
    out = []
    for rkey, scopes in grouped.items():
        resource_body, resource_schema = _resource(resources[rkey])
        scope_spans = []
        for scope, encoded in scopes.items():
            scope_body, scope_schema = _scope(scope)
            scope_spans.append(_ld(_T_SCOPE_SPANS, scope_body + b"".join(encoded) + scope_schema))
        out.append(_ld(_T_RESOURCE_SPANS, resource_body + b"".join(scope_spans) + resource_schema))
    return b"".join(out)


class FastOTLPSpanExporter(OTLPSpanExporter):
    """The SDK's OTLP/HTTP span exporter with :func:`encode_request` as its encoder."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        client = getattr(self, "_client", None)
        if getattr(self, "_shutdown", False) or client is None or not hasattr(client, "export"):
            return super().export(spans)
        try:
            data = encode_request(spans)
        except Exception:
            logger.exception("fast OTLP encoding failed; using the SDK's encoder for this batch")
            return super().export(spans)
        result = client.export(data)
        return (
            SpanExportResult.SUCCESS
            if getattr(result, "success", False)
            else SpanExportResult.FAILURE
        )
