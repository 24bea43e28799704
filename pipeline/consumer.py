"""The pipeline consumer: Kafka spans topic -> normalizer -> store, exactly-once results.

Loop: poll a batch (bounded by spans and time), decode, normalize, insert with a
deduplication token derived from the batch's topic/partition/offset ranges,
and only then commit offsets. Consequences:

* a crash between insert and commit re-reads the batch; the token (same batch)
  or the deduplicating tables (``FINAL``; any re-batching) keep results exact;
* a record that can never be stored (undecodable, or rows the store rejects)
  goes to the dead-letter topic with the error and its source position in
  headers, and the consumer goes on;
* store unavailable: partitions are paused, the insert is retried with
  back-off, nothing is committed, and consumption resumes by itself;
* SIGTERM (``stop()``): the current batch is finished and committed, then exit.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from agentledger.pipeline.failpoints import failpoint
from agentledger.pipeline.kafka_io import header_map, translate
from agentledger.pipeline.normalize import NormalizedBatch, Normalizer, SourcePosition
from agentledger.pipeline.settings import KafkaSettings, PipelineSettings
from agentledger.pipeline.stores import Store, StoreRejected, StoreUnavailable
from agentledger.pipeline.writer import StoreWriter
from agentledger.schemas.topics import Headers

__all__ = ["SpanConsumer", "ConsumerStats"]

log = logging.getLogger(__name__)


@dataclass
class ConsumerStats:
    """Counters the metrics endpoint exposes."""

    records: int = 0
    spans: int = 0
    batches: int = 0
    dead_letters: int = 0
    store_retries: int = 0
    commit_failures: int = 0
    last_batch_seconds: float = 0.0
    last_batch_spans: int = 0
    started_at: float = field(default_factory=time.time)
    lag: dict[str, int] = field(default_factory=dict)
    store_available: bool = True


@dataclass
class _Item:
    topic: str
    partition: int
    offset: int
    tenant: str
    received_at_ns: int
    request: ExportTraceServiceRequest
    spans: int


class SpanConsumer:
    """Consumes the spans topic into a store. ``run()`` blocks until ``stop()``."""

    def __init__(
        self,
        kafka: KafkaSettings,
        pipeline: PipelineSettings,
        store: Store,
        normalizer: Normalizer,
        *,
        default_tenant: str = "default",
        writer: StoreWriter | None = None,
    ) -> None:
        from kafka import KafkaConsumer, KafkaProducer

        from agentledger.pipeline.kafka_io import ensure_topics, producer_config

        if not kafka.bootstrap_servers:
            raise ValueError("the pipeline consumer needs AGENTLEDGER_KAFKA_BOOTSTRAP_SERVERS")
        self.kafka = kafka
        self.settings = pipeline
        self.store = store
        self.normalizer = normalizer
        self.writer = writer or StoreWriter(store)
        self.default_tenant = default_tenant
        self.stats = ConsumerStats()
        self._stop = threading.Event()
        try:
            ensure_topics(kafka)
            self._consumer: Any = KafkaConsumer(
                kafka.spans_topic,
                bootstrap_servers=kafka.bootstrap_servers,
                client_id=f"{kafka.client_id}-pipeline",
                group_id=kafka.group_id,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                max_poll_records=2000,
                max_partition_fetch_bytes=kafka.max_record_bytes + 64 * 1024,
                fetch_max_bytes=max(64 * 1024 * 1024, kafka.max_record_bytes * 2),
                max_poll_interval_ms=300_000,
                session_timeout_ms=10_000,
                heartbeat_interval_ms=3_000,
            )
            self._dlq: Any = KafkaProducer(**producer_config(kafka))
        except Exception as exc:
            raise translate(exc) from exc

    # -- control -------------------------------------------------------------------------------

    def stop(self) -> None:
        """Finish the current batch, commit, and return from ``run()``."""
        self._stop.set()

    def run(self) -> None:
        log.info("consuming %s as group %s", self.kafka.spans_topic, self.kafka.group_id)
        try:
            while not self._stop.is_set():
                items = self._poll_batch()
                if items:
                    self._process(items)
                self._update_lag()
        finally:
            self._close()

    def _close(self) -> None:
        for closer in (lambda: self._dlq.flush(timeout=10), lambda: self._dlq.close(timeout=10),
                       lambda: self._consumer.close(autocommit=False)):
            try:
                closer()
            except Exception:
                log.warning("closing a Kafka client failed", exc_info=True)

    # -- one batch -----------------------------------------------------------------------------

    def _poll_batch(self) -> list[_Item]:
        items: list[_Item] = []
        spans = 0
        deadline = time.monotonic() + self.settings.batch_max_seconds
        while spans < self.settings.batch_max_spans and not self._stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            polled = self._consumer.poll(timeout_ms=int(min(remaining, 0.5) * 1000), max_records=2000)
            for records in polled.values():
                for record in records:
                    item = self._decode(record)
                    if item is not None:
                        items.append(item)
                        spans += item.spans
            if not polled and items:
                break  # the topic is drained: do not wait out the deadline
        return items

    def _decode(self, record: Any) -> _Item | None:
        self.stats.records += 1
        headers = header_map(record.headers)
        try:
            request = ExportTraceServiceRequest.FromString(record.value or b"")
        except DecodeError as exc:
            self._dead_letter(record, f"undecodable OTLP protobuf: {exc}", "DecodeError")
            return None
        try:
            received = int(headers.get(Headers.RECEIVED_AT, "") or record.timestamp * 1_000_000)
        except ValueError:
            received = record.timestamp * 1_000_000
        spans = sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)
        return _Item(record.topic, record.partition, record.offset,
                     headers.get(Headers.TENANT) or self.default_tenant, received, request, spans)

    def _process(self, items: list[_Item]) -> None:
        from kafka.structs import OffsetAndMetadata, TopicPartition

        started = time.monotonic()
        stored = self._store(items)
        failpoint("after_insert_before_commit")
        offsets: dict[Any, Any] = {}
        for item in items:
            tp = TopicPartition(item.topic, item.partition)
            if tp not in offsets or offsets[tp].offset <= item.offset:
                offsets[tp] = OffsetAndMetadata(item.offset + 1, "", -1)
        try:
            self._dlq.flush(timeout=30)  # dead letters are durable before their offsets are committed
            self._consumer.commit(offsets)
        except Exception as exc:  # rebalanced away: the next owner re-reads; results stay exact
            self.stats.commit_failures += 1
            log.warning("offset commit failed (%s); records will be re-read and deduplicated", exc)
        self.stats.batches += 1
        self.stats.spans += stored
        self.stats.last_batch_spans = stored
        self.stats.last_batch_seconds = time.monotonic() - started

    @staticmethod
    def token(items: list[_Item]) -> str:
        """``topic:partition:first-last`` for every partition in the batch, sorted."""
        ranges: dict[tuple[str, int], list[int]] = {}
        for item in items:
            r = ranges.setdefault((item.topic, item.partition), [item.offset, item.offset])
            r[0], r[1] = min(r[0], item.offset), max(r[1], item.offset)
        return ",".join(f"{t}:{p}:{lo}-{hi}" for (t, p), (lo, hi) in sorted(ranges.items()))

    def _normalize(self, items: list[_Item]) -> NormalizedBatch:
        return self.normalizer.normalize([
            (i.request, SourcePosition(i.tenant, i.received_at_ns, i.topic, i.partition, i.offset)) for i in items
        ])

    def _store(self, items: list[_Item]) -> int:
        """Store the batch; isolate and dead-letter records that can never be stored."""
        try:
            batch = self._normalize(items)
            self._insert_with_retry(batch, self.token(items))
            return batch.span_count
        except (StoreRejected, ValueError) as exc:
            log.warning("batch of %d records rejected (%s); storing record by record", len(items), exc)
        stored = 0
        for item in items:
            try:
                batch = self._normalize([item])
                self._insert_with_retry(batch, self.token([item]))
                stored += batch.span_count
            except (StoreRejected, ValueError) as exc:
                self._dead_letter_item(item, str(exc), type(exc).__name__)
        return stored

    def _insert_with_retry(self, batch: NormalizedBatch, token: str) -> None:
        delay = 0.2
        paused = False
        while True:
            try:
                self.writer.write(batch, token)
                self.stats.store_available = True
                if paused:
                    self._consumer.resume(*self._consumer.assignment())
                    log.info("store available again; resumed consumption")
                return
            except StoreUnavailable as exc:
                self.stats.store_available = False
                self.stats.store_retries += 1
                if not paused:
                    self._consumer.pause(*self._consumer.assignment())
                    paused = True
                log.warning("store unavailable (%s); retrying in %.1fs, nothing committed", exc, delay)
                end = time.monotonic() + delay
                while time.monotonic() < end:
                    # keep the group membership alive while paused (returns nothing for paused partitions)
                    self._consumer.poll(timeout_ms=int(min(0.5, max(0.0, end - time.monotonic())) * 1000))
                delay = min(delay * 2, self.settings.retry_max_seconds)

    # -- dead letters ----------------------------------------------------------------------------

    def _dead_letter(self, record: Any, error: str, error_class: str) -> None:
        headers = list(record.headers or []) + [
            (Headers.ERROR, error[:2000].encode()),
            (Headers.ERROR_CLASS, error_class.encode()),
            (Headers.SOURCE, f"{record.topic}/{record.partition}/{record.offset}".encode()),
        ]
        self._dlq.send(self.kafka.dead_letter_topic, key=record.key, value=record.value or b"", headers=headers)
        self.stats.dead_letters += 1
        log.warning("dead-lettered %s/%s/%s: %s", record.topic, record.partition, record.offset, error)

    def _dead_letter_item(self, item: _Item, error: str, error_class: str) -> None:
        from agentledger.pipeline.kafka_io import record_headers

        headers = record_headers(item.tenant, item.received_at_ns) + [
            (Headers.ERROR, error[:2000].encode()),
            (Headers.ERROR_CLASS, error_class.encode()),
            (Headers.SOURCE, f"{item.topic}/{item.partition}/{item.offset}".encode()),
        ]
        self._dlq.send(self.kafka.dead_letter_topic, value=item.request.SerializeToString(), headers=headers)
        self.stats.dead_letters += 1
        log.warning("dead-lettered %s/%s/%s: %s", item.topic, item.partition, item.offset, error)

    # -- lag -------------------------------------------------------------------------------------

    def _update_lag(self) -> None:
        try:
            for tp in self._consumer.assignment():
                high = self._consumer.highwater(tp)
                if high is not None:
                    self.stats.lag[f"{tp.topic}/{tp.partition}"] = max(0, high - self._consumer.position(tp))
        except Exception:  # lag is informational
            log.debug("lag update failed", exc_info=True)
