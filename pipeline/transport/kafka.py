"""Kafka plumbing shared by the collector's sink and the pipeline's consumer.

This module is the boundary for kafka-python: its exceptions are translated
here into AgentLedger's own::

    KafkaUnavailable    broker unreachable, metadata or acknowledgement timed out (retryable)
    KafkaRecordTooLarge a record over the broker's or producer's size limit (permanent)

It also holds the record layout (split by trace, headers) and topic creation.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from agentledger.pipeline.settings import KafkaSettings
from agentledger.schemas.topics import SCHEMA_VERSION, Headers

__all__ = [
    "KafkaUnavailable",
    "KafkaRecordTooLarge",
    "split_by_trace",
    "record_headers",
    "header_map",
    "ensure_topics",
    "producer_config",
    "translate",
]

log = logging.getLogger(__name__)


class KafkaUnavailable(Exception):
    """The broker cannot take or give data now; retry later."""


class KafkaRecordTooLarge(Exception):
    """A record exceeds the size the producer or broker accepts."""


def translate(exc: BaseException) -> Exception:
    """kafka-python's exception as ours."""
    from kafka import errors as ke

    if isinstance(exc, (ke.MessageSizeTooLargeError, ke.RecordListTooLargeError)):
        return KafkaRecordTooLarge(str(exc) or type(exc).__name__)
    return KafkaUnavailable(f"{type(exc).__name__}: {exc}")


def split_by_trace(request: ExportTraceServiceRequest, max_bytes: int) -> list[tuple[bytes, bytes]]:
    """(trace id, serialized request) per trace, resource and scope kept; a trace larger than
    ``max_bytes`` is cut into several records with the same key (same partition, in order).

    Raises KafkaRecordTooLarge when a single span exceeds ``max_bytes``.
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
        raise KafkaRecordTooLarge(
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


def record_headers(tenant: str, received_at_ns: int) -> list[tuple[str, bytes]]:
    return [
        (Headers.TENANT, tenant.encode()),
        (Headers.RECEIVED_AT, str(received_at_ns).encode()),
        (Headers.SCHEMA, SCHEMA_VERSION.encode()),
    ]


def header_map(headers: Any) -> dict[str, str]:
    """Record headers as text (undecodable values dropped)."""
    out: dict[str, str] = {}
    for key, value in headers or ():
        try:
            out[key] = (
                value.decode("utf-8") if isinstance(value, (bytes, bytearray)) else str(value)
            )
        except UnicodeDecodeError:
            continue
    return out


def producer_config(settings: KafkaSettings) -> dict[str, Any]:
    delivery_ms = int(settings.produce_timeout_s * 1000)
    return {
        "bootstrap_servers": settings.bootstrap_servers,
        "client_id": settings.client_id,
        "acks": "all",
        "enable_idempotence": True,
        "compression_type": None if settings.compression == "none" else settings.compression,
        "max_request_size": settings.max_record_bytes + 64 * 1024,
        "linger_ms": 2,
        "batch_size": 1024 * 1024,
        "max_block_ms": 5_000,
        "request_timeout_ms": max(500, min(10_000, delivery_ms - 100)),
        "delivery_timeout_ms": delivery_ms,
        "retry_backoff_ms": 100,
        "reconnect_backoff_max_ms": 2_000,
    }


def ensure_topics(settings: KafkaSettings) -> list[str]:
    """Create the spans, dead-letter, feedback and intents topics that do not exist yet."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic
    from kafka.errors import KafkaError, TopicAlreadyExistsError

    configs = {
        "retention.ms": str(settings.retention_ms),
        "max.message.bytes": str(settings.max_record_bytes + 64 * 1024),
    }
    wanted = [
        settings.spans_topic,
        settings.dead_letter_topic,
        settings.feedback_topic,
        settings.intents_topic,
    ]
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=settings.bootstrap_servers,
            client_id=settings.client_id,
            request_timeout_ms=10_000,
        )
    except Exception as exc:
        raise translate(exc) from exc
    created = []
    try:
        existing = set(admin.list_topics())
        missing = [t for t in wanted if t not in existing]
        if missing:
            try:
                admin.create_topics(
                    [
                        NewTopic(
                            t,
                            settings.partitions,
                            settings.replication_factor,
                            topic_configs=configs,
                        )
                        for t in missing
                    ]
                )
                created = missing
            except TopicAlreadyExistsError:  # another replica created them first
                pass
    except KafkaError as exc:
        raise translate(exc) from exc
    finally:
        admin.close()
    if created:
        log.info("created Kafka topics %s", created)
    return created
