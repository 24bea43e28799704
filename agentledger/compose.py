"""The composition root: every AgentLedger process is wired here, and only here.

Each ``build_*`` function turns settings into a running shape; nothing else in the
code base chooses which sink, store, transport, record log or normalizer is in use.

==========================  ================  ===================  =======================
process                     spans go to       governance records   feedback
==========================  ================  ===================  =======================
``serve`` (embedded)        chDB, in process  fsynced journal ->   the store
                                              the store
``collector`` (Kafka)       the spans topic   the intents topic    the feedback topic
                                              (controls: also the
                                              compacted controls
                                              topic all replicas
                                              follow)
``pipeline run``            topics -> store   intents topic ->     feedback topic ->
                                              store                store
CLI, local mode             (reads the data    the store (its       the store
                            directory or       journal first)
                            ClickHouse)
==========================  ================  ===================  =======================

OTLP logs (``POST /v1/logs``) go where spans go: into the store (``serve``), onto the logs topic
(``collector``), from the logs topic into the store (``pipeline run``).
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

from agentledger.collector import CollectorSettings
from agentledger.collector.main import create_app
from agentledger.collector.services import EdgeServices, Lazy
from agentledger.pipeline.governance import (
    ControlBook,
    GovernanceService,
    GovernanceSettings,
    GovernanceUnavailable,
    RecordLog,
)
from agentledger.pipeline.governance.store_log import StoreLog
from agentledger.pipeline.services.access import AccessRecorder, KeyBook
from agentledger.pipeline.services.datasets.feedback import FeedbackLog, StoreFeedbackLog
from agentledger.pipeline.settings import KafkaSettings, PipelineSettings, StoreSettings
from agentledger.pipeline.sinks import Sink
from agentledger.pipeline.store import Store, migrate, open_store
from agentledger.pipeline.transport import Transport
from agentledger.schemas.records import Actor

if TYPE_CHECKING:
    from fastapi import FastAPI

    from agentledger.cli.client import LocalReadClient
    from agentledger.pipeline.derive.tlog_job import TreeLogJob
    from agentledger.server import PipelineRunner, _Consumer

__all__ = [
    "build_collector_app",
    "build_edge_app",
    "build_embedded_app",
    "build_ledger_log",
    "build_local_reader",
    "build_pipeline",
    "journal_dir",
    "open_configured_store",
]

log = logging.getLogger(__name__)


def open_configured_store(settings: StoreSettings) -> Store:
    """The store the settings name (ClickHouse server by URL, else chDB on the data
    directory), migrated to the current schema."""
    store = open_store(
        clickhouse_url=settings.clickhouse_url,
        data_dir=settings.data_dir,
        database=settings.database,
    )
    migrate(store, cluster=settings.clickhouse_cluster)
    return store


def journal_dir(store: Store) -> str | None:
    """Where a store's governance journal lives: beside a store that keeps its data in a
    local directory (chDB); None for a ClickHouse server, whose inserts are what is durable."""
    if store.local_dir is None:
        return None
    return os.path.join(store.local_dir, "governance-journal", store.database)


def _access(store: Store | None) -> dict[str, Any]:
    """The key book and the access log of a process that has a store (none without)."""
    if store is None:
        return {}
    return {"keys": KeyBook(store), "access": AccessRecorder(store)}


# -- embedded: ``agentledger serve`` ----------------------------------------------------------


def _embedded_governance(
    store: Store, journal: str | None, settings: GovernanceSettings, actor: str = Actor.API
) -> GovernanceService:
    store_log = StoreLog(store, timeout_s=settings.write_timeout_s)
    intents: RecordLog = store_log
    if journal is not None and settings.journal:
        from agentledger.pipeline.governance.journal import JournaledLog

        intents = JournaledLog(store, journal, store_log, flush_interval_s=settings.journal_flush_s)
    book = ControlBook(store_log, store, ttl_s=settings.controls_ttl_s)
    return GovernanceService(
        intents, book, store, settings, owned=(intents,), mode="embedded", actor=actor
    )


def build_embedded_app(
    collector: CollectorSettings, store_settings: StoreSettings, store: Store | None = None
) -> FastAPI:
    """Collector, normalizer and store in one process: a request is acknowledged once its
    rows are in the store. ``store``: an already open store (tests, the demo), kept open."""
    from agentledger.pipeline.derive import start_background_jobs
    from agentledger.pipeline.sinks.embedded import EmbeddedSink
    from agentledger.pipeline.sinks.logs import StoreLogSink
    from agentledger.pipeline.store.writer import StoreWriter

    own = store is None
    if store is None:
        store = open_configured_store(store_settings)
    else:
        migrate(store, cluster=store_settings.clickhouse_cluster)
    journal = journal_dir(store)
    # a ClickHouse server may have other writers (a pipeline); a data directory is this process's
    sole = store.local_dir is not None
    writer = StoreWriter(store, ledger=store_settings.ledger(store), sole_writer=sole)
    sink = EmbeddedSink(store, store_settings.make_normalizer(), writer=writer)
    governance_settings = GovernanceSettings()
    opened = store
    governance = Lazy(lambda: _embedded_governance(opened, journal, governance_settings))
    governance.get()  # a journal left by a crash is stored before anything is answered
    feedback: Lazy[FeedbackLog] = Lazy(lambda: StoreFeedbackLog(opened))
    services = EdgeServices(
        sink=sink, store=store, governance=governance, feedback=feedback, **_access(store)
    )
    # usage rollup, anomaly detection; a due pass waits while requests are being stored
    ledger_log = build_ledger_log(store)
    services.on_close.append(start_background_jobs(store, busy=sink.busy, ledger_log=ledger_log))
    if own:
        services.on_close.append(store.close)
    return create_app(collector, services, log_sink=StoreLogSink(store))


def build_ledger_log(store: Store) -> TreeLogJob | None:
    """The appender of the tenant logs with the deployment's signing key
    (``AGENTLEDGER_LEDGER_SIGNING_KEY_FILE``, which must exist when set; else
    ``<data dir>/ledger-signing.key``, created on first start) and witness directory
    (``AGENTLEDGER_WITNESS_DIR``; else ``<data dir>/witness/<database>``, with a warning that it
    is not external). None, with a warning, for a server store without a configured key."""
    from agentledger.pipeline.derive.tlog_job import TreeLogJob
    from agentledger.pipeline.derive.tlog_witness import WITNESS_DIR_ENV
    from agentledger.pipeline.derive.witness_http import configured_witness
    from agentledger.pipeline.tlog import KeyFileError, load_signing_key, signing_key_path

    local = store.local_dir
    if local is None and signing_key_path() is None:
        log.warning("ledger log not appended: no data directory and no signing key configured")
        return None
    try:
        signer, path = load_signing_key(local)
    except KeyFileError as exc:
        raise ValueError(f"ledger signing key: {exc}") from exc
    witness = os.environ.get(WITNESS_DIR_ENV, "")
    if not witness and local is not None:
        witness = os.path.join(local, "witness", store.database)
        log.warning(
            "ledger checkpoints are witnessed in %s, inside the data directory: that is not "
            "external; set %s to a directory on another volume or machine",
            witness,
            WITNESS_DIR_ENV,
        )
    log.info("ledger log signed with %s (%s)", signer.verifier().vkey, path)
    return TreeLogJob(signer, configured_witness(witness or None))  # + AGENTLEDGER_WITNESS_URL


# -- Kafka: ``agentledger collector`` ---------------------------------------------------------


def _kafka_governance(
    transport: Transport, store: Store | None, settings: GovernanceSettings
) -> GovernanceService:
    from agentledger.pipeline.governance.control_topic import ControlTopic
    from agentledger.pipeline.governance.kafka_log import KafkaLog

    kafka_log = KafkaLog(transport, create_topics=False)
    store_log = StoreLog(store, timeout_s=settings.write_timeout_s) if store is not None else None
    # a control is stored once (in the store, else through the intents topic) and shared with
    # every replica through the compacted controls topic, which each one follows
    control_topic = ControlTopic(transport, store_log or kafka_log, create_topic=False)
    book = ControlBook(
        control_topic,
        store,
        ttl_s=settings.controls_ttl_s,
        history=settings.memory_controls_history,
        follower=control_topic,
    )
    owned = tuple(x for x in (control_topic, kafka_log, store_log) if x is not None)
    return GovernanceService(kafka_log, book, store, settings, owned=owned, mode="kafka")


def build_collector_app(
    collector: CollectorSettings,
    kafka: KafkaSettings,
    store_settings: StoreSettings,
    *,
    store: Store | None = None,
) -> FastAPI:
    """OTLP in, Kafka out (acks=all); with a ClickHouse URL (or a ``store`` handed in, kept
    open) it also serves the read API and keeps run controls in that store."""
    from agentledger.pipeline.sinks.feedback import TopicFeedbackLog
    from agentledger.pipeline.sinks.kafka import KafkaSink
    from agentledger.pipeline.sinks.logs import KafkaLogSink
    from agentledger.pipeline.transport.kafka import KafkaTransport

    transport = KafkaTransport(kafka)
    sink = KafkaSink(transport)
    own = store is None and bool(store_settings.clickhouse_url)
    if own:
        store = open_configured_store(store_settings)  # the read API and controls need the tables
    governance_settings = GovernanceSettings()
    governance = Lazy(lambda: _kafka_governance(transport, store, governance_settings))
    try:
        governance.get()  # the intents producer ready before the first ask
    except GovernanceUnavailable as exc:
        log.warning("governance not ready at start-up (the first ask retries): %s", exc)
    feedback: Lazy[FeedbackLog] = Lazy(lambda: TopicFeedbackLog(transport))
    services = EdgeServices(
        sink=sink,
        store=store,
        governance=governance,
        feedback=feedback,
        store_gates_readiness=False,
        **_access(store),
    )
    log_sink = KafkaLogSink(transport)  # on the logs topic, which KafkaSink created
    services.on_close.append(log_sink.close)
    if own and store is not None:
        services.on_close.append(store.close)
    return create_app(collector, services, log_sink=log_sink)


def build_edge_app(collector: CollectorSettings, sink: Sink) -> FastAPI:
    """The collector over a sink of the caller's (the memory double in unit tests): ingest
    and health only; no store, so no reads, governance or feedback."""
    services = EdgeServices(
        sink=sink, store=None, governance=None, feedback=None, store_gates_readiness=False
    )
    return create_app(collector, services)


# -- the CLI, local mode ---------------------------------------------------------------------


def build_local_reader(
    store_settings: StoreSettings, tenant: str, *, store: Store | None = None
) -> LocalReadClient:
    """The CLI's client of a data directory (or ClickHouse server) when no server runs: the
    store the settings name, with the governance records and feedback wired as the embedded
    server wires them (a journal a crashed server left is stored before intents are read).
    ``store``: an already open store (tests), kept open; otherwise the client closes it."""
    from agentledger.cli.client import LocalReadClient

    own = store is None
    if store is None:
        store = open_configured_store(store_settings)
    else:
        migrate(store, cluster=store_settings.clickhouse_cluster)
    opened = store
    journal = journal_dir(store)
    governance_settings = GovernanceSettings()
    governance = Lazy(
        lambda: _embedded_governance(opened, journal, governance_settings, actor=Actor.CLI)
    )

    def close() -> None:
        built = governance.peek()
        if built is not None:
            built.close()
        if own:
            opened.close()

    key = store_settings.ledger_key
    return LocalReadClient(
        store,
        tenant,
        where=store_settings.clickhouse_url or store_settings.data_dir,
        governance=governance.get,
        feedback_log=StoreFeedbackLog(store, actor=Actor.CLI),
        ledger_key=key.get_secret_value().encode() if key else None,
        on_close=[close],
    )


# -- ``agentledger pipeline run`` -------------------------------------------------------------


def build_pipeline(
    kafka: KafkaSettings,
    pipeline: PipelineSettings,
    store_settings: StoreSettings,
    *,
    store: Store | None = None,
) -> PipelineRunner:
    """The pipeline process: the spans consumer, the intents and feedback consumers beside
    it, the background jobs (the ledger's appender among them, signing with the deployment's key)
    and the metrics endpoint, over one store."""
    from agentledger.pipeline.consumers.feedback import FeedbackConsumer
    from agentledger.pipeline.consumers.intents import IntentConsumer
    from agentledger.pipeline.consumers.lag import GroupLag
    from agentledger.pipeline.consumers.logs import LogConsumer
    from agentledger.pipeline.consumers.metrics import MetricsServer, consumer_status
    from agentledger.pipeline.consumers.spans import SpanConsumer
    from agentledger.pipeline.store.writer import StoreWriter
    from agentledger.pipeline.transport.kafka import KafkaTransport
    from agentledger.server import PipelineRunner

    own = store is None
    if store is None:
        store = open_configured_store(store_settings)
    else:
        migrate(store, cluster=store_settings.clickhouse_cluster)
    writer = StoreWriter(store, ledger=store_settings.ledger(store))
    transport = KafkaTransport(kafka)
    spans = SpanConsumer(
        transport,
        pipeline,
        store,
        store_settings.make_normalizer(),
        default_tenant=pipeline.default_tenant,
        writer=writer,
    )
    intents = IntentConsumer(transport, pipeline, store, default_tenant=pipeline.default_tenant)
    feedback = FeedbackConsumer(transport, store, default_tenant=pipeline.default_tenant)
    logs = LogConsumer(transport, store, default_tenant=pipeline.default_tenant)
    side: list[_Consumer] = [intents, feedback, logs]
    metrics = None
    if pipeline.metrics_port:
        lag = GroupLag(transport, [(c.group_id, c.topic) for c in (spans, intents, feedback, logs)])
        metrics = MetricsServer(
            lambda: consumer_status(spans.stats, lag),
            pipeline.metrics_host,
            pipeline.metrics_port,
            lag=lag,
        )
    return PipelineRunner(
        store,
        spans,
        side,
        metrics=metrics,
        gc_threshold=pipeline.gc_threshold,
        own_store=own,
        # every replica appends; the log's store-side claims keep one copy (tlog_job: fencing)
        ledger_log=build_ledger_log(store),
    )
