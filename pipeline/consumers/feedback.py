"""Feedback over Kafka: the collector produces to the feedback topic, the pipeline consumes it.

Record layout, like the spans topic's: value = the :class:`FeedbackRecord` as
JSON, key = its trace id (else span id), headers = tenant, receive time, schema
version and actor (``agentledger-tenant`` is authoritative, as the collector
stamped it from the API key).

The consumer appends a batch to the record log (recorded at the collector's
receive time, by the actor it names), then commits its offsets: a crash in
between re-reads the batch, which makes the same records again; the insert token
derived from the offsets drops the repeat, and readers count a repeated record
once. A record that is not a feedback goes to the dead-letter topic with the
error in its headers.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import orjson
from pydantic import ValidationError

from agentledger.pipeline.consumers.side_topic import SideTopicConsumer
from agentledger.pipeline.services.datasets.feedback import (
    FeedbackRecord,
    feedback_record,
    resolve_trace_ids,
)
from agentledger.pipeline.settings import KafkaSettings
from agentledger.pipeline.store import Store, StoreRejected
from agentledger.pipeline.store.records import append_records
from agentledger.pipeline.transport.base import (
    IncomingRecord,
    OutgoingRecord,
    Transport,
    TransportError,
    TransportUnavailable,
    resolve,
)
from agentledger.pipeline.transport.batch import BatchStats
from agentledger.pipeline.transport.records import header_map, record_headers
from agentledger.schemas.records import Actor
from agentledger.schemas.topics import Headers

__all__ = ["FeedbackConsumer", "FeedbackConsumerStats", "FeedbackProducer"]

log = logging.getLogger(__name__)


class FeedbackProducer:
    """Sends feedback records with acks=all; ``send`` returns once the broker has them all.

    ``transport``: a Transport, or KafkaSettings to build a KafkaTransport from (transitional).
    """

    def __init__(self, transport: Transport | KafkaSettings) -> None:
        self.transport = resolve(transport)
        self.settings = self.transport.settings
        self._producer = self.transport.producer()

    def send(
        self,
        records: list[FeedbackRecord],
        received_at_ns: int | None = None,
        *,
        actor: str | None = None,
    ) -> None:
        """Raises TransportUnavailable when the broker did not acknowledge every record in time.
        ``actor``: who sent the feedback, carried in a header."""
        received = received_at_ns or time.time_ns()
        try:
            self._producer.send(
                [
                    OutgoingRecord(
                        self.settings.feedback_topic,
                        (r.trace_id or r.span_id).encode(),
                        r.to_json(),
                        record_headers(r.tenant, received, actor),
                    )
                    for r in records
                ],
                timeout=self.settings.produce_timeout_s,
            )
        except TransportUnavailable:
            raise
        except TransportError as exc:  # a refusal too: callers know this one error
            raise TransportUnavailable(f"Kafka did not acknowledge the feedback: {exc}") from exc

    def close(self) -> None:
        self._producer.close()


@dataclass
class FeedbackConsumerStats(BatchStats):
    """Counters of the feedback consumer."""

    stored: int = 0


@dataclass
class _Item:
    feedback: FeedbackRecord
    received_at_ns: int
    actor: str


class FeedbackConsumer(SideTopicConsumer[_Item]):
    """Consumes the feedback topic into the store. ``run()`` blocks until ``stop()``.

    Group ``<group_id>-feedback``, so it keeps its own offsets beside the span consumer's.
    ``transport``: a Transport, or KafkaSettings to build a KafkaTransport from (transitional).
    """

    topic_setting = "feedback_topic"
    group_suffix = client_suffix = "-feedback"

    def __init__(
        self,
        transport: Transport | KafkaSettings,
        store: Store,
        *,
        default_tenant: str = "default",
        batch_max: int = 5_000,
        batch_seconds: float = 0.5,
        retry_max_seconds: float = 30.0,
    ) -> None:
        super().__init__(
            transport,
            store,
            stats=FeedbackConsumerStats(),
            default_tenant=default_tenant,
            batch_max=batch_max,
            batch_seconds=batch_seconds,
            retry_max_seconds=retry_max_seconds,
            max_poll_records=batch_max,
        )
        self.stats: FeedbackConsumerStats

    def decode(self, record: IncomingRecord) -> _Item | None:
        headers = header_map(record.headers)
        try:
            data = orjson.loads(record.value or b"")
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")  # noqa: TRY004 - a bad record, as its JSON errors are
            data["tenant"] = (
                headers.get(Headers.TENANT) or data.get("tenant") or self.default_tenant
            )
            feedback = FeedbackRecord.model_validate(data)
            received = headers.get(Headers.RECEIVED_AT, "")
            return _Item(
                feedback,
                int(received) if received.isdigit() else record.timestamp_ms * 1_000_000,
                headers.get(Headers.ACTOR) or Actor.API,
            )
        except (ValueError, ValidationError) as exc:
            self.dead_letter(record, f"not a feedback record: {exc}", type(exc).__name__)
            return None

    def handle(self, items: list[_Item], token: str) -> None:
        records = [i.feedback for i in items]

        def attempt() -> None:
            resolve_trace_ids(self.store, records)
            append_records(
                self.store,
                [
                    feedback_record(i.feedback, actor=i.actor, recorded_at_ns=i.received_at_ns)
                    for i in items
                ],
                dedup_token=f"feedback-{token}",
            )

        try:
            self.retry_unavailable(attempt)
        except StoreRejected as exc:
            log.error("store rejected %d feedback records: %s", len(records), exc)
            for r in records:
                self.dead_letter_value(
                    r.to_json(),
                    record_headers(r.tenant, time.time_ns()),
                    str(exc),
                    type(exc).__name__,
                    f"feedback/{r.feedback_id}",
                )
            return
        self.stats.stored += len(records)
