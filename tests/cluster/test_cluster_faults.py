"""Faults at cluster shape, under steady load: every span the collector answered 200 for is
stored exactly once, usage totals equal the sum over stored spans, the ledger verifies, and the
dead-letter topic holds nothing (no poison was sent)."""

from __future__ import annotations

import os
import threading
import time
import uuid
from datetime import datetime, timezone

import httpx
import pytest

from agentledger.collector import CollectorSettings
from agentledger.compose import build_edge_app
from agentledger.pipeline.consumers.spans import SpanConsumer
from agentledger.pipeline.derive import UsageRollupJob, usage_totals
from agentledger.pipeline.derive.ledger import verify
from agentledger.pipeline.normalize import OtlpNormalizer
from agentledger.pipeline.settings import KafkaSettings, PipelineSettings
from agentledger.pipeline.sinks.kafka import KafkaSink
from agentledger.pipeline.transport.kafka import ensure_topics
from agentledger.server import AppServer
from bench.traffic import SPANS_PER_RUN, requests
from tests.kafka.test_kafka_path import PB, RunningConsumer, wait_for

pytestmark = pytest.mark.slow


def _leader(settings: KafkaSettings, topic: str, partition: int = 0) -> int:
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    try:
        (described,) = admin.describe_topics([topic])
        (found,) = [p for p in described["partitions"] if p["partition_index"] == partition]
        return int(found["leader_id"])
    finally:
        admin.close()


def _end_offsets(settings: KafkaSettings, topic: str) -> int:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=settings.bootstrap_servers)
    try:
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        return sum(consumer.end_offsets(parts).values())
    finally:
        consumer.close()


def test_the_partition_leader_killed_under_load(cluster, store) -> None:
    tag = uuid.uuid4().hex[:8]
    settings = KafkaSettings(
        bootstrap_servers=cluster.bootstrap,
        spans_topic=f"c{tag}.spans",
        dead_letter_topic=f"c{tag}.spans.dlq",
        feedback_topic=f"c{tag}.feedback",
        intents_topic=f"c{tag}.intents",
        controls_topic=f"c{tag}.controls",
        partitions=3,
        replication_factor=3,
        group_id=f"g{tag}",
        produce_timeout_s=15,
    )
    ensure_topics(settings)
    reqs = list(requests(400, runs_per_request=1, seed=97))
    answers: dict[int, int] = {}
    stop = threading.Event()
    errors: list[BaseException] = []
    app = build_edge_app(
        CollectorSettings(no_auth=True, port=0, retry_after_seconds=1), KafkaSink(settings)
    )
    with AppServer(app) as collector:

        def send() -> None:
            try:
                with httpx.Client(timeout=60) as client:
                    for i, req in enumerate(reqs):
                        if stop.is_set():
                            return
                        response = client.post(
                            f"{collector.url}/v1/traces",
                            content=req.SerializeToString(),
                            headers=PB,
                        )
                        answers[i] = response.status_code
                        time.sleep(0.02)
            except BaseException as exc:
                errors.append(exc)

        sender = threading.Thread(target=send, name="cluster-load")
        sender.start()
        try:
            wait_for(lambda: list(answers.values()).count(200) >= 20, what="load flowing")
            leader = _leader(settings, settings.spans_topic)
            cluster.run("kill9", str(leader))
            killed_at = len(answers)
            wait_for(
                lambda: [answers[i] for i in range(killed_at, len(answers))].count(200) >= 30,
                what="acknowledgements with the leader dead (a new leader took over)",
            )
            assert _leader(settings, settings.spans_topic) != leader
            cluster.run("start-node", str(leader))
            back_at = len(answers)
            wait_for(
                lambda: [answers[i] for i in range(back_at, len(answers))].count(200) >= 20,
                what="acknowledgements after the node came back",
            )
        finally:
            stop.set()
            sender.join(timeout=120)
    assert not errors, errors
    assert set(answers.values()) <= {200, 503}, answers
    ok = [i for i, code in answers.items() if code == 200]

    consumer = SpanConsumer(
        settings,
        PipelineSettings(batch_max_spans=2000, batch_max_seconds=0.5, retry_max_seconds=1.0),
        store,
        OtlpNormalizer(),
    )
    with RunningConsumer(consumer):
        wait_for(
            lambda: store.query_scalar("SELECT count() FROM spans") >= len(ok) * SPANS_PER_RUN,
            what="every acknowledged span stored",
        )
        wait_for(
            lambda: bool(consumer.stats.lag) and not any(consumer.stats.lag.values()),
            what="the consumer caught up",
        )
    acked = {reqs[i].resource_spans[0].scope_spans[0].spans[0].trace_id.hex() for i in ok}
    stored = {r["trace_id"] for r in store.query_rows("SELECT DISTINCT trace_id FROM spans")}
    assert acked <= stored, f"{len(acked - stored)} acknowledged traces lost"
    rows = store.query_scalar("SELECT count() FROM spans")
    distinct = store.query_scalar("SELECT uniqExact(tenant, trace_id, span_id) FROM spans")
    assert rows == distinct == len(stored) * SPANS_PER_RUN, "a span stored twice"
    assert _end_offsets(settings, settings.dead_letter_topic) == 0, "nothing was poison"
    assert verify(store, "default").ok
    UsageRollupJob().run(store, datetime.now(timezone.utc))
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    totals = usage_totals(store, "default", start, datetime(2028, 1, 1, tzinfo=timezone.utc))
    assert totals["input_tokens"] == store.query_scalar("SELECT sum(input_tokens) FROM spans")


def _settings(cluster, tag: str) -> KafkaSettings:
    return KafkaSettings(
        bootstrap_servers=cluster.bootstrap,
        spans_topic=f"c{tag}.spans",
        dead_letter_topic=f"c{tag}.spans.dlq",
        feedback_topic=f"c{tag}.feedback",
        intents_topic=f"c{tag}.intents",
        controls_topic=f"c{tag}.controls",
        partitions=6,
        replication_factor=3,
        group_id=f"g{tag}",
        produce_timeout_s=15,
    )


class SteadyLoad:
    """One OTLP request of one agent run every ``interval_s`` straight onto the spans topic (acks
    all, idempotent): what collectors in front would write, at a fixed rate."""

    def __init__(self, settings: KafkaSettings, runs: int, interval_s: float, seed: int) -> None:
        self.settings = settings
        self.reqs = list(requests(runs, runs_per_request=1, seed=seed))
        self.interval_s = interval_s
        self.sent = 0
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self._run, name="steady-load")

    def _run(self) -> None:
        from kafka import KafkaProducer

        producer = KafkaProducer(
            bootstrap_servers=self.settings.bootstrap_servers,
            acks="all",
            enable_idempotence=True,
            max_request_size=4 * 1024 * 1024,
        )
        try:
            for req in self.reqs:
                trace = req.resource_spans[0].scope_spans[0].spans[0].trace_id
                producer.send(self.settings.spans_topic, req.SerializeToString(), key=trace).get(30)
                self.sent += 1
                time.sleep(self.interval_s)
        except BaseException as exc:
            self.errors.append(exc)
        finally:
            producer.close(timeout=10)

    def __enter__(self) -> SteadyLoad:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.thread.join(timeout=300)


def _exactly_once(store, settings: KafkaSettings, load: SteadyLoad) -> None:
    assert not load.errors, load.errors
    expected = len(load.reqs) * SPANS_PER_RUN
    assert store.query_scalar("SELECT count() FROM spans") == expected, "lost or doubled"
    assert store.query_scalar("SELECT uniqExact(trace_id, span_id) FROM spans") == expected
    assert _end_offsets(settings, settings.dead_letter_topic) == 0, "nothing was poison"
    assert verify(store, "default").ok
    UsageRollupJob().run(store, datetime.now(timezone.utc))
    start, end = (
        datetime(2026, 1, 1, tzinfo=timezone.utc),
        datetime(2028, 1, 1, tzinfo=timezone.utc),
    )
    assert usage_totals(store, "default", start, end)["input_tokens"] == store.query_scalar(
        "SELECT sum(input_tokens) FROM spans"
    )


def test_pipelines_join_and_die_mid_batch_in_one_group(cluster, ch_store, endpoint) -> None:
    """Two, then three `agentledger pipeline run` processes in one group: one killed with -9 in
    the middle of its work, one added; the group rebalances under load and nothing is lost or
    stored twice."""
    from tests.kafka.test_resilience import _pipeline, _pipeline_env

    settings = _settings(cluster, uuid.uuid4().hex[:8])
    ensure_topics(settings)
    env = _pipeline_env(settings, ch_store, endpoint)
    processes = [_pipeline({**env, "AGENTLEDGER_METRICS_PORT": "0"}) for _ in range(2)]
    try:
        with SteadyLoad(settings, runs=300, interval_s=0.03, seed=131) as load:
            wait_for(
                lambda: ch_store.query_scalar("SELECT count() FROM spans") > 100,
                what="both working",
            )
            processes[0].kill()  # -9, whatever it was doing
            processes.append(_pipeline({**env, "AGENTLEDGER_METRICS_PORT": "0"}))
        wait_for(
            lambda: (
                ch_store.query_scalar("SELECT count() FROM spans") >= len(load.reqs) * SPANS_PER_RUN
            ),
            timeout=180,
            what="every record stored after the rebalances",
        )
        wait_for(
            lambda: _committed_total(settings) == len(load.reqs),
            timeout=120,
            what="every offset committed",
        )
    finally:
        for proc in processes:
            if proc.poll() is None:
                proc.terminate()
        for proc in processes:
            proc.communicate(timeout=60)
    _exactly_once(ch_store, settings, load)


def _committed_total(settings: KafkaSettings) -> int:
    """Offsets the group committed; -1 while its coordinator is still being elected (a fresh
    cluster creates the offsets topic, replicated three times, on the group's first use)."""
    from kafka.errors import KafkaError

    from tests.kafka.test_resilience import _committed

    try:
        return _committed(settings)
    except KafkaError:
        return -1


def test_a_stalled_store_backs_off_and_the_lag_drains(cluster, ch_store, endpoint) -> None:
    """The store stops answering for 30 s under load: consumers retry with backoff, lag grows,
    nothing is lost, and the lag drains once the store is back."""
    settings = _settings(cluster, uuid.uuid4().hex[:8])
    ensure_topics(settings)
    consumer = SpanConsumer(
        settings,
        PipelineSettings(batch_max_spans=2000, batch_max_seconds=0.5, retry_max_seconds=2.0),
        ch_store,
        OtlpNormalizer(),
    )
    with RunningConsumer(consumer):
        with SteadyLoad(settings, runs=200, interval_s=0.05, seed=137) as load:
            wait_for(
                lambda: ch_store.query_scalar("SELECT count() FROM spans") > 50, what="flowing"
            )
            endpoint.set_available(False)
            stalled_at = time.monotonic()
            try:
                wait_for(
                    lambda: (
                        _end_offsets(settings, settings.spans_topic) - _committed_total(settings)
                        > 20
                    ),
                    what="lag growing while the store is down",
                )
                time.sleep(max(0.0, 30 - (time.monotonic() - stalled_at)))  # the 30 s stall itself
            finally:
                endpoint.set_available(True)
        wait_for(
            lambda: (
                ch_store.query_scalar("SELECT count() FROM spans") >= len(load.reqs) * SPANS_PER_RUN
            ),
            timeout=180,
            what="the backlog stored",
        )
        wait_for(lambda: _committed_total(settings) == len(load.reqs), what="lag drained")
    _exactly_once(ch_store, settings, load)


def test_a_collector_replica_killed_with_requests_in_flight(cluster, store) -> None:
    """Two `agentledger collector` processes; the client sends to the first and, on no answer or a
    retryable one, retries the same request at the second (what a load balancer does). The first
    is killed with -9 mid-load: every acknowledged trace is stored, and a request the dead
    replica had written to Kafka before it died, sent again, is stored once."""
    import signal
    import subprocess
    import sys

    from tests.kafka.conftest import free_port

    settings = _settings(cluster, uuid.uuid4().hex[:8])
    ensure_topics(settings)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTLEDGER_")}
    env.update(
        AGENTLEDGER_KAFKA_BOOTSTRAP_SERVERS=settings.bootstrap_servers,
        AGENTLEDGER_KAFKA_SPANS_TOPIC=settings.spans_topic,
        AGENTLEDGER_KAFKA_DEAD_LETTER_TOPIC=settings.dead_letter_topic,
    )
    ports = [free_port(), free_port()]
    replicas = [
        subprocess.Popen(
            [sys.executable, "-m", "agentledger.cli", "collector", "--no-auth"]
            + ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        for port in ports
    ]
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    reqs = list(requests(240, runs_per_request=1, seed=139))
    acked: set[int] = set()
    retried = 0
    try:
        for url in urls:
            wait_for(lambda u=url: _ready(u), what=f"collector at {url}")
        with httpx.Client(timeout=30) as client:
            for i, req in enumerate(reqs):
                if i == 80:
                    replicas[0].send_signal(signal.SIGKILL)  # requests in flight die with it
                body = req.SerializeToString()
                for url in urls:
                    try:
                        response = client.post(f"{url}/v1/traces", content=body, headers=PB)
                    except httpx.TransportError:
                        retried += 1
                        continue
                    if response.status_code == 200:
                        acked.add(i)
                        break
                    assert response.status_code in (429, 503), response.text
                    retried += 1
    finally:
        for proc in replicas:
            if proc.poll() is None:
                proc.terminate()
            proc.wait(timeout=60)
    assert len(acked) == len(reqs), "every request was acknowledged by one replica or the other"
    assert retried >= 1, "the dead replica was noticed"
    consumer = SpanConsumer(
        settings,
        PipelineSettings(batch_max_spans=2000, batch_max_seconds=0.5, retry_max_seconds=1.0),
        store,
        OtlpNormalizer(),
    )
    with RunningConsumer(consumer):
        wait_for(
            lambda: _committed_total(settings) == _end_offsets(settings, settings.spans_topic),
            what="the whole topic consumed",
        )
    expected = len(reqs) * SPANS_PER_RUN
    assert store.query_scalar("SELECT uniqExact(trace_id, span_id) FROM spans") == expected
    assert store.query_scalar("SELECT count() FROM spans") == expected, "a re-sent span doubled"


def _ready(url: str) -> bool:
    try:
        return httpx.get(f"{url}/readyz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
