"""The record layout of AgentLedger's topics: OTLP requests split by trace, and the headers.

The spans topic holds one record per trace (a request is split by trace id; key = the trace
id in hex), the value an OTLP ``ExportTraceServiceRequest`` as the OpenTelemetry Collector's
Kafka exporter writes it (``otlp_proto``), and headers for tenant, receive time and schema
version. The feedback and intents topics use the same headers.
"""

from __future__ import annotations

from collections import defaultdict

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from agentledger.pipeline.transport.base import HeaderList, RecordTooLarge
from agentledger.schemas.topics import SCHEMA_VERSION, Headers

__all__ = ["split_by_trace", "record_headers", "header_map"]


def split_by_trace(request: ExportTraceServiceRequest, max_bytes: int) -> list[tuple[bytes, bytes]]:
    """(trace id, serialized request) per trace, resource and scope kept; a trace larger than
    ``max_bytes`` is cut into several records with the same key (same partition, in order).

    Raises RecordTooLarge when a single span exceeds ``max_bytes``.
    """
    # trace id -> [(resource_spans index, scope_spans index, [span indices])]
    layout: dict[bytes, dict[tuple[int, int], list[int]]] = defaultdict(lambda: defaultdict(list))
    for ri, rs in enumerate(request.resource_spans):
        for si, ss in enumerate(rs.scope_spans):
            for pi, span in enumerate(ss.spans):
                layout[span.trace_id][(ri, si)].append(pi)
    if len(layout) == 1:
        (trace_id,) = layout
        data = request.SerializeToString()
        if len(data) <= max_bytes:
            return [(trace_id, data)]
    records: list[tuple[bytes, bytes]] = []
    for trace_id, groups in layout.items():
        records.extend(_build(request, trace_id, groups, max_bytes))
    return records


def _build(
    request: ExportTraceServiceRequest,
    trace_id: bytes,
    groups: dict[tuple[int, int], list[int]],
    max_bytes: int,
) -> list[tuple[bytes, bytes]]:
    out = ExportTraceServiceRequest()
    for (ri, si), span_idx in groups.items():
        src_rs = request.resource_spans[ri]
        src_ss = src_rs.scope_spans[si]
        rs = out.resource_spans.add()
        rs.resource.CopyFrom(src_rs.resource)
        rs.schema_url = src_rs.schema_url
        ss = rs.scope_spans.add()
        ss.scope.CopyFrom(src_ss.scope)
        ss.schema_url = src_ss.schema_url
        for pi in span_idx:
            ss.spans.add().CopyFrom(src_ss.spans[pi])
    data = out.SerializeToString()
    if len(data) <= max_bytes:
        return [(trace_id, data)]
    spans = [(key, pi) for key, idx in groups.items() for pi in idx]
    if len(spans) == 1:
        raise RecordTooLarge(
            f"one span of trace {trace_id.hex()} is {len(data)} bytes, over the record limit of {max_bytes}"
        )
    half = len(spans) // 2
    parts: list[tuple[bytes, bytes]] = []
    for chunk in (spans[:half], spans[half:]):
        sub: dict[tuple[int, int], list[int]] = defaultdict(list)
        for key, pi in chunk:
            sub[key].append(pi)
        parts.extend(_build(request, trace_id, sub, max_bytes))
    return parts


def record_headers(
    tenant: str, received_at_ns: int, actor: str | None = None
) -> list[tuple[str, bytes]]:
    """Tenant, receive time and schema version, as every AgentLedger producer writes them, and
    the actor (who sent it) when given."""
    headers = [
        (Headers.TENANT, tenant.encode()),
        (Headers.RECEIVED_AT, str(received_at_ns).encode()),
        (Headers.SCHEMA, SCHEMA_VERSION.encode()),
    ]
    if actor:
        headers.append((Headers.ACTOR, actor.encode("utf-8", "replace")))
    return headers


def header_map(headers: HeaderList | None) -> dict[str, str]:
    """Record headers as text (undecodable values dropped; the last of a repeated name wins)."""
    out: dict[str, str] = {}
    for key, value in headers or ():
        try:
            out[key] = (
                value.decode("utf-8") if isinstance(value, (bytes, bytearray)) else str(value)
            )
        except UnicodeDecodeError:
            continue
    return out
