"""Kafka sink: OTLP records on the spans topic, acknowledged by the broker (acks=all) before the
collector answers.

One record per trace (a request is split by trace id), key = trace id, headers
for tenant, receive time and schema version, so that an OpenTelemetry
Collector's Kafka exporter (``otlp_proto``) and our collector write the same
topic, and any OTLP reader can consume it.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from agentledger.pipeline.settings import KafkaSettings
from agentledger.pipeline.sinks.base import IngestBatch, Sink, SinkRejected, SinkUnavailable
from agentledger.pipeline.transport.kafka import (
    KafkaRecordTooLarge,
    KafkaUnavailable,
    ensure_topics,
    producer_config,
    record_headers,
    split_by_trace,
    translate,
)

__all__ = ["KafkaSink"]

log = logging.getLogger(__name__)


class KafkaSink(Sink):
    """kafka-python producer with acks=all, idempotence and compression."""

    def __init__(self, settings: KafkaSettings, *, create_topics: bool = True) -> None:
        from kafka import KafkaProducer

        if not settings.bootstrap_servers:
            raise ValueError("KafkaSink needs AGENTLEDGER_KAFKA_BOOTSTRAP_SERVERS")
        self.settings = settings
        try:
            if create_topics:
                ensure_topics(settings)
            self._producer: Any = KafkaProducer(**producer_config(settings))
        except KafkaUnavailable:
            raise
        except Exception as exc:
            raise translate(exc) from exc
        self.records_sent = 0
        self._ready = False
        self._ready_checked = 0.0

    def write(self, batch: IngestBatch) -> None:
        try:
            records = split_by_trace(batch.request, self.settings.max_record_bytes)
        except KafkaRecordTooLarge as exc:
            raise SinkRejected(str(exc), status=413) from exc
        headers = record_headers(batch.tenant, batch.received_at_ns)
        deadline = time.monotonic() + self.settings.produce_timeout_s
        futures = []
        try:
            for key, value in records:
                futures.append(
                    self._producer.send(
                        self.settings.spans_topic,
                        key=key.hex().encode(),
                        value=value,
                        headers=headers,
                    )
                )
            self._producer.flush(timeout=max(0.1, deadline - time.monotonic()))
            for future in futures:
                future.get(timeout=max(0.1, deadline - time.monotonic()))
        except Exception as exc:
            err = translate(exc)
            if isinstance(err, KafkaRecordTooLarge):
                raise SinkRejected(f"record refused as too large: {err}", status=413) from exc
            raise SinkUnavailable(
                f"Kafka did not acknowledge the request: {err}", retry_after=2
            ) from exc
        self.records_sent += len(records)

    def ready(self) -> bool:
        """The broker answers metadata for the spans topic (cached for a second: probes are frequent)."""
        now = time.monotonic()
        if now - self._ready_checked < 1.0:
            return self._ready
        try:
            self._ready = bool(self._producer.partitions_for(self.settings.spans_topic))
        except Exception:
            self._ready = False
        self._ready_checked = now
        return self._ready

    def close(self) -> None:
        try:
            self._producer.flush(timeout=10)
            self._producer.close(timeout=10)
        except Exception:  # closing after a broker loss must not raise
            log.warning("closing the Kafka producer failed", exc_info=True)
