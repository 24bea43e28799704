"""``KafkaLog``: governance records produced to the intents topic, acknowledged with acks=all.

The collector in Kafka mode answers an intent only once the broker has it; the
pipeline's ``IntentConsumer`` stores it. A topic record's value is the record of
the record log as ``Record.to_json`` writes it (kind, tenant, record id, recorded at,
actor, canonical body and its hash), so the pipeline stores exactly the record the
collector made; keyed by intent id (so an intent, its re-asks and its outcome share a
partition and stay in order), with the usual tenant and receive-time headers. The records go through a ``Transport``
(``pipeline/transport``): Kafka, or its in-memory double in tests.
"""

from __future__ import annotations

import time

import orjson

from agentledger.pipeline.governance.base import (
    GovernanceRejected,
    GovernanceUnavailable,
    RecordLog,
)
from agentledger.pipeline.settings import KafkaSettings
from agentledger.pipeline.transport.base import (
    OutgoingRecord,
    RecordTooLarge,
    Transport,
    TransportError,
    resolve,
)
from agentledger.pipeline.transport.records import record_headers
from agentledger.schemas.records import Record

__all__ = ["KafkaLog", "encode_record"]


def encode_record(record: Record) -> bytes:
    """The JSON value of one record on the intents topic."""
    return orjson.dumps(record.to_json())


class KafkaLog(RecordLog):
    """A producer on the intents topic (acks=all, idempotent, no linger: an ask waits for its
    own record).

    ``transport``: a Transport, or KafkaSettings to build a KafkaTransport from (transitional).
    ``create_topics`` creates the missing topics first. Raises GovernanceUnavailable.
    """

    def __init__(self, transport: Transport | KafkaSettings, *, create_topics: bool = True) -> None:
        self.transport = resolve(transport)
        self.kafka = self.transport.settings
        try:
            if create_topics:
                with self.transport.admin() as admin:
                    admin.ensure_topics()
            self._producer = self.transport.producer(linger_ms=0)
        except TransportError as exc:
            raise GovernanceUnavailable(f"Kafka unavailable: {exc}") from exc

    def append(self, record: Record, key: str) -> None:
        outgoing = OutgoingRecord(
            self.kafka.intents_topic,
            key.encode(),
            encode_record(record),
            record_headers(record.tenant, time.time_ns()),
        )
        try:
            self._producer.send([outgoing], timeout=self.kafka.produce_timeout_s)
        except RecordTooLarge as exc:
            raise GovernanceRejected(f"record refused as too large: {exc}", status=413) from exc
        except TransportError as exc:
            raise GovernanceUnavailable(
                f"Kafka did not acknowledge the record: {exc}", retry_after=2
            ) from exc

    def close(self) -> None:
        self._producer.close()
