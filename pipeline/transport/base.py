"""The transport interface: records to and from topics, consumer groups, topics.

A ``Transport`` makes three parts from one configuration (``KafkaSettings``):

* a ``Producer`` sends a list of records and returns once the broker acknowledged every one
  of them (acks=all);
* a ``Subscription`` is one member of a consumer group on one topic: poll, commit, pause;
* a ``Follower`` reads every partition of one topic from its first record on, in no group
  (each replica that keeps a copy of a compacted topic, e.g. the run controls, reads it all);
* an ``Admin`` creates the topics and reads a group's lag.

Implementations: ``KafkaTransport`` (kafka-python, in ``transport/kafka.py``, the only module
that imports ``kafka``) and ``MemoryTransport`` (the test double, in ``transport/memory.py``).

Exceptions, translated from the client library at one boundary in each implementation::

    TransportError
    ├── TransportUnavailable   retryable: broker unreachable, metadata or acknowledgement timed out
    ├── RecordTooLarge         permanent: a record over the producer's or the broker's size limit
    └── CommitFailed           the group rebalanced: the partitions are another member's now,
                               which reads the records again (results stay exact)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import NamedTuple, Protocol

from agentledger.pipeline.settings import KafkaSettings

__all__ = [
    "TransportError",
    "TransportUnavailable",
    "RecordTooLarge",
    "CommitFailed",
    "HeaderList",
    "TopicPartition",
    "OutgoingRecord",
    "IncomingRecord",
    "PartitionLag",
    "Producer",
    "Subscription",
    "Follower",
    "Admin",
    "Transport",
    "resolve",
]

HeaderList = Sequence[tuple[str, bytes]]
"""Record headers: (name, value) pairs, in order; a name may repeat."""


class TransportError(Exception):
    """The transport could not do what was asked."""


class TransportUnavailable(TransportError):
    """The broker cannot take or give data now; try again later."""


class RecordTooLarge(TransportError):
    """A record exceeds the size the producer or the broker accepts; it never will fit."""


class CommitFailed(TransportError):
    """The offsets were not committed because the partitions were reassigned."""


class TopicPartition(NamedTuple):
    topic: str
    partition: int


class OutgoingRecord(NamedTuple):
    """A record to send. Records with the same key go to the same partition, in order."""

    topic: str
    key: bytes | None
    value: bytes
    headers: HeaderList = ()


class IncomingRecord(NamedTuple):
    """A record as read from its partition."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: HeaderList
    timestamp_ms: int
    """The record's timestamp (the producer's send time unless the topic says otherwise)."""


@dataclass(frozen=True)
class PartitionLag:
    """Where a consumer group stands on one partition."""

    topic: str
    partition: int
    committed: int
    """The next offset the group reads (0 when it committed nothing yet)."""
    end: int
    """The offset the next record written to the partition gets."""

    @property
    def lag(self) -> int:
        return max(0, self.end - self.committed)


class Producer(Protocol):
    """Sends records with acks=all. Safe to call from many threads at once."""

    def send(self, records: Sequence[OutgoingRecord], timeout: float) -> None:
        """Send ``records``; return once the broker acknowledged every one, within ``timeout`` s.

        Raises RecordTooLarge when one is refused for its size, TransportUnavailable when not
        every acknowledgement came in time. After a raise some records may be written: sending
        them again may store them twice at the transport (the pipeline deduplicates).
        """
        ...

    def ready(self, topic: str) -> bool:
        """True when the broker answers for ``topic`` now (never raises; may block briefly)."""
        ...

    def close(self) -> None:
        """Send what was accepted (bounded wait) and release the client; never raises, safe twice."""
        ...


class Subscription(Protocol):
    """One consumer-group member on one topic; offsets are committed only by ``commit``.

    Used from one thread. A new member starts at the group's committed offsets, or at the
    earliest record of a partition the group never committed.
    """

    topic: str
    group_id: str

    def poll(self, timeout: float, max_records: int | None = None) -> list[IncomingRecord]:
        """The next records of the assigned partitions (in offset order within each), waiting up
        to ``timeout`` s for some; at most ``max_records`` (default: the subscription's).

        While paused it returns nothing, and calling it keeps the group membership alive.
        """
        ...

    def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Commit, per partition, the offset of the next record to read (the last done + 1).

        Raises CommitFailed (partitions reassigned) or TransportUnavailable.
        """
        ...

    def pause(self) -> None:
        """Stop fetching from every assigned partition (the membership is kept)."""
        ...

    def resume(self) -> None:
        """Fetch again from every assigned partition."""
        ...

    def lag(self) -> dict[TopicPartition, int]:
        """Records between this member's position and the end, per assigned partition known."""
        ...

    def close(self) -> None:
        """Leave the group without committing; never raises, safe twice."""
        ...


class Follower(Protocol):
    """Reads every partition of one topic from the beginning, in no consumer group: nothing is
    committed and every follower sees every record. Used from one thread."""

    topic: str

    def poll(self, timeout: float, max_records: int | None = None) -> list[IncomingRecord]:
        """The next records (in offset order within each partition), waiting up to ``timeout``
        s for some."""
        ...

    def lag(self) -> dict[TopicPartition, int]:
        """Records between this follower's position and the current end, per partition (asks
        the broker for the ends: 0 everywhere means it has read all there was)."""
        ...

    def close(self) -> None:
        """Release the client; never raises, safe twice."""
        ...


class Admin(Protocol):
    """Topic administration and group offsets. A context manager that closes itself."""

    def ensure_topics(
        self, topics: Sequence[str] | None = None, *, compacted: bool = False
    ) -> list[str]:
        """Create those of ``topics`` that do not exist yet, with the settings' partitions,
        replication, retention and record size; return the names created. ``compacted``: as
        compacted topics (``cleanup.policy=compact``: the latest record of each key is kept for
        good, older ones go; no time retention). Default: the settings' spans, dead-letter,
        feedback and intents topics, and the controls topic compacted. Safe to call twice, and
        from several processes at once."""
        ...

    def group_lag(self, group_id: str, topic: str) -> list[PartitionLag]:
        """The group's committed offset and the end, per partition of ``topic``."""
        ...

    def close(self) -> None: ...

    def __enter__(self) -> Admin: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


class Transport(Protocol):
    """Makes producers, subscriptions and admins from ``settings``.

    A transport holds no connection itself: each part it makes is closed by its user.
    """

    @property
    def settings(self) -> KafkaSettings:
        """Topic names, partitions, record size limit, produce timeout."""
        ...

    def producer(self, *, linger_ms: int = 2) -> Producer:
        """A producer (acks=all, idempotent); ``linger_ms`` 0 sends each record at once (an
        ask that waits for its own record), more lets concurrent sends share a request.

        Raises TransportUnavailable."""
        ...

    def subscribe(
        self, topic: str, *, group_id: str, client_id: str, max_poll_records: int = 500
    ) -> Subscription:
        """Join ``group_id`` on ``topic`` once the topic's partitions are known.

        Raises TransportUnavailable."""
        ...

    def follow(self, topic: str, *, client_id: str) -> Follower:
        """A follower of every partition of ``topic`` (which must exist), from its first record.

        Raises TransportUnavailable."""
        ...

    def admin(self, *, timeout: float = 10.0) -> Admin:
        """An admin client whose requests time out after ``timeout`` s.

        Raises TransportUnavailable."""
        ...


def resolve(transport: Transport | KafkaSettings) -> Transport:
    """``transport`` itself, or the Kafka transport of ``KafkaSettings`` (raises ValueError when
    they name no broker). Transitional: the composition root builds the transport."""
    if isinstance(transport, KafkaSettings):
        from agentledger.pipeline.transport.kafka import KafkaTransport

        return KafkaTransport(transport)
    return transport
