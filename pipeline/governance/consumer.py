"""``IntentConsumer``: the intents topic into the governance tables (Kafka mode).

The collector produced each intent, outcome and control as a JSON record and
acknowledged it once the broker had it; this consumer stores them. As the span
consumer does: poll a batch, insert it with a deduplication token built from its
topic/partition/offset ranges, then commit offsets; store unavailable -> retry
with back-off, nothing committed; a record that can never be stored -> the
dead-letter topic with the error in headers. Rows the tables receive twice
(a crash between insert and commit) collapse on their sorting key (``FINAL``).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from agentledger.pipeline.governance.records import RecordType, to_arrow
from agentledger.pipeline.governance.store_log import TABLES
from agentledger.pipeline.kafka_io import header_map, translate
from agentledger.pipeline.settings import KafkaSettings, PipelineSettings
from agentledger.pipeline.stores import Store, StoreRejected, StoreUnavailable
from agentledger.schemas.topics import Headers

__all__ = ["IntentConsumer", "IntentConsumerStats"]

log = logging.getLogger(__name__)


@dataclass
class IntentConsumerStats:
    records: int = 0
    stored: dict[str, int] = field(default_factory=dict)
    batches: int = 0
    dead_letters: int = 0
    store_retries: int = 0
    commit_failures: int = 0


@dataclass
class _Item:
    record: Any
    table: str
    row: dict[str, Any]


class IntentConsumer:
    """Consumes ``kafka.intents_topic`` into a store. ``run()`` blocks until ``stop()``.

    Its consumer group is ``<group_id>.governance``, so it runs beside the span
    consumer (same process or not) without sharing offsets.
    """

    def __init__(
        self, kafka: KafkaSettings, pipeline: PipelineSettings, store: Store, *, default_tenant: str = "default"
    ) -> None:
        from kafka import KafkaConsumer, KafkaProducer

        from agentledger.pipeline.kafka_io import ensure_topics, producer_config

        if not kafka.bootstrap_servers:
            raise ValueError("the intent consumer needs AGENTLEDGER_KAFKA_BOOTSTRAP_SERVERS")
        self.kafka = kafka
        self.settings = pipeline
        self.store = store
        self.default_tenant = default_tenant
        self.stats = IntentConsumerStats()
        self._stop = threading.Event()
        try:
            ensure_topics(kafka)
            self._consumer: Any = KafkaConsumer(
                kafka.intents_topic,
                bootstrap_servers=kafka.bootstrap_servers,
                client_id=f"{kafka.client_id}-governance",
                group_id=f"{kafka.group_id}.governance",
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                max_poll_records=5000,
                session_timeout_ms=10_000,
                heartbeat_interval_ms=3_000,
            )
            self._dlq: Any = KafkaProducer(**producer_config(kafka))
        except Exception as exc:
            raise translate(exc) from exc

    def stop(self) -> None:
        """Finish the current batch, commit, and return from ``run()``."""
        self._stop.set()

    def run(self) -> None:
        log.info("consuming %s as group %s.governance", self.kafka.intents_topic, self.kafka.group_id)
        try:
            while not self._stop.is_set():
                items = self._poll_batch()
                if items:
                    self._process(items)
        finally:
            for closer in (lambda: self._dlq.flush(timeout=10), lambda: self._dlq.close(timeout=10),
                           lambda: self._consumer.close(autocommit=False)):
                try:
                    closer()
                except Exception:
                    log.warning("closing a Kafka client failed", exc_info=True)

    # -- one batch -------------------------------------------------------------------------------

    def _poll_batch(self) -> list[_Item]:
        items: list[_Item] = []
        deadline = time.monotonic() + self.settings.batch_max_seconds
        while len(items) < self.settings.batch_max_spans and not self._stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            polled = self._consumer.poll(timeout_ms=int(min(remaining, 0.5) * 1000), max_records=5000)
            for records in polled.values():
                for record in records:
                    item = self._decode(record)
                    if item is not None:
                        items.append(item)
            if not polled and items:
                break  # drained: do not wait out the deadline
        return items

    def _decode(self, record: Any) -> _Item | None:
        self.stats.records += 1
        try:
            value = orjson.loads(record.value or b"")
            kind = RecordType(value.pop("type"))
            tenant = header_map(record.headers).get(Headers.TENANT) or value.get("tenant") or self.default_tenant
            value["tenant"] = tenant
            table = TABLES[kind]
            to_arrow(table, [value])  # the row must fit its table; else it is a dead letter now
        except Exception as exc:
            self._dead_letter(record, f"not a governance record: {type(exc).__name__}: {exc}", type(exc).__name__)
            return None
        return _Item(record, table, value)

    def _process(self, items: list[_Item]) -> None:
        from kafka.structs import OffsetAndMetadata, TopicPartition

        by_table: dict[str, list[_Item]] = {}
        for item in items:
            by_table.setdefault(item.table, []).append(item)
        token = self.token(items)
        for table, rows in by_table.items():
            self._insert(table, rows, f"{token}/{table}")
        offsets: dict[Any, Any] = {}
        for item in items:
            tp = TopicPartition(item.record.topic, item.record.partition)
            if tp not in offsets or offsets[tp].offset <= item.record.offset:
                offsets[tp] = OffsetAndMetadata(item.record.offset + 1, "", -1)
        try:
            self._dlq.flush(timeout=30)
            self._consumer.commit(offsets)
        except Exception as exc:  # rebalanced away: the next owner re-reads; FINAL keeps reads exact
            self.stats.commit_failures += 1
            log.warning("offset commit failed (%s); records will be re-read", exc)
        self.stats.batches += 1

    @staticmethod
    def token(items: list[_Item]) -> str:
        """``topic:partition:first-last`` for every partition in the batch, sorted."""
        ranges: dict[tuple[str, int], list[int]] = {}
        for item in items:
            r = ranges.setdefault((item.record.topic, item.record.partition), [item.record.offset] * 2)
            r[0], r[1] = min(r[0], item.record.offset), max(r[1], item.record.offset)
        return ",".join(f"{t}:{p}:{lo}-{hi}" for (t, p), (lo, hi) in sorted(ranges.items()))

    def _insert(self, table: str, items: list[_Item], token: str) -> None:
        delay = 0.2
        while True:
            try:
                self.store.insert_arrow(table, to_arrow(table, [i.row for i in items]), dedup_token=token)
                self.stats.stored[table] = self.stats.stored.get(table, 0) + len(items)
                return
            except StoreUnavailable as exc:
                self.stats.store_retries += 1
                log.warning("store unavailable (%s); retrying in %.1fs, nothing committed", exc, delay)
                if self._stop.wait(delay):  # stopping: leave the batch uncommitted for the next run
                    raise
                delay = min(delay * 2, self.settings.retry_max_seconds)
            except StoreRejected as exc:
                if len(items) == 1:
                    self._dead_letter(items[0].record, f"store refused the row: {exc}", type(exc).__name__)
                    return
                for item in items:  # find the row it refuses; store the others
                    self._insert(table, [item], f"{token}/{item.record.partition}-{item.record.offset}")
                return

    def _dead_letter(self, record: Any, error: str, error_class: str) -> None:
        headers = list(record.headers or []) + [
            (Headers.ERROR, error[:2000].encode()),
            (Headers.ERROR_CLASS, error_class.encode()),
            (Headers.SOURCE, f"{record.topic}/{record.partition}/{record.offset}".encode()),
        ]
        self._dlq.send(self.kafka.dead_letter_topic, key=record.key, value=record.value or b"", headers=headers)
        self.stats.dead_letters += 1
        log.warning("dead-lettered %s/%s/%s: %s", record.topic, record.partition, record.offset, error)
