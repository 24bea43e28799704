"""Attribute value limits: truncate, and say so on the span."""

from __future__ import annotations

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from agentledger.schemas.attributes import AgentLedger as AL

__all__ = ["truncate_attributes"]


def truncate_attributes(request: ExportTraceServiceRequest, max_length: int, body_size: int) -> int:
    """Cut string values longer than ``max_length``; list the cut keys in
    ``agentledger.truncated_attributes`` on their span. Returns how many were cut.

    A body no larger than the limit cannot hold a value over it, so the scan is
    skipped for the common small request.
    """
    if body_size <= max_length:
        return 0
    cut = 0
    for rs in request.resource_spans:
        for ss in rs.scope_spans:
            for span in ss.spans:
                keys = []
                for kv in span.attributes:
                    v = kv.value
                    if v.WhichOneof("value") == "string_value" and len(v.string_value) > max_length:
                        v.string_value = v.string_value[:max_length]
                        keys.append(kv.key)
                    elif v.WhichOneof("value") == "bytes_value" and len(v.bytes_value) > max_length:
                        v.bytes_value = v.bytes_value[:max_length]
                        keys.append(kv.key)
                if keys:
                    marker = span.attributes.add()
                    marker.key = AL.TRUNCATED
                    for k in keys:
                        marker.value.array_value.values.add().string_value = k
                    cut += len(keys)
    return cut
