"""OTLP over HTTP -> collector -> real Kafka -> consumer -> store: nothing lost, nothing twice."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from agentledger.collector import CollectorSettings
from agentledger.compose import build_edge_app
from agentledger.pipeline.consumers.spans import SpanConsumer
from agentledger.pipeline.normalize import OtlpNormalizer
from agentledger.pipeline.services import queries
from agentledger.pipeline.sinks.kafka import KafkaSink
from agentledger.schemas.topics import Headers
from agentledger.server import AppServer
from bench.traffic import SPANS_PER_RUN, requests

PB = {"Content-Type": "application/x-protobuf"}


@pytest.fixture
def collector(kafka_settings) -> Iterator[AppServer]:
    sink = KafkaSink(kafka_settings)
    with AppServer(build_edge_app(CollectorSettings(no_auth=True, port=0), sink)) as srv:
        yield srv


class RunningConsumer:
    def __init__(self, consumer: SpanConsumer) -> None:
        self.consumer = consumer
        self.thread = threading.Thread(target=consumer.run, daemon=True)

    def __enter__(self) -> SpanConsumer:
        self.thread.start()
        return self.consumer

    def __exit__(self, *exc: object) -> None:
        self.consumer.stop()
        self.thread.join(timeout=60)
        assert not self.thread.is_alive()


def wait_for(predicate, timeout: float = 120, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.1)


def _send(url: str, req: ExportTraceServiceRequest) -> httpx.Response:
    return httpx.post(f"{url}/v1/traces", content=req.SerializeToString(), headers=PB, timeout=30)


def test_every_span_arrives_once(collector, kafka_settings, pipeline_settings, store) -> None:
    reqs = list(requests(60, runs_per_request=7, seed=11))
    for req in reqs:
        assert _send(collector.url, req).status_code == 200
    consumer = SpanConsumer(kafka_settings, pipeline_settings, store, OtlpNormalizer())
    with RunningConsumer(consumer):
        wait_for(
            lambda: store.query_scalar("SELECT count() FROM spans") >= 60 * SPANS_PER_RUN,
            what="spans stored",
        )
    assert store.query_scalar("SELECT count() FROM spans") == 60 * SPANS_PER_RUN
    assert store.query_scalar("SELECT uniqExact(span_id) FROM spans") == 60 * SPANS_PER_RUN
    traces = queries.list_traces(store, "default", limit=100)
    assert len(traces) == 60 and all(t["span_count"] == SPANS_PER_RUN for t in traces)
    assert consumer.stats.dead_letters == 0
    # provenance: each row names the Kafka record it came from
    topics = {
        r["source_topic"] for r in store.query_rows("SELECT DISTINCT source_topic FROM spans")
    }
    assert topics == {kafka_settings.spans_topic}
    # the key that sent each span travels in the record's actor header (no keys here: "api")
    assert [r["sent_by"] for r in store.query_rows("SELECT DISTINCT sent_by FROM spans")] == ["api"]


def test_stock_reader_decodes_the_topic_as_otlp(collector, kafka_settings) -> None:
    """kafka-python and the stock opentelemetry-proto classes, no AgentLedger code."""
    from kafka import KafkaConsumer

    req = next(requests(3, runs_per_request=3, seed=5))
    assert _send(collector.url, req).status_code == 200
    reader = KafkaConsumer(
        kafka_settings.spans_topic,
        bootstrap_servers=kafka_settings.bootstrap_servers,
        auto_offset_reset="earliest",
        consumer_timeout_ms=10_000,
    )
    records = []
    for record in reader:
        records.append(record)
        if len(records) == 3:
            break
    reader.close()
    assert len(records) == 3  # one record per trace
    for record in records:
        decoded = ExportTraceServiceRequest.FromString(record.value)
        spans = [s for rs in decoded.resource_spans for ss in rs.scope_spans for s in ss.spans]
        assert len(spans) == SPANS_PER_RUN
        assert {s.trace_id.hex() for s in spans} == {record.key.decode()}
        headers = dict(record.headers)
        assert headers[Headers.TENANT] == b"default" and int(headers[Headers.RECEIVED_AT]) > 0
        assert decoded.resource_spans[0].resource.attributes[0].key == "service.name"


def test_poison_record_goes_to_dead_letters_and_the_rest_is_stored(
    kafka_settings, pipeline_settings, store
) -> None:
    from kafka import KafkaConsumer, KafkaProducer

    from agentledger.pipeline.transport import record_headers
    from agentledger.pipeline.transport.kafka import ensure_topics

    ensure_topics(kafka_settings)
    producer = KafkaProducer(bootstrap_servers=kafka_settings.bootstrap_servers, acks="all")
    good = list(requests(4, runs_per_request=1, seed=3))
    # all on one partition, poison in the middle
    producer.send(
        kafka_settings.spans_topic,
        good[0].SerializeToString(),
        partition=0,
        headers=record_headers("default", 1),
    )
    producer.send(
        kafka_settings.spans_topic,
        good[1].SerializeToString(),
        partition=0,
        headers=record_headers("default", 1),
    )
    producer.send(
        kafka_settings.spans_topic,
        b"\x0a\xff\xff\xffnot protobuf",
        partition=0,
        headers=record_headers("default", 1),
    )
    for req in good[2:]:
        producer.send(
            kafka_settings.spans_topic,
            req.SerializeToString(),
            partition=0,
            headers=record_headers("default", 1),
        )
    producer.flush()
    producer.close()
    consumer = SpanConsumer(kafka_settings, pipeline_settings, store, OtlpNormalizer())
    with RunningConsumer(consumer):
        wait_for(
            lambda: store.query_scalar("SELECT count() FROM spans") >= 4 * SPANS_PER_RUN,
            what="good records stored",
        )
        wait_for(lambda: consumer.stats.dead_letters == 1, what="dead letter")
    assert store.query_scalar("SELECT count() FROM spans") == 4 * SPANS_PER_RUN
    dlq = KafkaConsumer(
        kafka_settings.dead_letter_topic,
        bootstrap_servers=kafka_settings.bootstrap_servers,
        auto_offset_reset="earliest",
        consumer_timeout_ms=10_000,
    )
    dead = next(iter(dlq))
    dlq.close()
    headers = dict(dead.headers)
    assert dead.value == b"\x0a\xff\xff\xffnot protobuf"
    assert b"undecodable OTLP protobuf" in headers[Headers.ERROR]
    assert headers[Headers.SOURCE] == f"{kafka_settings.spans_topic}/0/2".encode()


def test_redelivered_records_count_once(kafka_settings, pipeline_settings, store) -> None:
    """At-least-once input: the same records produced twice; the shipped queries stay exact."""
    from kafka import KafkaProducer

    from agentledger.pipeline.transport import record_headers
    from agentledger.pipeline.transport.kafka import ensure_topics

    ensure_topics(kafka_settings)
    producer = KafkaProducer(bootstrap_servers=kafka_settings.bootstrap_servers, acks="all")
    reqs = list(requests(10, runs_per_request=2, seed=21))
    for _ in range(2):
        for req in reqs:
            producer.send(
                kafka_settings.spans_topic,
                req.SerializeToString(),
                headers=record_headers("default", 7),
            )
    producer.flush()
    producer.close()
    consumer = SpanConsumer(kafka_settings, pipeline_settings, store, OtlpNormalizer())
    with RunningConsumer(consumer):
        wait_for(lambda: consumer.stats.records >= 10, what="all records consumed")
    traces = queries.list_traces(store, "default", limit=100)
    assert len(traces) == 10
    assert sum(t["span_count"] for t in traces) == 10 * SPANS_PER_RUN
    assert store.query_scalar("SELECT count() FROM spans FINAL") == 10 * SPANS_PER_RUN
    expected_tokens = sum(
        kv.value.int_value
        for r in reqs
        for rs in r.resource_spans
        for ss in rs.scope_spans
        for s in ss.spans
        for kv in s.attributes
        if kv.key == "llm.token_count.prompt"
    )
    assert sum(t["input_tokens"] for t in traces) == expected_tokens


def test_large_trace_is_split_and_oversized_span_refused(
    collector, kafka_settings, pipeline_settings, store
) -> None:
    big = ExportTraceServiceRequest()
    scope = big.resource_spans.add().scope_spans.add()
    for i in range(12):  # 12 spans x 200 KB of one trace: over the 1 MiB record limit
        span = scope.spans.add()
        span.trace_id, span.span_id, span.name = b"\x07" * 16, bytes([0] * 7 + [i + 1]), f"s{i}"
        span.start_time_unix_nano, span.end_time_unix_nano = 10**18, 10**18 + 1
        kv = span.attributes.add()
        kv.key, kv.value.string_value = "blob", "x" * 200_000
    assert _send(collector.url, big).status_code == 200
    consumer = SpanConsumer(kafka_settings, pipeline_settings, store, OtlpNormalizer())
    with RunningConsumer(consumer):
        wait_for(
            lambda: store.query_scalar("SELECT count() FROM spans") >= 12,
            what=f"split trace stored ({consumer.stats})",
        )
    assert (
        consumer.stats.records >= 2
    )  # split into several records with the same key (values cut to 128 KB)
    assert store.query_scalar("SELECT count() FROM spans") == 12

    huge = ExportTraceServiceRequest()
    span = huge.resource_spans.add().scope_spans.add().spans.add()
    span.trace_id, span.span_id, span.name = b"\x08" * 16, b"\x01" * 8, "huge"
    for i in range(10):  # one span of 10 x 120 KB (each under the attribute limit): over 1 MiB
        kv = span.attributes.add()
        kv.key, kv.value.string_value = f"blob{i}", "y" * 120_000
    resp = _send(collector.url, huge)
    assert resp.status_code == 413
    from google.rpc.status_pb2 import Status

    assert "over the record limit" in Status.FromString(resp.content).message


def test_a_bound_keys_spans_of_other_agents_are_dropped_by_the_pipeline(
    kafka_settings, pipeline_settings, store
) -> None:
    """The Kafka collector acknowledges before any normalizer has seen the spans: the key's name
    and its agent travel in the record's headers, and the pipeline stores only that agent's."""
    import random
    import time as _time

    from agentledger.pipeline.sinks.base import IngestBatch
    from bench.traffic import add_run

    req = ExportTraceServiceRequest()
    scope = req.resource_spans.add().scope_spans.add()
    rng = random.Random(5)
    own = add_run(scope, rng, 0, 1_790_000_000_000_000_000, agent="recon")
    add_run(scope, rng, 1, 1_790_000_003_000_000_000, agent="payments")
    sink = KafkaSink(kafka_settings)
    try:
        sink.write(
            IngestBatch("default", _time.time_ns(), req, 2 * SPANS_PER_RUN, None, "bot", "recon")
        )
    finally:
        sink.close()
    consumer = SpanConsumer(kafka_settings, pipeline_settings, store, OtlpNormalizer())
    with RunningConsumer(consumer):
        wait_for(lambda: consumer.stats.foreign_agent == SPANS_PER_RUN, what="spans dropped")
        wait_for(
            lambda: store.query_scalar("SELECT count() FROM spans") == SPANS_PER_RUN,
            what="the agent's own spans stored",
        )
    rows = store.query_rows("SELECT DISTINCT trace_id, sent_by, agent_name FROM spans")
    assert rows == [{"trace_id": own, "sent_by": "bot", "agent_name": "recon"}]
