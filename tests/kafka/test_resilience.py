"""Crashes and outages: kill -9 between insert and commit, broker restart under load,
store outage, SIGTERM. Every acknowledged span is stored exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import httpx
import pytest

from agentledger.collector import CollectorSettings
from agentledger.compose import build_edge_app
from agentledger.pipeline.consumers.spans import SpanConsumer
from agentledger.pipeline.normalize import OtlpNormalizer
from agentledger.pipeline.sinks.kafka import KafkaSink
from agentledger.pipeline.transport import record_headers
from agentledger.pipeline.transport.base import OutgoingRecord, TransportError
from agentledger.pipeline.transport.kafka import KafkaTransport, ensure_topics
from agentledger.server import AppServer
from bench.traffic import SPANS_PER_RUN, requests
from tests.kafka.conftest import free_port, start_broker
from tests.kafka.test_kafka_path import PB, RunningConsumer, wait_for


def _produce(settings, reqs) -> None:
    from kafka import KafkaProducer

    ensure_topics(settings)
    producer = KafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all")
    for req in reqs:
        producer.send(
            settings.spans_topic, req.SerializeToString(), headers=record_headers("default", 1)
        )
    producer.flush()
    producer.close()


def _pipeline_env(kafka_settings, ch_store, endpoint, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTLEDGER_")}
    env.update(
        {
            "AGENTLEDGER_KAFKA_BOOTSTRAP_SERVERS": kafka_settings.bootstrap_servers,
            "AGENTLEDGER_KAFKA_SPANS_TOPIC": kafka_settings.spans_topic,
            "AGENTLEDGER_KAFKA_DEAD_LETTER_TOPIC": kafka_settings.dead_letter_topic,
            "AGENTLEDGER_KAFKA_FEEDBACK_TOPIC": kafka_settings.feedback_topic,
            "AGENTLEDGER_KAFKA_INTENTS_TOPIC": kafka_settings.intents_topic,
            "AGENTLEDGER_KAFKA_GROUP_ID": kafka_settings.group_id,
            "AGENTLEDGER_CLICKHOUSE_URL": endpoint.url,
            "AGENTLEDGER_DATABASE": ch_store.database,
            "AGENTLEDGER_BATCH_MAX_SECONDS": "0.5",
            "AGENTLEDGER_METRICS_PORT": str(free_port()),
            **extra,
        }
    )
    return env


def _pipeline(env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "agentledger.cli", "pipeline", "run", "--log-level", "info"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _committed(settings) -> int:
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=settings.bootstrap_servers)
    try:
        offsets = admin.list_group_offsets({settings.group_id: None}).get(settings.group_id, {})
    finally:
        admin.close()
    return sum(
        o.offset for tp, o in offsets.items() if tp.topic == settings.spans_topic and o.offset > 0
    )


def test_kill_9_between_insert_and_commit_then_restart(kafka_settings, ch_store, endpoint) -> None:
    reqs = list(requests(40, runs_per_request=2, seed=41))  # 20 records, 200 spans
    _produce(kafka_settings, reqs)
    crashed = _pipeline(
        _pipeline_env(
            kafka_settings, ch_store, endpoint, AGENTLEDGER_FAILPOINT="after_insert_before_commit"
        )
    )
    out, _ = crashed.communicate(timeout=120)
    assert crashed.returncode == -signal.SIGKILL, out
    inserted = ch_store.query_scalar("SELECT count() FROM spans")
    assert inserted > 0, "the first batch was inserted before the crash"
    assert _committed(kafka_settings) == 0, "nothing was committed"

    env = _pipeline_env(kafka_settings, ch_store, endpoint)
    restarted = _pipeline(env)
    try:
        wait_for(
            lambda: _committed(kafka_settings) == len(reqs),
            what="all offsets committed after restart",
        )
    finally:
        restarted.send_signal(signal.SIGTERM)
        out, _ = restarted.communicate(timeout=60)
    assert restarted.returncode == 0, out
    total = 40 * SPANS_PER_RUN
    assert ch_store.query_scalar("SELECT count() FROM spans FINAL") == total
    assert ch_store.query_scalar("SELECT uniqExact(tenant, trace_id, span_id) FROM spans") == total
    tokens = sum(
        kv.value.int_value
        for r in reqs
        for rs in r.resource_spans
        for ss in rs.scope_spans
        for s in ss.spans
        for kv in s.attributes
        if kv.key == "llm.token_count.prompt"
    )
    assert ch_store.query_scalar("SELECT sum(input_tokens) FROM spans FINAL") == tokens
    from agentledger.pipeline.services import queries

    traces = queries.list_traces(ch_store, "default", limit=100)
    assert len(traces) == 40 and sum(t["span_count"] for t in traces) == total


def test_sigterm_finishes_and_commits_the_batch(kafka_settings, ch_store, endpoint) -> None:
    reqs = list(requests(30, runs_per_request=3, seed=43))
    _produce(kafka_settings, reqs)
    env = _pipeline_env(kafka_settings, ch_store, endpoint)
    proc = _pipeline(env)
    try:
        wait_for(
            lambda: ch_store.query_scalar("SELECT count() FROM spans") > 0, what="first insert"
        )
        metrics = httpx.get(
            f"http://127.0.0.1:{env['AGENTLEDGER_METRICS_PORT']}/metrics", timeout=5
        ).text
        assert "agentledger_pipeline_spans_stored_total" in metrics
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    stored = ch_store.query_scalar("SELECT count() FROM spans FINAL")
    committed = _committed(kafka_settings)
    # whatever was stored was committed, and what was committed was stored
    by_offset = ch_store.query_rows(
        "SELECT source_partition, max(source_offset) + 1 AS next FROM spans GROUP BY source_partition"
    )
    assert committed == sum(r["next"] for r in by_offset)
    assert stored == committed * 3 * SPANS_PER_RUN


def test_store_outage_pauses_and_resumes(
    kafka_settings, pipeline_settings, ch_store, endpoint
) -> None:
    consumer = SpanConsumer(kafka_settings, pipeline_settings, ch_store, OtlpNormalizer())
    first = list(requests(10, runs_per_request=1, seed=51))
    second = list(requests(10, runs_per_request=1, seed=52))
    with RunningConsumer(consumer):
        _produce(kafka_settings, first)
        wait_for(
            lambda: ch_store.query_scalar("SELECT count() FROM spans") == 10 * SPANS_PER_RUN,
            what="first part",
        )
        endpoint.set_available(False)
        _produce(kafka_settings, second)
        wait_for(lambda: consumer.stats.store_retries >= 2, what="retries while the store is down")
        assert consumer.stats.store_available is False
        retries = consumer.stats.store_retries
        wait_for(
            lambda: consumer.stats.store_retries >= retries + 2,
            what="retries going on while the store stays down",
        )
        endpoint.set_available(True)
        wait_for(
            lambda: ch_store.query_scalar("SELECT count() FROM spans") >= 20 * SPANS_PER_RUN,
            what="resume",
        )
    assert ch_store.query_scalar("SELECT count() FROM spans FINAL") == 20 * SPANS_PER_RUN
    assert consumer.stats.store_available is True and consumer.stats.dead_letters == 0
    assert _committed(kafka_settings) == 20


def test_broker_restart_while_clients_send(tmp_path, pipeline_settings, store) -> None:
    """Every request answered 200 is stored; every other one got a retryable status; exports
    resume within seconds of the broker coming back."""
    from agentledger.pipeline.settings import KafkaSettings

    broker = start_broker(tmp_path / "kafka")  # a broker of this test's own, to stop and start
    try:
        settings = KafkaSettings(
            bootstrap_servers=broker.bootstrap,
            partitions=2,
            group_id="restart",
            produce_timeout_s=4,
        )
        app = build_edge_app(
            CollectorSettings(no_auth=True, port=0, retry_after_seconds=1), KafkaSink(settings)
        )
        reqs = list(requests(120, runs_per_request=1, seed=61))
        answers: dict[int, int] = {}
        acked_after_restart: list[float] = []  # when each 200 after the restart arrived
        errors: list[BaseException] = []
        restarted = threading.Event()  # the broker serves again (kafka.sh start returned)
        stop_sending = threading.Event()
        with AppServer(app) as collector:
            url = f"{collector.url}/v1/traces"

            def send() -> None:
                try:
                    with httpx.Client(timeout=30) as client:
                        for i, req in enumerate(reqs):
                            if stop_sending.is_set():
                                return
                            resp = client.post(url, content=req.SerializeToString(), headers=PB)
                            answers[i] = resp.status_code
                            if resp.status_code != 200:
                                assert resp.status_code == 503
                                assert int(resp.headers["retry-after"]) >= 1
                            elif restarted.is_set():
                                acked_after_restart.append(time.monotonic())
                                if len(acked_after_restart) >= 3:
                                    stop_sending.set()
                            time.sleep(0.1)
                except BaseException as exc:  # reported by the test thread
                    errors.append(exc)
                    stop_sending.set()

            spare = KafkaTransport(settings).producer()  # to be closed while the broker is down
            spare_record = OutgoingRecord(settings.dead_letter_topic, b"k", b"v")
            sender = threading.Thread(target=send, name="restart-test-sender")
            sender.start()
            try:
                spare.send([spare_record], timeout=10)  # it knows the topic's leader from now on
                wait_for(
                    lambda: list(answers.values()).count(200) >= 5 or stop_sending.is_set(),
                    what="requests acknowledged first",
                )
                broker.run("stop")
                wait_for(
                    lambda: (
                        any(code != 200 for code in list(answers.values())) or stop_sending.is_set()
                    ),
                    what="clients seeing the outage",
                )
                with pytest.raises(TransportError):
                    spare.send([spare_record], timeout=1)  # stays in the producer, undelivered
                closing = time.monotonic()
                spare.close(timeout=1)  # records it could not deliver: forced close
                assert time.monotonic() - closing < 10, "close is bounded with the broker down"
                assert spare.closed, "no producer left open for the garbage collector"
                broker.run("start")
                back = time.monotonic()
                restarted.set()
                wait_for(stop_sending.is_set, timeout=60, what="3 requests acknowledged again")
            finally:
                spare.close(timeout=1)
                stop_sending.set()
                sender.join(timeout=30)  # one request at most in progress: <= produce timeout
            assert not sender.is_alive(), "the sender thread ended"
        assert not errors, errors
        assert len(acked_after_restart) >= 3, "requests after the restart were acknowledged"
        resumed_s = acked_after_restart[0] - back
        assert resumed_s < 10, f"exports resumed {resumed_s:.1f}s after the broker came back"
        ok = [i for i, code in answers.items() if code == 200]
        refused = [i for i, code in answers.items() if code != 200]
        assert set(answers.values()) <= {200, 503}
        assert refused, "the broker outage was seen by clients"
        assert ok, "requests before and after the outage were acknowledged"
        consumer = SpanConsumer(settings, pipeline_settings, store, OtlpNormalizer())
        with RunningConsumer(consumer):
            wait_for(
                lambda: (
                    store.query_scalar("SELECT count() FROM spans FINAL") >= len(ok) * SPANS_PER_RUN
                ),
                what="acknowledged spans stored",
            )
            wait_for(
                lambda: bool(consumer.stats.lag) and not any(consumer.stats.lag.values()),
                what="the consumer caught up with the topic",
            )
        stored_traces = {
            r["trace_id"] for r in store.query_rows("SELECT DISTINCT trace_id FROM spans")
        }
        acked_traces = {
            reqs[i].resource_spans[0].scope_spans[0].spans[0].trace_id.hex() for i in ok
        }
        assert acked_traces <= stored_traces
        assert (
            store.query_scalar("SELECT count() FROM spans FINAL")
            == len(stored_traces) * SPANS_PER_RUN
        )
    finally:
        broker.run("stop")
