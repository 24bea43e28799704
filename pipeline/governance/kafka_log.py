"""``KafkaLog``: governance records produced to the intents topic, acknowledged with acks=all.

The collector in Kafka mode answers an intent only once the broker has it; the
pipeline's ``IntentConsumer`` stores it. Records are JSON objects: the row (times
as Unix ns) plus ``type`` (intent, outcome, control), keyed by intent id (so an
intent, its re-asks and its outcome share a partition and stay in order), with
the usual tenant and receive-time headers.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson

from agentledger.pipeline.governance.base import (
    GovernanceRejected,
    GovernanceUnavailable,
    RecordLog,
)
from agentledger.pipeline.governance.records import RecordType
from agentledger.pipeline.settings import KafkaSettings
from agentledger.pipeline.transport.kafka import (
    KafkaRecordTooLarge,
    ensure_topics,
    producer_config,
    record_headers,
    translate,
)

__all__ = ["KafkaLog", "encode_record"]

log = logging.getLogger(__name__)


def encode_record(kind: RecordType, row: dict[str, Any]) -> bytes:
    """The JSON value of one record on the intents topic."""
    return orjson.dumps({"type": kind.value, **row})


class KafkaLog(RecordLog):
    """kafka-python producer (acks=all, idempotent, no linger: an ask waits for its own record)."""

    def __init__(self, kafka: KafkaSettings, *, create_topics: bool = True) -> None:
        from kafka import KafkaProducer

        if not kafka.bootstrap_servers:
            raise ValueError("KafkaLog needs AGENTLEDGER_KAFKA_BOOTSTRAP_SERVERS")
        self.kafka = kafka
        try:
            if create_topics:
                ensure_topics(kafka)
            self._producer: Any = KafkaProducer(**{**producer_config(kafka), "linger_ms": 0})
        except Exception as exc:
            raise GovernanceUnavailable(f"Kafka unavailable: {translate(exc)}") from exc

    def append(self, kind: RecordType, tenant: str, key: str, row: dict[str, Any]) -> None:
        value = encode_record(kind, row)
        try:
            future = self._producer.send(
                self.kafka.intents_topic,
                key=key.encode(),
                value=value,
                headers=record_headers(tenant, time.time_ns()),
            )
            future.get(timeout=self.kafka.produce_timeout_s)
        except Exception as exc:
            err = translate(exc)
            if isinstance(err, KafkaRecordTooLarge):
                raise GovernanceRejected(f"record refused as too large: {err}", status=413) from exc
            raise GovernanceUnavailable(
                f"Kafka did not acknowledge the record: {err}", retry_after=2
            ) from exc

    def close(self) -> None:
        try:
            self._producer.flush(timeout=10)
            self._producer.close(timeout=10)
        except Exception:  # closing after a broker loss must not raise
            log.warning("closing the intents producer failed", exc_info=True)
