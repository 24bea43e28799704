"""``KafkaTransport``: the transport on kafka-python.

This module, ``kafka_setup.py`` (every client's security arguments, and ``_boundary``, which
turns whatever kafka-python raises into the hierarchy of ``transport/base.py``) and
``kafka_admin.py`` (topics, group lag) are the only modules of AgentLedger that import
``kafka``.

Producers are idempotent with acks=all and the configured compression; subscriptions commit
only explicitly, start at the earliest record of a partition the group never committed, and
join their group only once the topic's partitions are known. A follower is a group-less
consumer assigned every partition of its topic and sought to the beginning.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

from kafka import KafkaConsumer, KafkaProducer
from kafka.structs import OffsetAndMetadata
from kafka.structs import TopicPartition as KafkaTopicPartition

from agentledger.pipeline.settings import KafkaSettings
from agentledger.pipeline.transport.base import (
    IncomingRecord,
    OutgoingRecord,
    RecordTooLarge,
    TopicPartition,
    TransportUnavailable,
)
from agentledger.pipeline.transport.kafka_admin import KafkaAdmin
from agentledger.pipeline.transport.kafka_setup import (
    _boundary,
    producer_config,
    security_config,
    translate,
)

__all__ = [
    "KafkaTransport",
    "KafkaProducerClient",
    "KafkaSubscription",
    "KafkaFollower",
    "KafkaAdmin",
    "translate",
    "security_config",
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


class KafkaTransport:
    """kafka-python clients for the brokers of ``settings``."""

    def __init__(self, settings: KafkaSettings) -> None:
        if not settings.bootstrap_servers:
            raise ValueError("the Kafka transport needs AGENTLEDGER_KAFKA_BOOTSTRAP_SERVERS")
        self._settings = settings
        self._security = security_config(settings)

    @property
    def settings(self) -> KafkaSettings:
        return self._settings

    def producer(self, *, linger_ms: int = 2) -> KafkaProducerClient:
        return KafkaProducerClient(self._settings, linger_ms=linger_ms, security=self._security)

    def subscribe(
        self, topic: str, *, group_id: str, client_id: str, max_poll_records: int = 500
    ) -> KafkaSubscription:
        return KafkaSubscription(
            self._settings,
            topic,
            group_id=group_id,
            client_id=client_id,
            max_poll_records=max_poll_records,
            security=self._security,
        )

    def follow(self, topic: str, *, client_id: str) -> KafkaFollower:
        return KafkaFollower(self._settings, topic, client_id=client_id, security=self._security)

    def admin(self, *, timeout: float = 10.0) -> KafkaAdmin:
        return KafkaAdmin(self._settings, timeout=timeout, security=self._security)

    def __repr__(self) -> str:
        return f"KafkaTransport({self._settings.bootstrap_servers!r})"


def _reinit_producer_id_after_reset(client: Any) -> bool:
    """Make an idempotent ``KafkaProducer`` ask for a new producer id after it dropped its own.

    kafka-python (3.0.12 checked) resets the producer id when a batch that was already sent
    expires (a broker restart while a request was in flight), as the Java client does, but
    leaves the transaction manager READY, and only an UNINITIALIZED one requests a new id. The
    sender then sends nothing, ever: every later record of this producer times out, even with
    the broker back. The Java client goes back to UNINITIALIZED (KAFKA-7737); so does this
    wrapper, in the sender thread that calls ``reset_producer_id``. False when the client has
    no such state (another kafka-python version; nothing is changed then).
    """
    try:
        from kafka.producer.transaction_manager import TransactionState
    except ImportError:
        return False
    manager = getattr(client, "_transaction_manager", None)
    if manager is None or manager.is_transactional():
        return False
    if not all(
        hasattr(manager, a)
        for a in ("_lock", "_current_state", "reset_producer_id", "has_producer_id")
    ):
        return False
    reset = manager.reset_producer_id

    def reset_producer_id() -> None:
        reset()
        with manager._lock:
            if manager._current_state == TransactionState.READY and not manager.has_producer_id():
                log.info("Kafka producer lost its producer id; requesting a new one")
                manager._current_state = TransactionState.UNINITIALIZED

    manager.reset_producer_id = reset_producer_id
    return True


def _close_producer(client: Any, timeout: float) -> None:
    """Close a ``KafkaProducer`` for good, even with records in it that cannot be delivered.

    kafka-python's ``close`` flushes first and raises when the flush times out, before it
    stops anything: the producer stays open (its sender thread and connections) until the
    garbage collector's ``__del__`` flushes again, blocking whichever thread collects it for a
    second. The records still there belong to requests already answered (``send`` waits for
    its own), so they are failed: a forced close of the sender aborts them.
    """
    try:
        client.close(timeout=timeout)
        return
    except Exception as exc:
        log.warning("Kafka producer: undelivered records dropped at close (%s)", exc)
    sender = getattr(client, "_sender", None)
    if sender is not None:  # it stops once a request it waits for is answered or timed out
        sender.force_close()
        sender.join(timeout + client.config.get("request_timeout_ms", 30_000) / 1000)
    try:
        client.close(timeout=0)
    except Exception:  # closing after a broker loss must not raise
        log.warning("closing a Kafka producer failed", exc_info=True)


class KafkaProducerClient:
    """``KafkaProducer`` behind ``Producer``."""

    def __init__(
        self,
        settings: KafkaSettings,
        *,
        linger_ms: int = 2,
        security: Mapping[str, Any] | None = None,
    ) -> None:
        self._linger_ms = linger_ms
        self._closed = False
        config = producer_config(settings, linger_ms=linger_ms, security=security)
        with _boundary(settings):
            self._client: Any = KafkaProducer(**config)
        if not _reinit_producer_id_after_reset(self._client):
            log.debug("Kafka producer without an idempotent producer state to repair")

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

    def close(self, timeout: float = 10.0) -> None:
        """Deliver what is pending for up to ``timeout`` seconds, then close (never raises)."""
        if self._closed:
            return
        self._closed = True
        _close_producer(self._client, timeout)

    @property
    def closed(self) -> bool:
        """Closed, with kafka-python's sender thread ended (nothing left to the collector)."""
        sender = getattr(self._client, "_sender", None)
        return self._closed and not (sender is not None and sender.is_alive())


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
        security: Mapping[str, Any] | None = None,
    ) -> None:
        self.topic = topic
        self.group_id = group_id
        self._closed = False
        security = security_config(settings) if security is None else security
        with _boundary(settings):
            self._client: Any = KafkaConsumer(
                **security,
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
        _await_partitions(self._client, topic, timeout_s)

    def poll(self, timeout: float, max_records: int | None = None) -> list[IncomingRecord]:
        return _poll(self._client, timeout, max_records)

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


def _poll(client: Any, timeout: float, max_records: int | None) -> list[IncomingRecord]:
    with _boundary():
        polled = client.poll(timeout_ms=int(timeout * 1000), max_records=max_records)
    return [
        IncomingRecord(r.topic, r.partition, r.offset, r.key, r.value, r.headers or (), r.timestamp)
        for part in polled.values()
        for r in part
    ]


def _await_partitions(client: Any, topic: str, timeout_s: float = 30.0) -> set[int]:
    """The topic's partitions once the brokers' metadata lists them (a topic created a moment
    ago may not be listed yet)."""
    deadline = time.monotonic() + timeout_s
    while True:
        partitions = client.partitions_for_topic(topic)
        if partitions:
            return set(partitions)
        if time.monotonic() > deadline:
            raise TransportUnavailable(
                f"topic {topic} has no partitions in the brokers' metadata after {timeout_s:g}s"
            )
        time.sleep(0.1)


class KafkaFollower:
    """``KafkaConsumer`` in no group, assigned every partition of one topic from the beginning,
    behind ``Follower``. Partitions added to the topic later are not followed."""

    def __init__(
        self,
        settings: KafkaSettings,
        topic: str,
        *,
        client_id: str,
        security: Mapping[str, Any] | None = None,
    ) -> None:
        self.topic = topic
        self._closed = False
        security = security_config(settings) if security is None else security
        with _boundary(settings):
            self._client: Any = KafkaConsumer(
                **security,
                bootstrap_servers=settings.bootstrap_servers,
                client_id=client_id,
                group_id=None,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                fetch_max_wait_ms=200,  # a new record is fetched at once; an idle fetch is short
                max_partition_fetch_bytes=settings.max_record_bytes + 64 * 1024,
            )
            try:
                partitions = _await_partitions(self._client, topic)
                self._parts = [KafkaTopicPartition(topic, p) for p in sorted(partitions)]
                self._client.assign(self._parts)
                self._client.seek_to_beginning(*self._parts)
            except BaseException:
                self._client.close()
                raise

    def poll(self, timeout: float, max_records: int | None = None) -> list[IncomingRecord]:
        return _poll(self._client, timeout, max_records)

    def lag(self) -> dict[TopicPartition, int]:
        with _boundary():
            ends = self._client.end_offsets(self._parts)
            return {
                TopicPartition(tp.topic, tp.partition): max(0, ends[tp] - self._client.position(tp))
                for tp in self._parts
            }

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._client.close()
        except Exception:
            log.warning("closing a Kafka follower failed", exc_info=True)


def ensure_topics(settings: KafkaSettings) -> list[str]:
    """Create the spans, dead-letter, feedback, intents and (compacted) controls topics of
    ``settings`` that are missing."""
    with KafkaTransport(settings).admin() as admin:
        return admin.ensure_topics()
