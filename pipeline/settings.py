"""Pipeline, store and Kafka configuration: argument, then ``AGENTLEDGER_*`` environment, then default."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from agentledger.schemas.topics import DEAD_LETTER_TOPIC, FEEDBACK_TOPIC, INTENTS_TOPIC, SPANS_TOPIC

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


class KafkaSettings(BaseSettings):
    """The Kafka transport between collector and pipeline."""

    model_config = SettingsConfigDict(env_prefix="AGENTLEDGER_KAFKA_", extra="ignore")

    bootstrap_servers: str | None = None
    """``host:port[,host:port]``; unset = no Kafka (embedded mode)."""
    spans_topic: str = SPANS_TOPIC
    dead_letter_topic: str = DEAD_LETTER_TOPIC
    feedback_topic: str = FEEDBACK_TOPIC
    intents_topic: str = INTENTS_TOPIC
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
