"""Kafka security: the settings, and a real broker that requires SASL.

The broker is deploy/kafka/kafka.sh with ``KAFKA_SECURITY=sasl_plaintext`` (PLAIN and SCRAM on
its one client listener), started for this module on free loopback ports with its own data
dir; if it cannot start, the tests that need it fail. The settings tests need no broker.
"""

from __future__ import annotations

import logging
import secrets
import ssl
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from pydantic import ValidationError

from agentledger.pipeline.consumers.spans import SpanConsumer
from agentledger.pipeline.normalize import OtlpNormalizer
from agentledger.pipeline.settings import KafkaSettings, PipelineSettings
from agentledger.pipeline.sinks.base import IngestBatch
from agentledger.pipeline.sinks.kafka import KafkaSink
from agentledger.pipeline.store.embedded import EmbeddedStore
from agentledger.pipeline.transport import kafka as kafka_transport
from agentledger.pipeline.transport import kafka_admin
from agentledger.pipeline.transport.base import TransportUnavailable
from agentledger.pipeline.transport.kafka import KafkaTransport, security_config
from bench.traffic import SPANS_PER_RUN, requests
from tests.kafka.conftest import Broker, free_port
from tests.kafka.test_kafka_path import RunningConsumer, wait_for

PASSWORDS = {"alice": secrets.token_urlsafe(12), "bob": secrets.token_urlsafe(12)}


@dataclass
class SaslBroker(Broker):
    """A kafka.sh broker whose client listener is SASL_PLAINTEXT for ``PASSWORDS``' users."""

    def _env(self) -> dict[str, str]:
        users = " ".join(f"{name}:{password}" for name, password in PASSWORDS.items())
        return {**super()._env(), "KAFKA_SECURITY": "sasl_plaintext", "KAFKA_SASL_USERS": users}


@pytest.fixture(scope="module")
def sasl_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SaslBroker]:
    broker = SaslBroker(free_port(), free_port(), tmp_path_factory.mktemp("kafka-sasl"))
    broker.run("start")  # fails the tests (pytest.fail) with kafka.sh's output if it cannot
    yield broker
    broker.run("stop")


def sasl_settings(
    broker: Broker, mechanism: str, user: str, password: str, **more: Any
) -> KafkaSettings:
    tag = uuid.uuid4().hex[:10]
    return KafkaSettings(
        bootstrap_servers=broker.bootstrap,
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism=mechanism,
        sasl_username=user,
        sasl_password=password,
        spans_topic=f"t{tag}.spans",
        dead_letter_topic=f"t{tag}.spans.dlq",
        feedback_topic=f"t{tag}.feedback",
        intents_topic=f"t{tag}.intents",
        partitions=2,
        group_id=f"g{tag}",
        max_record_bytes=1024 * 1024,
        produce_timeout_s=10,
        **more,
    )


# -- against the SASL broker -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mechanism", "user"),
    [("SCRAM-SHA-256", "alice"), ("SCRAM-SHA-512", "bob"), ("PLAIN", "alice")],
)
def test_spans_go_through_a_broker_that_requires_sasl(
    sasl_broker: SaslBroker,
    mechanism: str,
    user: str,
    pipeline_settings: PipelineSettings,
    store: EmbeddedStore,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)  # kafka-python logs requests and raw bytes at DEBUG
    settings = sasl_settings(sasl_broker, mechanism, user, PASSWORDS[user])
    transport = KafkaTransport(settings)
    request = next(requests(3, runs_per_request=3, seed=41))
    sink = KafkaSink(transport)  # the collector's sink: creates the topics, then produces
    try:
        sink.write(IngestBatch("default", time.time_ns(), request, 3 * SPANS_PER_RUN))
        assert sink.records_sent == 3  # one record per trace, each acknowledged (acks=all)
    finally:
        sink.close()

    consumer = SpanConsumer(transport, pipeline_settings, store, OtlpNormalizer())
    with RunningConsumer(consumer):
        wait_for(
            lambda: store.query_scalar("SELECT count() FROM spans") >= 3 * SPANS_PER_RUN,
            timeout=60,
            what="spans stored",
        )
    assert store.query_scalar("SELECT uniqExact(span_id) FROM spans") == 3 * SPANS_PER_RUN
    assert PASSWORDS[user] not in caplog.text


@pytest.mark.parametrize(
    ("mechanism", "client"),
    [
        ("SCRAM-SHA-256", "sink"),
        ("SCRAM-SHA-256", "producer"),
        ("SCRAM-SHA-256", "subscription"),
        ("PLAIN", "sink"),
    ],
)
def test_a_wrong_password_fails_in_bounded_time_naming_authentication(
    sasl_broker: SaslBroker, mechanism: str, client: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = secrets.token_urlsafe(12)
    settings = sasl_settings(sasl_broker, mechanism, "alice", wrong, connect_timeout_s=3)
    transport = KafkaTransport(settings)
    make = {
        "sink": lambda: KafkaSink(transport),
        "producer": transport.producer,
        "subscription": lambda: transport.subscribe(
            settings.spans_topic, group_id=settings.group_id, client_id="t"
        ),
    }[client]
    started = time.monotonic()
    with pytest.raises(TransportUnavailable) as failed:
        make()
    elapsed = time.monotonic() - started
    assert elapsed < settings.connect_timeout_s + 10  # + the reachability check, a slow machine
    message = str(failed.value)
    assert "authentication failed" in message, message
    assert f"{mechanism} as 'alice'" in message and sasl_broker.bootstrap in message
    for text in (message, caplog.text, repr(settings), str(settings), repr(transport)):
        assert wrong not in text


def test_a_client_without_sasl_is_told_to_check_the_security_protocol(
    sasl_broker: SaslBroker,
) -> None:
    settings = KafkaSettings(bootstrap_servers=sasl_broker.bootstrap, connect_timeout_s=2)
    with pytest.raises(TransportUnavailable, match="AGENTLEDGER_KAFKA_SECURITY_PROTOCOL"):
        KafkaTransport(settings).producer()


# -- settings and client configuration (no broker) -------------------------------------------


@pytest.mark.unit
def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {
        "AGENTLEDGER_KAFKA_SECURITY_PROTOCOL": "sasl_ssl",
        "AGENTLEDGER_KAFKA_SASL_MECHANISM": "scram-sha-512",
        "AGENTLEDGER_KAFKA_SASL_USERNAME": "svc",
        "AGENTLEDGER_KAFKA_SASL_PASSWORD": "s3cr3t-from-env",
        "AGENTLEDGER_KAFKA_SSL_CHECK_HOSTNAME": "false",
        "AGENTLEDGER_KAFKA_SSL_KEYFILE": "",  # an empty template value means unset
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    s = KafkaSettings()
    assert (s.security_protocol, s.sasl_mechanism, s.sasl_username) == (
        "SASL_SSL",
        "SCRAM-SHA-512",
        "svc",
    )
    assert s.sasl_password is not None
    assert s.sasl_password.get_secret_value() == "s3cr3t-from-env"
    assert s.ssl_check_hostname is False and s.ssl_keyfile is None


@pytest.mark.unit
def test_passwords_never_show(caplog: pytest.LogCaptureFixture, tmp_path: Path) -> None:
    cert = tmp_path / "client.pem"
    cert.write_text("not used here")
    s = KafkaSettings(
        bootstrap_servers="k:9093",
        security_protocol="SASL_SSL",
        sasl_mechanism="PLAIN",
        sasl_username="svc",
        sasl_password="sasl-pw-123",
        ssl_certfile=str(cert),
        ssl_password="key-pw-456",
    )
    caplog.set_level(logging.DEBUG)
    logging.getLogger("test").warning("settings: %s / %r", s, s)
    config = security_config(s, context=ssl.create_default_context())
    # what kafka-python logs at DEBUG: its configuration, the requests, the bytes sent
    logging.getLogger("kafka.admin.client").debug("Starting with configuration: %s", config)
    logging.getLogger("kafka.protocol.parser").debug("Send: %r", b"svc\x00svc\x00sasl-pw-123")
    for text in (repr(s), str(s), s.model_dump_json(), caplog.text, repr(config), str(config)):
        assert "sasl-pw-123" not in text and "key-pw-456" not in text
    assert "Send: b'svc\\x00svc\\x00**********'" in caplog.text  # logged, masked
    assert config["sasl_plain_password"] == "sasl-pw-123"  # kafka-python still gets it


@pytest.mark.unit
@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            {"security_protocol": "SASL_SSL", "sasl_username": "u", "sasl_password": "pw-1"},
            "SECURITY_PROTOCOL=SASL_SSL needs AGENTLEDGER_KAFKA_SASL_MECHANISM",
        ),
        (
            {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "SCRAM-SHA-256"},
            "needs AGENTLEDGER_KAFKA_SASL_USERNAME, AGENTLEDGER_KAFKA_SASL_PASSWORD",
        ),
        (
            {"sasl_mechanism": "PLAIN", "sasl_username": "u", "sasl_password": "pw-1"},
            "SECURITY_PROTOCOL=PLAINTEXT does not use SASL",
        ),
        (
            {
                "security_protocol": "SASL_PLAINTEXT",
                "sasl_mechanism": "PLAIN",
                "sasl_username": "u",
                "sasl_password": "pw-1",
                "ssl_cafile": "/etc/hostname",
            },
            "SECURITY_PROTOCOL=SASL_PLAINTEXT does not use TLS",
        ),
        (
            {"security_protocol": "SSL", "ssl_keyfile": "/etc/hostname"},
            "SSL_KEYFILE needs AGENTLEDGER_KAFKA_SSL_CERTFILE",
        ),
        (
            {"security_protocol": "SSL", "ssl_cafile": "/no/such/ca.pem"},
            "AGENTLEDGER_KAFKA_SSL_CAFILE: cannot read /no/such/ca.pem",
        ),
        ({"security_protocol": "TLS"}, "'PLAINTEXT', 'SSL', 'SASL_PLAINTEXT' or 'SASL_SSL'"),
        (
            {
                "security_protocol": "SASL_SSL",
                "sasl_mechanism": "GSSAPI",
                "sasl_username": "u",
                "sasl_password": "pw-1",
            },
            "'PLAIN', 'SCRAM-SHA-256' or 'SCRAM-SHA-512'",
        ),
    ],
)
def test_combinations_that_cannot_work_fail_at_start_up(
    settings: dict[str, str], message: str
) -> None:
    with pytest.raises(ValidationError) as failed:
        KafkaSettings(bootstrap_servers="k:9092", **settings)
    assert message in str(failed.value)
    assert "pw-1" not in str(failed.value)  # hide_input_in_errors


@pytest.mark.unit
@pytest.mark.parametrize("field", ["ssl_cafile", "ssl_certfile"])
def test_an_unusable_tls_file_fails_when_the_transport_is_made(field: str, tmp_path: Path) -> None:
    bad = tmp_path / "bad.pem"
    bad.write_text("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    settings = KafkaSettings(
        bootstrap_servers="k:9093", security_protocol="SSL", **{field: str(bad)}
    )
    with pytest.raises(ValueError, match=f"AGENTLEDGER_KAFKA_{field.upper()}={bad}"):
        KafkaTransport(settings)


@pytest.mark.unit
def test_every_client_gets_the_security_arguments(monkeypatch: pytest.MonkeyPatch) -> None:
    """Producer, subscription, admin and the admin's group-less consumer: one TLS context."""
    made: list[tuple[str, dict[str, Any]]] = []

    def fake(kind: str) -> Any:
        def make(*args: Any, **kwargs: Any) -> Any:
            made.append((kind, kwargs))
            client = mock.MagicMock()
            client.partitions_for_topic.return_value = {0}
            client.end_offsets.side_effect = lambda tps: dict.fromkeys(tps, 0)
            client.list_group_offsets.return_value = {}
            return client

        return make

    for module in (kafka_transport, kafka_admin):  # the admin client is made in its own module
        for kind in ("KafkaProducer", "KafkaConsumer", "KafkaAdminClient"):
            if hasattr(module, kind):
                monkeypatch.setattr(module, kind, fake(kind))
    settings = KafkaSettings(
        bootstrap_servers="k:9093",
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-256",
        sasl_username="svc",
        sasl_password="pw-2",
        ssl_check_hostname=False,
        connect_timeout_s=7,
    )
    transport = KafkaTransport(settings)
    transport.producer()
    transport.subscribe("spans", group_id="g", client_id="c")
    with transport.admin() as admin:
        admin.group_lag("g", "spans")
    assert [kind for kind, _ in made] == [
        "KafkaProducer",
        "KafkaConsumer",
        "KafkaAdminClient",
        "KafkaConsumer",
    ]
    contexts = {id(kwargs["ssl_context"]) for _, kwargs in made}
    assert len(contexts) == 1
    for _, kwargs in made:
        assert kwargs["security_protocol"] == "SASL_SSL"
        assert kwargs["sasl_mechanism"] == "SCRAM-SHA-256"
        assert (kwargs["sasl_plain_username"], kwargs["sasl_plain_password"]) == ("svc", "pw-2")
        assert kwargs["bootstrap_timeout_ms"] == 7000
        context = kwargs["ssl_context"]
        assert isinstance(context, ssl.SSLContext) and context.check_hostname is False
        assert context.verify_mode == ssl.CERT_REQUIRED
        assert "ssl_password" not in kwargs
