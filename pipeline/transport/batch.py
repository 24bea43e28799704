"""``BatchConsumer``: the poll -> store -> commit loop every AgentLedger topic consumer runs.

One loop for the spans, governance and feedback topics:

1. poll a batch, bounded by size (``weight`` of its items) and time;
2. ``decode`` each record; one that can never be decoded is dead-lettered: kept for the
   dead-letter topic with the error and its source position in headers;
3. ``handle`` (store) the decoded items with a deduplication token built from the batch's
   topic/partition/offset ranges (so a re-read batch inserts nothing twice);
4. send the batch's dead letters (acknowledged, acks=all), and only then commit the offsets
   of every polled record.

A crash between 3 and 4 re-reads the batch: the token (same batch) or the
deduplicating tables (any re-batching) keep results exact. Store unavailable:
``retry_unavailable`` pauses the partitions, retries with back-off while keeping the
group membership alive, and commits nothing; consumption resumes by itself (the
dead-letter topic unavailable at step 4: the same).
``stop()`` finishes the current batch and commits it; during an outage it leaves
the batch uncommitted for the next run.

The loop reads and writes only through a ``Transport`` (``transport/base.py``): Kafka in
production, ``MemoryTransport`` in unit tests.
"""

from __future__ import annotations

import bisect
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from agentledger.pipeline.failpoints import failpoint
from agentledger.pipeline.settings import KafkaSettings
from agentledger.pipeline.store import StoreUnavailable
from agentledger.pipeline.transport.base import (
    HeaderList,
    IncomingRecord,
    OutgoingRecord,
    RecordTooLarge,
    TopicPartition,
    Transport,
    TransportError,
    TransportUnavailable,
    resolve,
)
from agentledger.pipeline.transport.records import header_map
from agentledger.schemas.topics import Headers

__all__ = ["BatchConsumer", "BatchStats", "LatencyHistogram", "position_token"]

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


BATCH_SECONDS_BUCKETS: tuple[float, ...] = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
"""Upper bounds of the batch-duration histogram: a batch is milliseconds to a few seconds; one
that waited out a store outage lands in the last buckets."""


@dataclass
class LatencyHistogram:
    """Durations counted per bucket (the first whose bound is not exceeded; the last holds those
    past every bound), kept by the consumer loop for the metrics endpoint, which renders them as
    a Prometheus histogram: the loop does not depend on the metrics library."""

    bounds: tuple[float, ...] = BATCH_SECONDS_BUCKETS
    counts: list[int] = field(init=False)
    total: float = 0.0

    def __post_init__(self) -> None:
        self.counts = [0] * (len(self.bounds) + 1)

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, seconds)] += 1
        self.total += seconds


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
    batch_seconds: LatencyHistogram = field(default_factory=LatencyHistogram)
    """The duration of every batch, poll end to commit (``last_batch_seconds`` is the last)."""


def position_token(positions: Iterable[tuple[str, int, int]]) -> str:
    """``topic:partition:first-last`` for every partition among ``(topic, partition, offset)``, sorted."""
    ranges: dict[tuple[str, int], list[int]] = {}
    for topic, partition, offset in positions:
        r = ranges.setdefault((topic, partition), [offset, offset])
        r[0], r[1] = min(r[0], offset), max(r[1], offset)
    return ",".join(f"{t}:{p}:{lo}-{hi}" for (t, p), (lo, hi) in sorted(ranges.items()))


class _Stopping(Exception):
    """Raised out of a retry when ``stop()`` was called during an outage."""


class BatchConsumer(Generic[T]):
    """A consumer group on one topic; subclasses say how to ``decode`` and ``handle``.

    ``transport`` is a Transport, or KafkaSettings to build a KafkaTransport from (transitional).
    The constructor creates the missing topics, joins the group and opens the dead-letter
    producer (raises TransportUnavailable). ``run()`` blocks until ``stop()``. ``stats`` is the
    subclass's ``BatchStats``.
    """

    def __init__(
        self,
        transport: Transport | KafkaSettings,
        *,
        topic: str,
        group_id: str,
        client_id: str,
        stats: BatchStats,
        batch_max: int,
        batch_seconds: float,
        retry_max_seconds: float,
        max_poll_records: int = 2000,
    ) -> None:
        self.transport = resolve(transport)
        self.kafka = self.transport.settings
        self.topic = topic
        self.group_id = group_id
        self.stats = stats
        self.batch_max = batch_max
        self.batch_seconds = batch_seconds
        self.retry_max_seconds = retry_max_seconds
        self._max_poll_records = max_poll_records
        self._stop = threading.Event()
        self._dead_letters: list[OutgoingRecord] = []
        self._held: list[IncomingRecord] = []
        with self.transport.admin() as admin:
            admin.ensure_topics()
        self._subscription = self.transport.subscribe(
            topic, group_id=group_id, client_id=client_id, max_poll_records=max_poll_records
        )
        try:
            self._dlq = self.transport.producer()
        except BaseException:
            self._subscription.close()
            raise

    # -- what a subclass says ----------------------------------------------------------------------

    def decode(self, record: IncomingRecord) -> T | None:
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
            log.info("stopped during an outage; the batch stays uncommitted and is read again")
        finally:
            self._dlq.close()
            self._subscription.close()

    # -- one batch ---------------------------------------------------------------------------------

    def _poll_batch(self) -> tuple[list[IncomingRecord], list[T]]:
        records: list[IncomingRecord] = []
        items: list[T] = []
        size = 0
        deadline = time.monotonic() + self.batch_seconds
        while size < self.batch_max and not self._stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            if self._held:
                polled, self._held = self._held, []
            else:
                polled = self._subscription.poll(min(remaining, 0.5), self._max_poll_records)
            for record in polled:
                records.append(record)
                self.stats.records += 1
                item = self.decode(record)
                if item is not None:
                    items.append(item)
                    size += self.weight(item)
            if not polled and records:
                break  # the topic is drained: do not wait out the deadline
        return records, items

    def _process(self, records: list[IncomingRecord], items: list[T]) -> None:
        started = time.monotonic()
        try:
            if items:
                self.handle(
                    items, position_token((r.topic, r.partition, r.offset) for r in records)
                )
            failpoint("after_insert_before_commit")
            following: dict[TopicPartition, int] = {}
            for r in records:  # dead-lettered records too: they are done with
                tp = TopicPartition(r.topic, r.partition)
                if following.get(tp, 0) <= r.offset:
                    following[tp] = r.offset + 1
            self._commit(following)
        finally:
            self._dead_letters.clear()  # sent, or made again when the batch is read again
        self.stats.batches += 1
        self.stats.last_batch_seconds = time.monotonic() - started
        self.stats.batch_seconds.observe(self.stats.last_batch_seconds)

    def _commit(self, following: dict[TopicPartition, int]) -> None:
        """Send the batch's dead letters (acks=all; retried while the broker is unavailable), and
        only then commit its offsets."""
        if self._dead_letters:
            self._retry(self._send_dead_letters, TransportUnavailable, "dead-letter topic")
        try:
            self._subscription.commit(following)
        except (
            TransportError
        ) as exc:  # rebalanced away: the next owner re-reads; results stay exact
            self.stats.commit_failures += 1
            log.warning("offset commit failed (%s); records will be re-read and deduplicated", exc)

    def _send_dead_letters(self) -> None:
        try:
            self._dlq.send(self._dead_letters, timeout=30)
        except (
            RecordTooLarge
        ):  # one by one, to drop only those that never fit (others may go twice)
            for record in self._dead_letters:
                try:
                    self._dlq.send([record], timeout=30)
                except RecordTooLarge as exc:
                    log.error(
                        "dead letter %s refused as too large, dropped: %s",
                        header_map(record.headers).get(Headers.SOURCE),
                        exc,
                    )

    def retry_unavailable(self, attempt: Callable[[], R]) -> R:
        """``attempt()`` until the store takes it: partitions paused and nothing committed meanwhile."""
        return self._retry(attempt, StoreUnavailable, "store")

    def _retry(self, attempt: Callable[[], R], retryable: type[Exception], what: str) -> R:
        """``attempt()`` until it does not raise ``retryable``, with back-off; the partitions are
        paused meanwhile and the group membership kept alive. ``stop()`` ends it (``_Stopping``)."""
        store = retryable is StoreUnavailable
        delay = 0.2
        paused = False
        while True:
            try:
                result = attempt()
            except retryable as exc:
                if store:
                    self.stats.store_available = False
                    self.stats.store_retries += 1
                if self._stop.is_set():
                    raise _Stopping() from exc
                if not paused:
                    self._subscription.pause()
                    paused = True
                log.warning(
                    "%s unavailable (%s); retrying in %.1fs, nothing committed", what, exc, delay
                )
                self._keep_membership(delay)
                delay = min(delay * 2, self.retry_max_seconds)
                continue
            if store:
                self.stats.store_available = True
            if paused:
                self._subscription.resume()
                log.info("%s available again; resumed consumption of %s", what, self.topic)
            return result

    def _keep_membership(self, seconds: float) -> None:
        """Poll the paused subscription for ``seconds`` (or until ``stop()``): it returns nothing
        and keeps the group membership alive. A rebalance meanwhile assigns partitions unpaused:
        their records are held for the next batch, and the partitions paused too."""
        end = time.monotonic() + seconds
        while time.monotonic() < end and not self._stop.is_set():
            held = self._subscription.poll(min(0.5, max(0.0, end - time.monotonic())))
            if held:
                self._held.extend(held)
                self._subscription.pause()

    # -- dead letters ------------------------------------------------------------------------------

    def dead_letter(self, record: IncomingRecord, error: str, error_class: str) -> None:
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
        headers: HeaderList,
        error: str,
        error_class: str,
        source: str,
        *,
        key: bytes | None = None,
    ) -> None:
        """Send ``value`` (a decoded item re-encoded) to the dead-letter topic. It is sent with
        the batch, before the batch's offsets are committed."""
        headers = [
            *headers,
            (Headers.ERROR, error[:2000].encode()),
            (Headers.ERROR_CLASS, error_class.encode()),
            (Headers.SOURCE, source.encode()),
        ]
        self._dead_letters.append(OutgoingRecord(self.kafka.dead_letter_topic, key, value, headers))
        self.stats.dead_letters += 1
        log.warning("dead-lettered %s of %s: %s", source, self.topic, error)

    # -- lag ---------------------------------------------------------------------------------------

    def _update_lag(self) -> None:
        try:
            for tp, lag in self._subscription.lag().items():
                self.stats.lag[f"{tp.topic}/{tp.partition}"] = lag
        except Exception:  # lag is informational
            log.debug("lag update failed", exc_info=True)
