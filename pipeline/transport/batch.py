"""``BatchConsumer``: the poll -> store -> commit loop every AgentLedger topic consumer runs.

One loop for the spans, governance and feedback topics:

1. poll a batch, bounded by size (``weight`` of its items) and time;
2. ``decode`` each record; one that can never be decoded goes to the dead-letter
   topic at once, with the error and its source position in headers;
3. ``handle`` (store) the decoded items with a deduplication token built from the batch's
   topic/partition/offset ranges (so a re-read batch inserts nothing twice);
4. flush the dead letters, and only then commit the offsets of every polled record.

A crash between 3 and 4 re-reads the batch: the token (same batch) or the
deduplicating tables (any re-batching) keep results exact. Store unavailable:
``retry_unavailable`` pauses the partitions, retries with back-off while keeping the
group membership alive, and commits nothing; consumption resumes by itself.
``stop()`` finishes the current batch and commits it; during an outage it leaves
the batch uncommitted for the next run.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from agentledger.pipeline.failpoints import failpoint
from agentledger.pipeline.settings import KafkaSettings
from agentledger.pipeline.store import StoreUnavailable
from agentledger.pipeline.transport.kafka import translate
from agentledger.schemas.topics import Headers

__all__ = ["BatchConsumer", "BatchStats", "position_token"]

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class BatchStats:
    """Counters every topic consumer keeps (the metrics endpoint exposes them)."""

    records: int = 0
    batches: int = 0
    dead_letters: int = 0
    store_retries: int = 0
    commit_failures: int = 0
    last_batch_seconds: float = 0.0
    started_at: float = field(default_factory=time.time)
    lag: dict[str, int] = field(default_factory=dict)
    store_available: bool = True


def position_token(positions: Iterable[tuple[str, int, int]]) -> str:
    """``topic:partition:first-last`` for every partition among ``(topic, partition, offset)``, sorted."""
    ranges: dict[tuple[str, int], list[int]] = {}
    for topic, partition, offset in positions:
        r = ranges.setdefault((topic, partition), [offset, offset])
        r[0], r[1] = min(r[0], offset), max(r[1], offset)
    return ",".join(f"{t}:{p}:{lo}-{hi}" for (t, p), (lo, hi) in sorted(ranges.items()))


class _Stopping(Exception):
    """Raised out of a store retry when ``stop()`` was called during an outage."""


class BatchConsumer(Generic[T]):
    """A consumer group on one topic; subclasses say how to ``decode`` and ``handle``.

    ``run()`` blocks until ``stop()``. ``stats`` is the subclass's ``BatchStats``.
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        *,
        topic: str,
        group_id: str,
        client_id: str,
        stats: BatchStats,
        batch_max: int,
        batch_seconds: float,
        retry_max_seconds: float,
        max_poll_records: int = 2000,
        **consumer_config: Any,
    ) -> None:
        from kafka import KafkaConsumer, KafkaProducer

        from agentledger.pipeline.transport.kafka import ensure_topics, producer_config

        if not kafka.bootstrap_servers:
            raise ValueError(f"the {type(self).__name__} needs AGENTLEDGER_KAFKA_BOOTSTRAP_SERVERS")
        self.kafka = kafka
        self.topic = topic
        self.group_id = group_id
        self.stats = stats
        self.batch_max = batch_max
        self.batch_seconds = batch_seconds
        self.retry_max_seconds = retry_max_seconds
        self._max_poll_records = max_poll_records
        self._stop = threading.Event()
        try:
            ensure_topics(kafka)
            self._consumer: Any = KafkaConsumer(
                bootstrap_servers=kafka.bootstrap_servers,
                client_id=client_id,
                group_id=group_id,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                max_poll_records=max_poll_records,
                session_timeout_ms=10_000,
                heartbeat_interval_ms=3_000,
                **consumer_config,
            )
            self._await_partitions(topic)
            self._consumer.subscribe([topic])
            self._dlq: Any = KafkaProducer(**producer_config(kafka))
        except Exception as exc:
            raise translate(exc) from exc

    def _await_partitions(self, topic: str, timeout_s: float = 30.0) -> None:
        """Wait until the brokers' metadata lists the topic's partitions. A group that joins
        before (a topic created a moment ago) can be assigned nothing and stay idle until
        its next metadata refresh, minutes later."""
        deadline = time.monotonic() + timeout_s
        while not self._consumer.partitions_for_topic(topic):
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"topic {topic} has no partitions in the brokers' metadata after {timeout_s:g}s"
                )
            time.sleep(0.1)

    # -- what a subclass says ----------------------------------------------------------------------

    def decode(self, record: Any) -> T | None:
        """The item of one record, or None after dead-lettering it."""
        raise NotImplementedError

    def weight(self, item: T) -> int:
        """How much of ``batch_max`` the item takes (default 1)."""
        return 1

    def handle(self, items: list[T], token: str) -> None:
        """Store the decoded items of a batch (``retry_unavailable`` around the inserts)."""
        raise NotImplementedError

    # -- control -----------------------------------------------------------------------------------

    def stop(self) -> None:
        """Finish the current batch, commit, and return from ``run()``."""
        self._stop.set()

    def run(self) -> None:
        log.info("consuming %s as group %s", self.topic, self.group_id)
        try:
            while not self._stop.is_set():
                records, items = self._poll_batch()
                if records:
                    self._process(records, items)
                self._update_lag()
        except _Stopping:
            log.info("stopped during a store outage; the batch stays uncommitted and is read again")
        finally:
            self._close()

    def _close(self) -> None:
        for closer in (
            lambda: self._dlq.flush(timeout=10),
            lambda: self._dlq.close(timeout=10),
            lambda: self._consumer.close(autocommit=False),
        ):
            try:
                closer()
            except Exception:
                log.warning("closing a Kafka client failed", exc_info=True)

    # -- one batch ---------------------------------------------------------------------------------

    def _poll_batch(self) -> tuple[list[Any], list[T]]:
        records: list[Any] = []
        items: list[T] = []
        size = 0
        deadline = time.monotonic() + self.batch_seconds
        while size < self.batch_max and not self._stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            polled = self._consumer.poll(
                timeout_ms=int(min(remaining, 0.5) * 1000), max_records=self._max_poll_records
            )
            for part in polled.values():
                for record in part:
                    records.append(record)
                    self.stats.records += 1
                    item = self.decode(record)
                    if item is not None:
                        items.append(item)
                        size += self.weight(item)
            if not polled and records:
                break  # the topic is drained: do not wait out the deadline
        return records, items

    def _process(self, records: list[Any], items: list[T]) -> None:
        from kafka.structs import OffsetAndMetadata, TopicPartition

        started = time.monotonic()
        if items:
            self.handle(items, position_token((r.topic, r.partition, r.offset) for r in records))
        failpoint("after_insert_before_commit")
        last: dict[tuple[str, int], int] = {}
        for r in records:  # dead-lettered records too: they are done with
            key = (r.topic, r.partition)
            if last.get(key, -1) < r.offset:
                last[key] = r.offset
        offsets = {
            TopicPartition(*key): OffsetAndMetadata(offset + 1, "", -1)
            for key, offset in last.items()
        }
        try:
            self._dlq.flush(
                timeout=30
            )  # dead letters are durable before their offsets are committed
            self._consumer.commit(offsets)
        except Exception as exc:  # rebalanced away: the next owner re-reads; results stay exact
            self.stats.commit_failures += 1
            log.warning("offset commit failed (%s); records will be re-read and deduplicated", exc)
        self.stats.batches += 1
        self.stats.last_batch_seconds = time.monotonic() - started

    def retry_unavailable(self, attempt: Callable[[], R]) -> R:
        """``attempt()`` until the store takes it: partitions paused and nothing committed meanwhile."""
        delay = 0.2
        paused = False
        while True:
            try:
                result = attempt()
                self.stats.store_available = True
                if paused:
                    self._consumer.resume(*self._consumer.assignment())
                    log.info("store available again; resumed consumption of %s", self.topic)
                return result
            except StoreUnavailable as exc:
                self.stats.store_available = False
                self.stats.store_retries += 1
                if self._stop.is_set():
                    raise _Stopping() from exc
                if not paused:
                    self._consumer.pause(*self._consumer.assignment())
                    paused = True
                log.warning(
                    "store unavailable (%s); retrying in %.1fs, nothing committed", exc, delay
                )
                end = time.monotonic() + delay
                while time.monotonic() < end and not self._stop.is_set():
                    # keep the group membership alive while paused (returns nothing for paused partitions)
                    self._consumer.poll(
                        timeout_ms=int(min(0.5, max(0.0, end - time.monotonic())) * 1000)
                    )
                delay = min(delay * 2, self.retry_max_seconds)

    # -- dead letters ------------------------------------------------------------------------------

    def dead_letter(self, record: Any, error: str, error_class: str) -> None:
        """Send ``record`` as it was read to the dead-letter topic, the error in its headers."""
        self.dead_letter_value(
            record.value or b"",
            list(record.headers or []),
            error,
            error_class,
            f"{record.topic}/{record.partition}/{record.offset}",
            key=record.key,
        )

    def dead_letter_value(
        self,
        value: bytes,
        headers: list[tuple[str, bytes]],
        error: str,
        error_class: str,
        source: str,
        *,
        key: bytes | None = None,
    ) -> None:
        """Send ``value`` (a decoded item re-encoded) to the dead-letter topic."""
        headers = headers + [
            (Headers.ERROR, error[:2000].encode()),
            (Headers.ERROR_CLASS, error_class.encode()),
            (Headers.SOURCE, source.encode()),
        ]
        self._dlq.send(self.kafka.dead_letter_topic, key=key, value=value, headers=headers)
        self.stats.dead_letters += 1
        log.warning("dead-lettered %s of %s: %s", source, self.topic, error)

    # -- lag ---------------------------------------------------------------------------------------

    def _update_lag(self) -> None:
        try:
            for tp in self._consumer.assignment():
                high = self._consumer.highwater(tp)
                if high is not None:
                    self.stats.lag[f"{tp.topic}/{tp.partition}"] = max(
                        0, high - self._consumer.position(tp)
                    )
        except Exception:  # lag is informational
            log.debug("lag update failed", exc_info=True)
