"""Kafka sink: OTLP records on the spans topic, acknowledged by the broker (acks=all) before the
collector answers.

One record per trace (a request is split by trace id), key = trace id, headers
for tenant, receive time and schema version, so that an OpenTelemetry
Collector's Kafka exporter (``otlp_proto``) and our collector write the same
topic, and any OTLP reader can consume it. The records go through a ``Transport``
(``pipeline/transport``): Kafka, or its in-memory double in tests.
"""

from __future__ import annotations

import time

from agentledger.pipeline.settings import KafkaSettings
from agentledger.pipeline.sinks.base import IngestBatch, Sink, SinkRejected, SinkUnavailable
from agentledger.pipeline.transport.base import (
    OutgoingRecord,
    RecordTooLarge,
    Transport,
    TransportError,
    resolve,
)
from agentledger.pipeline.transport.records import record_headers, split_by_trace
from agentledger.schemas.topics import Headers

__all__ = ["KafkaSink"]


class KafkaSink(Sink):
    """A producer on the spans topic (acks=all, idempotent, compressed).

    ``transport``: a Transport, or KafkaSettings to build a KafkaTransport from (transitional).
    ``create_topics`` creates the missing topics first. Raises TransportUnavailable.
    """

    def __init__(self, transport: Transport | KafkaSettings, *, create_topics: bool = True) -> None:
        self.transport = resolve(transport)
        self.settings = self.transport.settings
        if create_topics:
            with self.transport.admin() as admin:
                admin.ensure_topics()
        self._producer = self.transport.producer()
        self.records_sent = 0
        self._ready = False
        self._ready_checked = 0.0

    def write(self, batch: IngestBatch) -> None:
        try:
            parts = split_by_trace(batch.request, self.settings.max_record_bytes)
        except RecordTooLarge as exc:
            raise SinkRejected(str(exc), status=413) from exc
        headers = record_headers(batch.tenant, batch.received_at_ns, actor=batch.sent_by or None)
        if batch.agent:  # the pipeline drops this key's spans of other agents (sinks.agents)
            headers.append((Headers.AGENT, batch.agent.encode("utf-8", "replace")))
        topic = self.settings.spans_topic
        records = [
            OutgoingRecord(topic, key.hex().encode(), value, headers) for key, value in parts
        ]
        try:
            self._producer.send(records, timeout=self.settings.produce_timeout_s)
        except RecordTooLarge as exc:
            raise SinkRejected(f"record refused as too large: {exc}", status=413) from exc
        except TransportError as exc:
            raise SinkUnavailable(
                f"Kafka did not acknowledge the request: {exc}", retry_after=2
            ) from exc
        self.records_sent += len(records)

    def ready(self) -> bool:
        """The broker answers metadata for the spans topic (cached for a second: probes are frequent)."""
        now = time.monotonic()
        if now - self._ready_checked < 1.0:
            return self._ready
        self._ready = self._producer.ready(self.settings.spans_topic)
        self._ready_checked = now
        return self._ready

    def close(self) -> None:
        self._producer.close()
