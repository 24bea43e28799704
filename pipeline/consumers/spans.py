"""The pipeline consumer: Kafka spans topic -> normalizer -> store, exactly-once results.

The loop is :class:`~agentledger.pipeline.transport.batch.BatchConsumer`'s: poll a batch
(bounded by spans and time), decode, normalize, insert with a deduplication token
derived from the batch's topic/partition/offset ranges, and only then commit
offsets. Consequences:

* a crash between insert and commit re-reads the batch; the token (same batch)
  or the deduplicating tables (``FINAL``; any re-batching) keep results exact;
* a record that can never be stored (undecodable, or rows the store rejects)
  goes to the dead-letter topic with the error and its source position in
  headers, and the consumer goes on;
* store unavailable: partitions are paused, the insert is retried with
  back-off, nothing is committed, and consumption resumes by itself;
* SIGTERM (``stop()``): the current batch is finished and committed, then exit;
* a span re-sent with the ids of a stored span: unchanged, it is dropped; changed, it is kept
  in ``span_conflicts`` and the stored version stands (``StoreWriter``). The collector
  acknowledged it before this consumer saw it, so the conflict is counted in ``stats``
  (``conflicts``), not answered. Records are keyed by trace id, so one partition, and one
  consumer, holds all of a trace: no two consumers race on the same span ids.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial

import pyarrow as pa
from google.protobuf.message import DecodeError

from agentledger.pipeline.normalize import NormalizedBatch, Normalizer, SourcePosition
from agentledger.pipeline.normalize.native import count_spans
from agentledger.pipeline.settings import KafkaSettings, PipelineSettings
from agentledger.pipeline.sinks.agents import drop_foreign_agents
from agentledger.pipeline.store import Store, StoreRejected
from agentledger.pipeline.store.writer import StoreWriter, WriteResult
from agentledger.pipeline.transport.base import IncomingRecord, Transport, resolve
from agentledger.pipeline.transport.batch import BatchConsumer, BatchStats, position_token
from agentledger.pipeline.transport.records import header_map, record_headers
from agentledger.schemas.topics import Headers

__all__ = ["SpanConsumer", "ConsumerStats"]

log = logging.getLogger(__name__)


@dataclass
class ConsumerStats(BatchStats):
    """Counters the metrics endpoint exposes."""

    spans: int = 0
    last_batch_spans: int = 0
    unchanged: int = 0
    """Spans re-sent unchanged: dropped, stored once."""
    conflicts: int = 0
    """Spans re-sent with a stored span's ids but other content: kept as conflicts."""
    foreign_agent: int = 0
    """Spans dropped: sent by a key bound to another agent (``sinks.agents``)."""


@dataclass
class _Item:
    topic: str
    partition: int
    offset: int
    tenant: str
    received_at_ns: int
    spans: int
    raw: bytes  # the serialized request, as the record holds it
    sent_by: str = ""  # the API key that sent it (the record's actor header)
    agent: str = ""  # the one agent that key may send for (sinks.agents)


class SpanConsumer(BatchConsumer[_Item]):
    """Consumes the spans topic into a store. ``run()`` blocks until ``stop()``.

    ``transport``: a Transport, or KafkaSettings to build a KafkaTransport from (transitional).
    """

    def __init__(
        self,
        transport: Transport | KafkaSettings,
        pipeline: PipelineSettings,
        store: Store,
        normalizer: Normalizer,
        *,
        default_tenant: str = "default",
        writer: StoreWriter | None = None,
    ) -> None:
        self.settings = pipeline
        self.store = store
        self.normalizer = normalizer
        self.writer = writer or StoreWriter(store)
        self.default_tenant = default_tenant
        transport = resolve(transport)
        kafka = transport.settings
        super().__init__(
            transport,
            topic=kafka.spans_topic,
            group_id=kafka.group_id,
            client_id=f"{kafka.client_id}-pipeline",
            stats=ConsumerStats(),
            batch_max=pipeline.batch_max_spans,
            batch_seconds=pipeline.batch_max_seconds,
            retry_max_seconds=pipeline.retry_max_seconds,
            max_poll_records=2000,
        )
        self.stats: ConsumerStats

    def decode(self, record: IncomingRecord) -> _Item | None:
        headers = header_map(record.headers)
        value = record.value or b""
        try:
            spans = count_spans(value)
        except DecodeError as exc:
            self.dead_letter(record, f"undecodable OTLP protobuf: {exc}", "DecodeError")
            return None
        try:
            received = int(headers.get(Headers.RECEIVED_AT, "") or record.timestamp_ms * 1_000_000)
        except ValueError:
            received = record.timestamp_ms * 1_000_000
        return _Item(
            record.topic,
            record.partition,
            record.offset,
            headers.get(Headers.TENANT) or self.default_tenant,
            received,
            spans,
            value,
            headers.get(Headers.ACTOR, ""),
            headers.get(Headers.AGENT, ""),
        )

    def weight(self, item: _Item) -> int:
        return item.spans

    def handle(self, items: list[_Item], token: str) -> None:
        """Store the batch; isolate and dead-letter records that can never be stored."""
        stored = 0
        try:
            batch = self._normalize(items)
            stored = self._count(self.retry_unavailable(lambda: self.writer.write(batch, token)))
        except (StoreRejected, ValueError) as exc:
            log.warning(
                "batch of %d records rejected (%s); storing record by record", len(items), exc
            )
            for item in items:
                try:
                    one = self._normalize([item])
                    one_token = position_token([(item.topic, item.partition, item.offset)])
                    stored += self._count(
                        self.retry_unavailable(partial(self.writer.write, one, one_token))
                    )
                except (StoreRejected, ValueError) as exc2:
                    self.dead_letter_value(
                        item.raw,
                        record_headers(item.tenant, item.received_at_ns),
                        str(exc2),
                        type(exc2).__name__,
                        f"{item.topic}/{item.partition}/{item.offset}",
                    )
        self.stats.spans += stored
        self.stats.last_batch_spans = stored

    def _count(self, result: WriteResult) -> int:
        """Spans a write stored, its re-sends counted in ``stats``."""
        self.stats.unchanged += result.unchanged
        self.stats.conflicts += len(result.conflict_ids)
        if result.conflict_ids:
            log.warning(
                "%d span(s) re-sent with the ids of stored spans but other content, kept as "
                "conflicts: %s",
                len(result.conflict_ids),
                ", ".join(result.conflict_ids[:5]),
            )
        return result.inserted

    def _normalize(self, items: list[_Item]) -> NormalizedBatch:
        batch = self.normalizer.normalize(
            [
                (i.raw, SourcePosition(i.tenant, i.received_at_ns, i.topic, i.partition, i.offset))
                for i in items
            ]
        )
        by_position = {(i.topic, i.partition, i.offset): i.sent_by for i in items}
        rows = zip(
            batch.spans.column("source_topic").to_pylist(),
            batch.spans.column("source_partition").to_pylist(),
            batch.spans.column("source_offset").to_pylist(),
        )
        batch = batch.stamped(pa.array([by_position.get(r, "") for r in rows], pa.string()))
        bound = {(i.topic, i.partition, i.offset): i.agent for i in items}
        kept, refused = drop_foreign_agents(batch.spans, bound)
        if refused:
            dropped = sum(len(a) for a in refused.values())
            self.stats.foreign_agent += dropped
            log.warning(
                "%d span(s) dropped: sent by keys bound to another agent (%s)",
                dropped,
                ", ".join(
                    f"{bound[p]} sent {sorted(set(a))}" for p, a in list(refused.items())[:5]
                ),
            )
            batch = NormalizedBatch(kept, batch.contents)
        return batch
