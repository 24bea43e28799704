"""``MemoryTransport``: topics, partitions and consumer groups in memory; the test double for
``Transport``.

A topic has ``settings.partitions`` partitions (created on first use, or by
``Admin.ensure_topics``); a keyed record goes to partition ``crc32(key) % partitions``, an
unkeyed one round-robin. A subscription is its group's only member: it gets every partition
and starts at the group's committed offsets (else at 0); a follower reads every partition from
0. Topics created compacted are listed in ``compacted`` (records are not compacted away: a
follower must merge by key anyway, as it reads a real topic before its compaction). ``fail_sends_with`` and
``fail_commits_with`` make sends and commits raise; a record over the producer's size limit
(``max_record_bytes`` + 64 KiB, as ``KafkaTransport``'s) is refused as too large.
"""

from __future__ import annotations

import itertools
import threading
import time
import zlib
from collections.abc import Mapping, Sequence
from types import TracebackType

from agentledger.pipeline.settings import KafkaSettings
from agentledger.pipeline.transport.base import (
    IncomingRecord,
    OutgoingRecord,
    PartitionLag,
    RecordTooLarge,
    TopicPartition,
    TransportError,
    TransportUnavailable,
)

__all__ = ["MemoryTransport"]


class MemoryTransport:
    """An in-process broker. Thread-safe; ``poll`` waits for records like a real one."""

    def __init__(self, settings: KafkaSettings | None = None) -> None:
        self._settings = settings or KafkaSettings()
        self.sent: list[OutgoingRecord] = []
        """Every record acknowledged, as it was sent, in order."""
        self.commits: list[tuple[str, dict[TopicPartition, int]]] = []
        """Every successful commit: (group id, offsets)."""
        self.fail_sends_with: TransportError | None = None
        """Raised by every ``Producer.send`` while set (nothing of that send is kept)."""
        self.fail_commits_with: TransportError | None = None
        """Raised by every ``Subscription.commit`` while set."""
        self.available = True
        """False: sends raise TransportUnavailable and ``ready`` is False."""
        self.compacted: set[str] = set()
        """Topics ``Admin.ensure_topics`` created compacted."""
        self._logs: dict[str, list[list[IncomingRecord]]] = {}
        self._committed: dict[str, dict[TopicPartition, int]] = {}
        self._round_robin = itertools.count()
        self._changed = threading.Condition()

    @property
    def settings(self) -> KafkaSettings:
        return self._settings

    def producer(self, *, linger_ms: int = 2) -> MemoryProducer:
        return MemoryProducer(self)

    def subscribe(
        self, topic: str, *, group_id: str, client_id: str, max_poll_records: int = 500
    ) -> MemorySubscription:
        return MemorySubscription(self, topic, group_id, max_poll_records)

    def follow(self, topic: str, *, client_id: str) -> MemoryFollower:
        if not self.available:
            raise TransportUnavailable("the in-memory broker is unavailable")
        return MemoryFollower(self, topic)

    def admin(self, *, timeout: float = 10.0) -> MemoryAdmin:
        return MemoryAdmin(self)

    # -- what a test reads -------------------------------------------------------------------------

    def topics(self) -> list[str]:
        with self._changed:
            return sorted(self._logs)

    def records(self, topic: str) -> list[IncomingRecord]:
        """Every record of ``topic``, partition by partition, in offset order."""
        with self._changed:
            return [r for log in self._logs.get(topic, ()) for r in log]

    def committed(self, group_id: str) -> dict[TopicPartition, int]:
        """The group's committed offsets (next offset to read, per partition)."""
        with self._changed:
            return dict(self._committed.get(group_id, {}))

    # -- the broker --------------------------------------------------------------------------------

    def _log(self, topic: str) -> list[list[IncomingRecord]]:
        """The topic's partitions (created with ``settings.partitions`` on first use); call locked."""
        log = self._logs.get(topic)
        if log is None:
            log = self._logs[topic] = [[] for _ in range(self._settings.partitions)]
        return log

    def _append(self, records: Sequence[OutgoingRecord]) -> None:
        limit = self._settings.max_record_bytes + 64 * 1024
        if not self.available:
            raise TransportUnavailable("the in-memory broker is unavailable")
        if self.fail_sends_with is not None:
            raise self.fail_sends_with
        for r in records:
            size = len(r.value) + len(r.key or b"") + sum(len(k) + len(v) for k, v in r.headers)
            if size > limit:
                raise RecordTooLarge(f"a record of {size} bytes is over the limit of {limit}")
        now_ms = time.time_ns() // 1_000_000
        with self._changed:
            for r in records:
                log = self._log(r.topic)
                if r.key is None:
                    partition = next(self._round_robin) % len(log)
                else:
                    partition = zlib.crc32(r.key) % len(log)
                part = log[partition]
                part.append(
                    IncomingRecord(
                        r.topic, partition, len(part), r.key, r.value, list(r.headers), now_ms
                    )
                )
                self.sent.append(r)
            self._changed.notify_all()


class MemoryProducer:
    def __init__(self, transport: MemoryTransport) -> None:
        self._transport = transport
        self.closed = False

    def send(self, records: Sequence[OutgoingRecord], timeout: float) -> None:
        if self.closed:
            raise TransportUnavailable("the producer is closed")
        self._transport._append(records)

    def ready(self, topic: str) -> bool:
        return self._transport.available and not self.closed

    def close(self) -> None:
        self.closed = True


class MemorySubscription:
    def __init__(
        self, transport: MemoryTransport, topic: str, group_id: str, max_poll_records: int
    ) -> None:
        self.topic = topic
        self.group_id = group_id
        self.paused = False
        self.closed = False
        self.polls = 0
        """Calls of ``poll``, paused or not (a paused member keeps polling to stay in its group)."""
        self._transport = transport
        self._max_poll_records = max_poll_records
        with transport._changed:
            partitions = len(transport._log(topic))
            committed = transport._committed.get(group_id, {})
            self._positions = {
                TopicPartition(topic, p): committed.get(TopicPartition(topic, p), 0)
                for p in range(partitions)
            }

    def poll(self, timeout: float, max_records: int | None = None) -> list[IncomingRecord]:
        if self.closed:
            raise TransportUnavailable("the subscription is closed")
        self.polls += 1
        limit = max_records or self._max_poll_records
        deadline = time.monotonic() + timeout
        with self._transport._changed:
            while True:
                out = [] if self.paused else self._take(limit)
                remaining = deadline - time.monotonic()
                if out or remaining <= 0:
                    return out
                self._transport._changed.wait(remaining)

    def _take(self, limit: int) -> list[IncomingRecord]:
        out: list[IncomingRecord] = []
        log = self._transport._logs[self.topic]
        for tp, position in self._positions.items():
            taken = log[tp.partition][position : position + limit - len(out)]
            out.extend(taken)
            self._positions[tp] = position + len(taken)
            if len(out) >= limit:
                break
        return out

    def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        transport = self._transport
        if transport.fail_commits_with is not None:
            raise transport.fail_commits_with
        if not transport.available:
            raise TransportUnavailable("the in-memory broker is unavailable")
        with transport._changed:
            transport._committed.setdefault(self.group_id, {}).update(offsets)
            transport.commits.append((self.group_id, dict(offsets)))

    def pause(self) -> None:
        self.paused = True

    def resume(self) -> None:
        self.paused = False
        with self._transport._changed:
            self._transport._changed.notify_all()

    def lag(self) -> dict[TopicPartition, int]:
        with self._transport._changed:
            log = self._transport._logs[self.topic]
            return {tp: len(log[tp.partition]) - pos for tp, pos in self._positions.items()}

    def close(self) -> None:
        self.closed = True


class MemoryFollower:
    """Every partition of a topic from offset 0, in no group."""

    def __init__(self, transport: MemoryTransport, topic: str) -> None:
        self.topic = topic
        self.closed = False
        self._transport = transport
        with transport._changed:
            partitions = len(transport._log(topic))
        self._positions = {TopicPartition(topic, p): 0 for p in range(partitions)}

    def poll(self, timeout: float, max_records: int | None = None) -> list[IncomingRecord]:
        if self.closed:
            raise TransportUnavailable("the follower is closed")
        limit = max_records or 500
        deadline = time.monotonic() + timeout
        log = self._transport._logs[self.topic]
        with self._transport._changed:
            while True:
                out: list[IncomingRecord] = []
                for tp, position in self._positions.items():
                    taken = log[tp.partition][position : position + limit - len(out)]
                    out.extend(taken)
                    self._positions[tp] = position + len(taken)
                remaining = deadline - time.monotonic()
                if out or remaining <= 0:
                    return out
                self._transport._changed.wait(remaining)

    def lag(self) -> dict[TopicPartition, int]:
        if not self._transport.available:
            raise TransportUnavailable("the in-memory broker is unavailable")
        with self._transport._changed:
            log = self._transport._logs[self.topic]
            return {tp: len(log[tp.partition]) - pos for tp, pos in self._positions.items()}

    def close(self) -> None:
        self.closed = True


class MemoryAdmin:
    def __init__(self, transport: MemoryTransport) -> None:
        self._transport = transport

    def ensure_topics(
        self, topics: Sequence[str] | None = None, *, compacted: bool = False
    ) -> list[str]:
        s = self._transport.settings
        if topics is None:
            plain = (
                s.spans_topic,
                s.logs_topic,
                s.dead_letter_topic,
                s.feedback_topic,
                s.intents_topic,
            )
            return self.ensure_topics(plain) + self.ensure_topics(
                [s.controls_topic], compacted=True
            )
        created = []
        with self._transport._changed:
            for topic in topics:
                if topic not in self._transport._logs:
                    self._transport._log(topic)
                    created.append(topic)
                    if compacted:
                        self._transport.compacted.add(topic)
        return created

    def group_lag(self, group_id: str, topic: str) -> list[PartitionLag]:
        committed = self._transport.committed(group_id)
        with self._transport._changed:
            log = self._transport._logs.get(topic, [])
            return [
                PartitionLag(topic, p, committed.get(TopicPartition(topic, p), 0), len(part))
                for p, part in enumerate(log)
            ]

    def close(self) -> None:
        pass

    def __enter__(self) -> MemoryAdmin:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
