"""What every kafka-python client is made with: its security arguments, and the error boundary.

Every call into kafka-python runs inside ``_boundary``, which turns whatever it raises into the
hierarchy of ``transport/base.py`` (``translate``): a size refusal into RecordTooLarge, a lost
group membership at commit into CommitFailed, anything else into TransportUnavailable. A client
that cannot bootstrap says which brokers, security and user it tried and what the likely cause
is (``diagnose``).

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
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka import errors as ke

from agentledger.pipeline.settings import KafkaSettings
from agentledger.pipeline.transport.base import (
    CommitFailed,
    RecordTooLarge,
    TransportError,
    TransportUnavailable,
)

__all__ = ["diagnose", "producer_config", "security_config", "ssl_context", "translate"]

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
