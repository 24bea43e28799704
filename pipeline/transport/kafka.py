"""``KafkaTransport``: the transport on kafka-python.

This is the only module of AgentLedger that imports ``kafka``. Every call into kafka-python
runs inside ``_boundary``, which turns whatever it raises into the hierarchy of
``transport/base.py`` (``translate``): a size refusal into RecordTooLarge, a lost group
membership at commit into CommitFailed, anything else into TransportUnavailable.

Producers are idempotent with acks=all and the configured compression; subscriptions commit
only explicitly, start at the earliest record of a partition the group never committed, and
join their group only once the topic's partitions are known.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from types import TracebackType
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka import errors as ke
from kafka.admin import NewTopic
from kafka.structs import OffsetAndMetadata
from kafka.structs import TopicPartition as KafkaTopicPartition

from agentledger.pipeline.settings import KafkaSettings
from agentledger.pipeline.transport.base import (
    CommitFailed,
    IncomingRecord,
    OutgoingRecord,
    PartitionLag,
    RecordTooLarge,
    TopicPartition,
    TransportError,
    TransportUnavailable,
)

__all__ = [
    "KafkaTransport",
    "KafkaProducerClient",
    "KafkaSubscription",
    "KafkaAdmin",
    "translate",
    "producer_config",
    "ensure_topics",
    "KafkaUnavailable",
    "KafkaRecordTooLarge",
]

log = logging.getLogger(__name__)

KafkaUnavailable = TransportUnavailable
"""Former name of TransportUnavailable (kept until its importers move)."""
KafkaRecordTooLarge = RecordTooLarge
"""Former name of RecordTooLarge (kept until its importers move)."""


def translate(exc: BaseException) -> TransportError:
    """kafka-python's exception (or any raised inside it) as ours."""
    if isinstance(exc, TransportError):
        return exc
    if isinstance(exc, (ke.MessageSizeTooLargeError, ke.RecordListTooLargeError)):
        return RecordTooLarge(str(exc) or type(exc).__name__)
    if isinstance(exc, ke.CommitFailedError):
        return CommitFailed(str(exc) or type(exc).__name__)
    text = str(exc)
    name = type(exc).__name__
    return TransportUnavailable(text if text.startswith(name) else f"{name}: {text}")


@contextmanager
def _boundary() -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        err = translate(exc)
        if err is exc:
            raise
        raise err from exc


def producer_config(settings: KafkaSettings, *, linger_ms: int = 2) -> dict[str, Any]:
    delivery_ms = int(settings.produce_timeout_s * 1000)
    return {
        "bootstrap_servers": settings.bootstrap_servers,
        "client_id": settings.client_id,
        "acks": "all",
        "enable_idempotence": True,
        "compression_type": None if settings.compression == "none" else settings.compression,
        "max_request_size": settings.max_record_bytes + 64 * 1024,
        "linger_ms": linger_ms,
        "batch_size": 1024 * 1024,
        "max_block_ms": 5_000,
        "request_timeout_ms": max(500, min(10_000, delivery_ms - 100)),
        "delivery_timeout_ms": delivery_ms,
        "retry_backoff_ms": 100,
        "reconnect_backoff_max_ms": 2_000,
    }


class KafkaTransport:
    """kafka-python clients for the brokers of ``settings``."""

    def __init__(self, settings: KafkaSettings) -> None:
        if not settings.bootstrap_servers:
            raise ValueError("the Kafka transport needs AGENTLEDGER_KAFKA_BOOTSTRAP_SERVERS")
        self._settings = settings

    @property
    def settings(self) -> KafkaSettings:
        return self._settings

    def producer(self, *, linger_ms: int = 2) -> KafkaProducerClient:
        return KafkaProducerClient(self._settings, linger_ms=linger_ms)

    def subscribe(
        self, topic: str, *, group_id: str, client_id: str, max_poll_records: int = 500
    ) -> KafkaSubscription:
        return KafkaSubscription(
            self._settings,
            topic,
            group_id=group_id,
            client_id=client_id,
            max_poll_records=max_poll_records,
        )

    def admin(self, *, timeout: float = 10.0) -> KafkaAdmin:
        return KafkaAdmin(self._settings, timeout=timeout)

    def __repr__(self) -> str:
        return f"KafkaTransport({self._settings.bootstrap_servers!r})"


class KafkaProducerClient:
    """``KafkaProducer`` behind ``Producer``."""

    def __init__(self, settings: KafkaSettings, *, linger_ms: int = 2) -> None:
        self._linger_ms = linger_ms
        self._closed = False
        with _boundary():
            self._client: Any = KafkaProducer(**producer_config(settings, linger_ms=linger_ms))

    def send(self, records: Sequence[OutgoingRecord], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with _boundary():
            futures = [
                self._client.send(r.topic, key=r.key, value=r.value, headers=list(r.headers))
                for r in records
            ]
            if self._linger_ms:  # do not wait out the linger: the caller waits for these
                self._client.flush(timeout=max(0.1, deadline - time.monotonic()))
            for future in futures:
                future.get(timeout=max(0.1, deadline - time.monotonic()))

    def ready(self, topic: str) -> bool:
        try:
            return bool(self._client.partitions_for(topic))
        except Exception:
            return False

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._client.flush(timeout=10)
            self._client.close(timeout=10)
        except Exception:  # closing after a broker loss must not raise
            log.warning("closing a Kafka producer failed", exc_info=True)


class KafkaSubscription:
    """``KafkaConsumer`` in a group, subscribed to one topic, behind ``Subscription``."""

    def __init__(
        self,
        settings: KafkaSettings,
        topic: str,
        *,
        group_id: str,
        client_id: str,
        max_poll_records: int = 500,
    ) -> None:
        self.topic = topic
        self.group_id = group_id
        self._closed = False
        with _boundary():
            self._client: Any = KafkaConsumer(
                bootstrap_servers=settings.bootstrap_servers,
                client_id=client_id,
                group_id=group_id,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                max_poll_records=max_poll_records,
                session_timeout_ms=10_000,
                heartbeat_interval_ms=3_000,
                max_poll_interval_ms=300_000,
                # a fetch takes at least one whole record of the largest size the producers send
                max_partition_fetch_bytes=settings.max_record_bytes + 64 * 1024,
                fetch_max_bytes=max(64 * 1024 * 1024, settings.max_record_bytes * 2),
            )
            try:
                self._await_partitions(topic)
                self._client.subscribe([topic])
            except BaseException:
                self._client.close(autocommit=False)
                raise

    def _await_partitions(self, topic: str, timeout_s: float = 30.0) -> None:
        """Wait until the brokers' metadata lists the topic's partitions. A group that joins
        before (a topic created a moment ago) can be assigned nothing and stay idle until
        its next metadata refresh, minutes later."""
        deadline = time.monotonic() + timeout_s
        while not self._client.partitions_for_topic(topic):
            if time.monotonic() > deadline:
                raise TransportUnavailable(
                    f"topic {topic} has no partitions in the brokers' metadata after {timeout_s:g}s"
                )
            time.sleep(0.1)

    def poll(self, timeout: float, max_records: int | None = None) -> list[IncomingRecord]:
        with _boundary():
            polled = self._client.poll(timeout_ms=int(timeout * 1000), max_records=max_records)
        return [
            IncomingRecord(
                r.topic, r.partition, r.offset, r.key, r.value, r.headers or (), r.timestamp
            )
            for part in polled.values()
            for r in part
        ]

    def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        with _boundary():
            self._client.commit(
                {
                    KafkaTopicPartition(tp.topic, tp.partition): OffsetAndMetadata(offset, "", -1)
                    for tp, offset in offsets.items()
                }
            )

    def pause(self) -> None:
        with _boundary():
            self._client.pause(*self._client.assignment())

    def resume(self) -> None:
        with _boundary():
            self._client.resume(*self._client.assignment())

    def lag(self) -> dict[TopicPartition, int]:
        out: dict[TopicPartition, int] = {}
        with _boundary():
            for tp in self._client.assignment():
                high = self._client.highwater(tp)
                if high is not None:
                    out[TopicPartition(tp.topic, tp.partition)] = max(
                        0, high - self._client.position(tp)
                    )
        return out

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._client.close(autocommit=False)
        except Exception:
            log.warning("closing a Kafka consumer failed", exc_info=True)


class KafkaAdmin:
    """``KafkaAdminClient`` (and a group-less consumer for end offsets) behind ``Admin``."""

    def __init__(self, settings: KafkaSettings, *, timeout: float = 10.0) -> None:
        self._settings = settings
        self._timeout_ms = int(timeout * 1000)
        with _boundary():
            self._client: Any = KafkaAdminClient(
                bootstrap_servers=settings.bootstrap_servers,
                client_id=settings.client_id,
                request_timeout_ms=self._timeout_ms,
            )

    def ensure_topics(self, topics: Sequence[str] | None = None) -> list[str]:
        s = self._settings
        wanted = list(
            topics or (s.spans_topic, s.dead_letter_topic, s.feedback_topic, s.intents_topic)
        )
        configs = {
            "retention.ms": str(s.retention_ms),
            "max.message.bytes": str(s.max_record_bytes + 64 * 1024),
        }
        created: list[str] = []
        with _boundary():
            existing = set(self._client.list_topics())
            missing = [t for t in wanted if t not in existing]
            if missing:
                try:
                    self._client.create_topics(
                        [
                            NewTopic(t, s.partitions, s.replication_factor, topic_configs=configs)
                            for t in missing
                        ]
                    )
                    created = missing
                except ke.TopicAlreadyExistsError:  # another replica created them first
                    pass
        if created:
            log.info("created Kafka topics %s", created)
        return created

    def group_lag(self, group_id: str, topic: str) -> list[PartitionLag]:
        with _boundary():
            consumer = KafkaConsumer(
                bootstrap_servers=self._settings.bootstrap_servers,
                client_id=self._settings.client_id,
                request_timeout_ms=self._timeout_ms,
            )
            try:
                partitions = consumer.partitions_for_topic(topic) or set()
                tps = [KafkaTopicPartition(topic, p) for p in sorted(partitions)]
                ends = consumer.end_offsets(tps)
                committed = self._client.list_group_offsets({group_id: None}).get(group_id, {})
            finally:
                consumer.close()
        rows = []
        for tp in tps:
            done = committed.get(tp)
            offset = done.offset if done is not None and done.offset >= 0 else 0
            rows.append(PartitionLag(topic, tp.partition, offset, ends[tp]))
        return rows

    def close(self) -> None:
        try:
            self._client.close()
        except Exception:
            log.warning("closing a Kafka admin client failed", exc_info=True)

    def __enter__(self) -> KafkaAdmin:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def ensure_topics(settings: KafkaSettings) -> list[str]:
    """Create the spans, dead-letter, feedback and intents topics of ``settings`` that are missing."""
    with KafkaTransport(settings).admin() as admin:
        return admin.ensure_topics()
