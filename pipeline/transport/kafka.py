"""``KafkaTransport``: the transport on kafka-python.

This is the only module of AgentLedger that imports ``kafka``. Every call into kafka-python
runs inside ``_boundary``, which turns whatever it raises into the hierarchy of
``transport/base.py`` (``translate``): a size refusal into RecordTooLarge, a lost group
membership at commit into CommitFailed, anything else into TransportUnavailable. A client
that cannot bootstrap says which brokers, security and user it tried and what the likely
cause is (``diagnose``).

Producers are idempotent with acks=all and the configured compression; subscriptions commit
only explicitly, start at the earliest record of a partition the group never committed, and
join their group only once the topic's partitions are known. A follower is a group-less
consumer assigned every partition of its topic and sought to the beginning.

Every client gets the same security arguments (``security_config``): the SASL mechanism and
credentials, and one ``ssl.SSLContext`` built from the ``ssl_*`` settings when the transport is
made, so that an unreadable certificate or a wrong key password fails at start-up rather than
on every connection attempt. Passwords stay out of logs: kafka-python logs its configuration
and, at DEBUG, every request and the bytes it sends (a PLAIN login in clear), so the SASL
password goes to it as a string with a masked repr and a filter on its loggers masks it in
their records; the key password never reaches kafka-python.
"""

from __future__ import annotations

import logging
import socket
import ssl
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


_AUTH_ERRORS = (ke.SaslAuthenticationFailedError, ke.UnsupportedSaslMechanismError)
_BOOTSTRAP_ERRORS = (ke.KafkaTimeoutError, getattr(ke, "NoBrokersAvailable", ke.KafkaTimeoutError))
"""What making a client raises when no broker answered (kafka-python 2.x: NoBrokersAvailable)."""
_HAS_BOOTSTRAP_TIMEOUT = all(
    "bootstrap_timeout_ms" in c.DEFAULT_CONFIG
    for c in (KafkaProducer, KafkaConsumer, KafkaAdminClient)
)
"""kafka-python 3 bounds a client's first connection with ``bootstrap_timeout_ms``; 2.x has no
such argument (and refuses unknown ones)."""


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
    text = text if text.startswith(name) else f"{name}: {text}"
    if isinstance(exc, _AUTH_ERRORS):
        return TransportUnavailable(f"Kafka authentication failed: {text}")
    return TransportUnavailable(text)


@contextmanager
def _boundary(settings: KafkaSettings | None = None) -> Iterator[None]:
    """Translate what kafka-python raises. With ``settings`` (making a client), a failed
    bootstrap also says what the client tried and why it may have failed (``diagnose``)."""
    try:
        yield
    except Exception as exc:
        err = translate(exc)
        if err is exc:
            raise
        if settings is not None and isinstance(exc, _BOOTSTRAP_ERRORS):
            err = TransportUnavailable(f"{err}: {diagnose(settings)}")
        raise err from exc


def diagnose(settings: KafkaSettings, timeout_s: float = 2.0) -> str:
    """Why a client of ``settings`` may have found no broker: the brokers, the security, and
    whether one of them accepts TCP connections at all.

    kafka-python 3.0 (3.0.12 checked) reports a refused SASL login or TLS handshake as a
    disconnect and retries until its bootstrap times out, so "Unable to bootstrap" is all it
    says. A broker that accepts connections narrows that down to the security settings.
    """
    protocol = settings.security_protocol
    tried = f"Kafka {settings.bootstrap_servers} over {protocol}"
    if settings.sasl_mechanism:
        tried += f", SASL {settings.sasl_mechanism} as {settings.sasl_username!r}"
    if settings.ssl_certfile:
        tried += f", client certificate {settings.ssl_certfile}"
    reachable = next(
        (s for s in (settings.bootstrap_servers or "").split(",") if _accepts(s, timeout_s)), None
    )
    if reachable is None:
        return f"{tried}; no broker accepts connections"
    causes = []
    if protocol.startswith("SASL_"):
        causes.append(
            "SASL authentication failed (AGENTLEDGER_KAFKA_SASL_USERNAME, _PASSWORD, _MECHANISM?)"
        )
    if protocol.endswith("SSL"):
        causes.append("the TLS handshake failed (AGENTLEDGER_KAFKA_SSL_CAFILE, _CERTFILE?)")
    if protocol == "PLAINTEXT":
        causes.append("the listener requires TLS or SASL (AGENTLEDGER_KAFKA_SECURITY_PROTOCOL?)")
    causes.append("no answer within AGENTLEDGER_KAFKA_CONNECT_TIMEOUT_S")
    return f"{tried}; {reachable.strip()} accepts connections, so likely: {', or '.join(causes)}"


def _accepts(server: str, timeout_s: float) -> bool:
    host, _, port = server.strip().rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
            return True
    except (OSError, ValueError):
        return False


class _Masked(str):
    """A password as kafka-python takes it, a str, whose repr does not show it (kafka-python's
    admin client logs its configuration at DEBUG)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "'**********'"


class _RedactSecrets(logging.Filter):
    """Masks the SASL passwords in kafka-python's DEBUG records: it logs each request and the
    raw bytes it sends, and a PLAIN login carries the password in clear."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def add(self, secret: str) -> None:
        if secret:
            self.secrets.update({secret, repr(secret.encode())[2:-1]})  # as text, as in bytes

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            text = masked = record.getMessage()
            for secret in self.secrets:
                masked = masked.replace(secret, "**********")
            if masked != text:
                record.msg, record.args = masked, None
        return True


def _redacting_filter() -> _RedactSecrets:
    """One filter on every kafka-python logger (a logger's filters do not apply to its
    children's records); those that log requests, bytes or configuration by name, in case
    they were not imported yet."""
    redact = _RedactSecrets()
    loggers = {n for n in logging.root.manager.loggerDict if n.split(".")[0] == "kafka"}
    for name in loggers | {"kafka.admin.client", "kafka.net.connection", "kafka.protocol.parser"}:
        logging.getLogger(name).addFilter(redact)
    return redact


_REDACT = _redacting_filter()


def ssl_context(settings: KafkaSettings) -> ssl.SSLContext:
    """The TLS client context of ``settings``, as kafka-python builds one per connection.

    Raises ValueError naming the setting whose file cannot be used.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.check_hostname = settings.ssl_check_hostname
    try:
        if settings.ssl_cafile:
            ctx.load_verify_locations(cafile=settings.ssl_cafile)
        else:
            ctx.load_default_certs()
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(
            f"AGENTLEDGER_KAFKA_SSL_CAFILE={settings.ssl_cafile}: no CA certificates ({exc})"
        ) from exc
    if settings.ssl_certfile:
        password = settings.ssl_password.get_secret_value() if settings.ssl_password else None
        try:
            ctx.load_cert_chain(settings.ssl_certfile, settings.ssl_keyfile, password)
        except (OSError, ssl.SSLError) as exc:
            raise ValueError(
                f"AGENTLEDGER_KAFKA_SSL_CERTFILE={settings.ssl_certfile}"
                f" (key: {settings.ssl_keyfile or 'in the same file'}): cannot load the client"
                f" certificate and key; wrong or missing AGENTLEDGER_KAFKA_SSL_PASSWORD? ({exc})"
            ) from exc
    return ctx


def security_config(
    settings: KafkaSettings, context: ssl.SSLContext | None = None
) -> dict[str, Any]:
    """kafka-python's security and bootstrap arguments for ``settings``, the same for every
    client. ``context``: the TLS context (default: a new one from ``settings`` when the
    protocol uses TLS). Raises ValueError when a TLS file cannot be used.
    """
    config: dict[str, Any] = {"security_protocol": settings.security_protocol}
    if _HAS_BOOTSTRAP_TIMEOUT:
        config["bootstrap_timeout_ms"] = int(settings.connect_timeout_s * 1000)
    if settings.security_protocol.startswith("SASL_"):
        password = settings.sasl_password.get_secret_value() if settings.sasl_password else ""
        _REDACT.add(password)
        config["sasl_mechanism"] = settings.sasl_mechanism
        config["sasl_plain_username"] = settings.sasl_username
        config["sasl_plain_password"] = _Masked(password)
    if settings.security_protocol.endswith("SSL"):
        config["ssl_context"] = context or ssl_context(settings)
    return config


def producer_config(
    settings: KafkaSettings, *, linger_ms: int = 2, security: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    delivery_ms = int(settings.produce_timeout_s * 1000)
    return {
        **(security_config(settings) if security is None else security),
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


class KafkaAdmin:
    """``KafkaAdminClient`` (and a group-less consumer for end offsets) behind ``Admin``."""

    def __init__(
        self,
        settings: KafkaSettings,
        *,
        timeout: float = 10.0,
        security: Mapping[str, Any] | None = None,
    ) -> None:
        self._settings = settings
        self._security = security_config(settings) if security is None else security
        self._timeout_ms = int(timeout * 1000)
        self._offsets: Any = None  # a group-less consumer for end offsets, made on first use
        with _boundary(settings):
            self._client: Any = KafkaAdminClient(
                **self._security,
                bootstrap_servers=settings.bootstrap_servers,
                client_id=settings.client_id,
                request_timeout_ms=self._timeout_ms,
            )

    def ensure_topics(
        self, topics: Sequence[str] | None = None, *, compacted: bool = False
    ) -> list[str]:
        s = self._settings
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
        wanted = list(topics)
        configs = {"max.message.bytes": str(s.max_record_bytes + 64 * 1024)}
        if compacted:  # the latest record per key is kept for good: no time retention
            configs["cleanup.policy"] = "compact"
        else:
            configs["retention.ms"] = str(s.retention_ms)
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
        """Kept open between calls (a metrics endpoint asks every few seconds): its end-offsets
        consumer too, so a query costs two requests rather than a new connection."""
        with _boundary(self._settings):
            if self._offsets is None:
                self._offsets = KafkaConsumer(
                    **self._security,
                    bootstrap_servers=self._settings.bootstrap_servers,
                    client_id=self._settings.client_id,
                    request_timeout_ms=self._timeout_ms,
                )
            partitions = self._offsets.partitions_for_topic(topic) or set()
            tps = [KafkaTopicPartition(topic, p) for p in sorted(partitions)]
            ends = self._offsets.end_offsets(tps)
            committed = self._client.list_group_offsets({group_id: None}).get(group_id, {})
        rows = []
        for tp in tps:
            done = committed.get(tp)
            offset = done.offset if done is not None and done.offset >= 0 else 0
            rows.append(PartitionLag(topic, tp.partition, offset, ends[tp]))
        return rows

    def close(self) -> None:
        for client in (self._offsets, self._client):
            try:
                if client is not None:
                    client.close()
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
    """Create the spans, dead-letter, feedback, intents and (compacted) controls topics of
    ``settings`` that are missing."""
    with KafkaTransport(settings).admin() as admin:
        return admin.ensure_topics()
