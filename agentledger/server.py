"""The embedded server: collector + normalizer + embedded ClickHouse in one process.

This is where the embedded stages are wired, and nowhere else. A request is
acknowledged only after its rows are in the store.
"""

from __future__ import annotations

import gc
import logging
import threading
import time

from fastapi import FastAPI

from agentledger.collector import CollectorSettings, create_app
from agentledger.collector.auth import Authenticator
from agentledger.pipeline.settings import KafkaSettings, PipelineSettings, StoreSettings
from agentledger.pipeline.sinks.embedded import EmbeddedSink
from agentledger.pipeline.store import Store, migrate, open_store
from agentledger.pipeline.store.writer import StoreWriter

__all__ = [
    "AppServer",
    "EmbeddedServer",
    "build_embedded_app",
    "build_collector_app",
    "PipelineRunner",
]

log = logging.getLogger(__name__)


def build_embedded_app(
    collector: CollectorSettings, store_settings: StoreSettings, store: Store | None = None
) -> FastAPI:
    """The collector app writing through the normalizer into the store (opened if not given)."""
    Authenticator(
        collector.key_table(), no_auth=collector.no_auth, default_tenant=collector.default_tenant
    )
    own = store is None
    if store is None:
        store = open_store(
            clickhouse_url=store_settings.clickhouse_url,
            data_dir=store_settings.data_dir,
            database=store_settings.database,
        )
    migrate(store, cluster=store_settings.clickhouse_cluster)
    normalizer = store_settings.make_normalizer()
    sink = EmbeddedSink(
        store, normalizer, writer=StoreWriter(store, ledger=store_settings.ledger(store))
    )
    from agentledger.pipeline.derive import start_background_jobs

    stop_jobs = start_background_jobs(store)  # usage rollup + anomaly detection on an interval

    def shutdown() -> None:
        stop_jobs()
        if own:
            store.close()

    return create_app(collector, sink, store, on_shutdown=shutdown)


class AppServer:
    """Runs an ASGI app under uvicorn in a background thread (demo, tests, notebooks)."""

    def __init__(self, app: FastAPI, host: str = "127.0.0.1", port: int = 0) -> None:
        import uvicorn

        self.app = app
        config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, name="agentledger-server", daemon=True
        )

    @property
    def url(self) -> str:
        sock = self._server.servers[0].sockets[0]
        host, port = sock.getsockname()[:2]
        return f"http://{host}:{port}"

    def start(self, timeout: float = 30) -> AppServer:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=30)

    def __enter__(self) -> AppServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class EmbeddedServer(AppServer):
    """The embedded app (collector + normalizer + store) in a background thread."""

    def __init__(
        self,
        collector: CollectorSettings | None = None,
        store_settings: StoreSettings | None = None,
        store: Store | None = None,
    ) -> None:
        self.collector = collector or CollectorSettings(no_auth=True, port=0)
        app = build_embedded_app(self.collector, store_settings or StoreSettings(), store)
        super().__init__(app, self.collector.host, self.collector.port)

    @property
    def store(self) -> Store:
        return self.app.state.store  # type: ignore[no-any-return]


def build_collector_app(
    collector: CollectorSettings, kafka: KafkaSettings, store_settings: StoreSettings
) -> FastAPI:
    """The production collector: OTLP in, Kafka out (acks=all). When a ClickHouse URL is
    configured it also serves the read API from that store."""
    from agentledger.pipeline.sinks.kafka import KafkaSink

    Authenticator(
        collector.key_table(), no_auth=collector.no_auth, default_tenant=collector.default_tenant
    )
    sink = KafkaSink(kafka)
    store = None
    if store_settings.clickhouse_url:
        store = open_store(
            clickhouse_url=store_settings.clickhouse_url, database=store_settings.database
        )
        migrate(
            store, cluster=store_settings.clickhouse_cluster
        )  # the read API and controls need the tables
    return create_app(
        collector,
        sink,
        store,
        on_shutdown=store.close if store is not None else None,
        store_gates_readiness=False,
    )


class PipelineRunner:
    """The pipeline process: Kafka consumer into the store, with its metrics endpoint."""

    def __init__(
        self,
        kafka: KafkaSettings,
        pipeline: PipelineSettings,
        store_settings: StoreSettings,
        *,
        store: Store | None = None,
    ) -> None:
        from agentledger.pipeline.consumers.metrics import MetricsServer, consumer_status
        from agentledger.pipeline.consumers.spans import SpanConsumer

        self._own_store = store is None
        self.store = store or open_store(
            clickhouse_url=store_settings.clickhouse_url,
            data_dir=store_settings.data_dir,
            database=store_settings.database,
        )
        migrate(self.store, cluster=store_settings.clickhouse_cluster)
        normalizer = store_settings.make_normalizer()
        self.consumer = SpanConsumer(
            kafka,
            pipeline,
            self.store,
            normalizer,
            default_tenant=pipeline.default_tenant,
            writer=StoreWriter(self.store, ledger=store_settings.ledger(self.store)),
        )
        # Governance records (intents, outcomes, controls) and feedback have topics of their own,
        # each consumed by its own group beside the span consumer.
        from agentledger.pipeline.consumers.feedback import FeedbackConsumer
        from agentledger.pipeline.consumers.intents import IntentConsumer

        self.side_consumers = [
            IntentConsumer(kafka, pipeline, self.store, default_tenant=pipeline.default_tenant),
            FeedbackConsumer(kafka, self.store, default_tenant=pipeline.default_tenant),
        ]
        self.metrics = None
        if pipeline.metrics_port:
            self.metrics = MetricsServer(
                lambda: consumer_status(self.consumer.stats),
                pipeline.metrics_host,
                pipeline.metrics_port,
            )
        self.gc_threshold = pipeline.gc_threshold

    def run(self) -> None:
        from agentledger.pipeline.derive import start_background_jobs

        if (
            self.gc_threshold
        ):  # see PipelineSettings.gc_threshold; set up, so the live objects are for good
            gc.collect()
            gc.freeze()
            _, older, oldest = gc.get_threshold()
            gc.set_threshold(self.gc_threshold, older, oldest)

        if self.metrics is not None:
            self.metrics.start()
        stop_jobs = start_background_jobs(
            self.store
        )  # usage rollup + anomaly detection on an interval
        threads = [
            threading.Thread(target=c.run, name=f"agentledger-{type(c).__name__}", daemon=True)
            for c in self.side_consumers
        ]
        for thread in threads:
            thread.start()
        try:
            self.consumer.run()
        finally:
            for consumer in self.side_consumers:
                consumer.stop()
            for thread in threads:
                thread.join(timeout=30)
            stop_jobs()
            if self.metrics is not None:
                self.metrics.stop()
            if self._own_store:
                self.store.close()

    def stop(self) -> None:
        self.consumer.stop()
        for consumer in self.side_consumers:
            consumer.stop()
