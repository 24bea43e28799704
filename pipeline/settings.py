"""Pipeline, store and Kafka configuration: argument, then ``AGENTLEDGER_*`` environment, then default."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from agentledger.schemas.topics import (
    CONTROLS_TOPIC,
    DEAD_LETTER_TOPIC,
    FEEDBACK_TOPIC,
    INTENTS_TOPIC,
    LOGS_TOPIC,
    SPANS_TOPIC,
)

if TYPE_CHECKING:
    from agentledger.pipeline.derive.ledger import Ledger
    from agentledger.pipeline.normalize import Normalizer
    from agentledger.pipeline.store import Store

__all__ = ["StoreSettings", "KafkaSettings", "PipelineSettings"]


class StoreSettings(BaseSettings):
    """Where the rows go: a ClickHouse server when ``clickhouse_url`` is set, else embedded."""

    model_config = SettingsConfigDict(env_prefix="AGENTLEDGER_", extra="ignore")

    clickhouse_url: str | None = None
    """``http(s)://user:password@host:port`` of a ClickHouse server; unset = embedded chDB."""
    clickhouse_cluster: str | None = None
    """Cluster name: apply the cluster variant of the migrations (Replicated + Distributed, ON CLUSTER)."""
    database: str = Field("agentledger", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    data_dir: str = ".agentledger"
    """Embedded store directory (one process owns it at a time)."""
    price_table: str | None = None
    """JSON file of model prices merged over the shipped table."""
    normalizer: Literal["auto", "native", "python"] = "auto"
    """OTLP normalizer: the compiled one (``agentledger-native``) when installed, or the one named."""
    ledger_key: SecretStr | None = None
    """HMAC key that signs ledger checkpoints (unset: checkpoints are chained but unsigned)."""
    ledger_key_id: str = "default"
    """Name of the ledger key, recorded on each checkpoint (for rotation)."""

    def make_normalizer(self) -> Normalizer:
        """The normalizer this configuration asks for, with its price table."""
        from agentledger.pipeline.normalize.native import make_normalizer
        from agentledger.schemas import PriceTable

        return make_normalizer(PriceTable.load(self.price_table), self.normalizer)

    def ledger(self, store: Store) -> Ledger:
        """The ledger for ``store`` with this configuration's signing key."""
        from agentledger.pipeline.derive.ledger import Ledger

        key = self.ledger_key.get_secret_value().encode() if self.ledger_key else None
        return Ledger(store, key=key, key_id=self.ledger_key_id if key else "")


SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]

_SASL_FIELDS = ("sasl_mechanism", "sasl_username", "sasl_password")
_SSL_FIELDS = ("ssl_cafile", "ssl_certfile", "ssl_keyfile", "ssl_password")


class KafkaSettings(BaseSettings):
    """The Kafka transport between collector and pipeline.

    Security: ``security_protocol`` says whether the connections use TLS (``SSL``,
    ``SASL_SSL``) and SASL (``SASL_PLAINTEXT``, ``SASL_SSL``); the ``sasl_*`` and ``ssl_*``
    settings only apply to a protocol that uses them, and a combination that cannot work
    fails at start-up. Passwords are ``SecretStr``, and a validation error never echoes the
    input (``hide_input_in_errors``: the model-level checks would print every value).
    """

    model_config = SettingsConfigDict(
        env_prefix="AGENTLEDGER_KAFKA_", extra="ignore", hide_input_in_errors=True
    )

    bootstrap_servers: str | None = None
    """``host:port[,host:port]``; unset = no Kafka (embedded mode)."""
    spans_topic: str = SPANS_TOPIC
    logs_topic: str = LOGS_TOPIC
    """OTLP log records (``POST /v1/logs``), beside the spans."""
    dead_letter_topic: str = DEAD_LETTER_TOPIC
    feedback_topic: str = FEEDBACK_TOPIC
    intents_topic: str = INTENTS_TOPIC
    controls_topic: str = CONTROLS_TOPIC
    """Compacted topic of run controls every collector replica follows (created compacted)."""
    partitions: int = Field(6, ge=1)
    replication_factor: int = Field(1, ge=1)
    retention_ms: int = Field(7 * 24 * 3600 * 1000, ge=-1)
    compression: Literal["lz4", "zstd", "gzip", "none"] = "lz4"
    max_record_bytes: int = Field(8 * 1024 * 1024, gt=0)
    """Largest record the producer sends; must not exceed the broker's message.max.bytes."""
    produce_timeout_s: float = Field(30.0, gt=0)
    """How long a request waits for broker acknowledgements before answering 503."""
    group_id: str = "agentledger-pipeline"
    client_id: str = "agentledger"
    connect_timeout_s: float = Field(30.0, gt=0)
    """How long making a producer, consumer or admin client waits to reach a broker (and log
    in) before it fails."""

    security_protocol: SecurityProtocol = "PLAINTEXT"
    """``PLAINTEXT``, ``SSL`` (TLS; with a client certificate: mTLS), ``SASL_PLAINTEXT`` or
    ``SASL_SSL`` (SASL over TLS: the usual managed-Kafka setup)."""
    sasl_mechanism: SaslMechanism | None = None
    """``PLAIN``, ``SCRAM-SHA-256`` or ``SCRAM-SHA-512``; required with a SASL protocol."""
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: str | None = None
    """PEM file of the CAs that signed the brokers' certificates (unset: the system's CAs)."""
    ssl_certfile: str | None = None
    """PEM file of the client certificate (mTLS); may hold the private key too."""
    ssl_keyfile: str | None = None
    """PEM file of the client certificate's private key, if not in ``ssl_certfile``."""
    ssl_password: SecretStr | None = None
    """Password of an encrypted private key."""
    ssl_check_hostname: bool = True
    """Check that a broker's certificate names the host connected to."""

    @field_validator("security_protocol", "sasl_mechanism", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator(
        "security_protocol",
        "sasl_mechanism",
        "sasl_username",
        "sasl_password",
        "ssl_cafile",
        "ssl_certfile",
        "ssl_keyfile",
        "ssl_password",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: Any, info: ValidationInfo) -> Any:
        """An empty variable (a common template placeholder) means unset."""
        if isinstance(value, str) and not value.strip():
            return "PLAINTEXT" if info.field_name == "security_protocol" else None
        return value

    @model_validator(mode="after")
    def _check_security(self) -> KafkaSettings:
        protocol = self.security_protocol
        env = "AGENTLEDGER_KAFKA_"
        if protocol.startswith("SASL_"):
            missing = [f"{env}{name.upper()}" for name in _SASL_FIELDS if not getattr(self, name)]
            if missing:
                raise ValueError(f"{env}SECURITY_PROTOCOL={protocol} needs {', '.join(missing)}")
        else:
            stray = [f"{env}{name.upper()}" for name in _SASL_FIELDS if getattr(self, name)]
            if stray:
                raise ValueError(
                    f"{', '.join(stray)} set, but {env}SECURITY_PROTOCOL={protocol} does not use "
                    "SASL (use SASL_SSL or SASL_PLAINTEXT)"
                )
        if not protocol.endswith("SSL"):
            stray = [f"{env}{name.upper()}" for name in _SSL_FIELDS if getattr(self, name)]
            if stray:
                raise ValueError(
                    f"{', '.join(stray)} set, but {env}SECURITY_PROTOCOL={protocol} does not use "
                    "TLS (use SSL or SASL_SSL)"
                )
            return self
        if self.ssl_keyfile and not self.ssl_certfile:
            raise ValueError(f"{env}SSL_KEYFILE needs {env}SSL_CERTFILE (the client certificate)")
        if self.ssl_password and not self.ssl_certfile:
            raise ValueError(f"{env}SSL_PASSWORD needs {env}SSL_CERTFILE (the client certificate)")
        for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
            path = getattr(self, name)
            if path and not os.access(path, os.R_OK):
                raise ValueError(f"{env}{name.upper()}: cannot read {path}")
        return self


class PipelineSettings(BaseSettings):
    """The consumer that moves spans from Kafka into the store."""

    model_config = SettingsConfigDict(env_prefix="AGENTLEDGER_", extra="ignore")

    batch_max_spans: int = Field(20_000, gt=0)
    """A batch closes at this many spans..."""
    batch_max_seconds: float = Field(1.0, gt=0)
    """...or after this long, whichever comes first."""
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(9464, ge=0, le=65535)
    """Prometheus text metrics at ``/metrics`` (0 = off)."""
    retry_max_seconds: float = Field(30.0, gt=0)
    """Longest back-off between retries while the store is unavailable."""
    default_tenant: str = "default"
    """Tenant of records that carry no ``agentledger-tenant`` header (e.g. from an OpenTelemetry Collector)."""
    gc_threshold: int = Field(50_000, ge=0)
    """Allocations between the garbage collector's young-generation passes in the pipeline process
    (0: Python's default, 700, made for interactive programs). The consumer allocates and frees
    per-record objects by the hundred thousand a batch; at 700 the collector runs thousands of
    times a batch and promotes batch-lived objects into full collections. Objects alive once
    start-up is over are also frozen out of collections (``gc.freeze``)."""
