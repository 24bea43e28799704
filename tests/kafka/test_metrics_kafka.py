"""Consumer lag and pipeline health as Prometheus metrics, against a real broker.

The pipeline runs as ``agentledger pipeline run`` wires it (``compose.build_pipeline``), in a
thread of this process over the session's chDB directory; its metrics endpoint is read over
HTTP. The lag is the group's: committed offset against end offset, per partition."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from agentledger.collector import CollectorSettings
from agentledger.compose import build_collector_app, build_pipeline
from agentledger.pipeline.consumers.lag import GroupLag
from agentledger.pipeline.settings import KafkaSettings, PipelineSettings, StoreSettings
from agentledger.pipeline.sinks import IngestBatch
from agentledger.pipeline.sinks.kafka import KafkaSink
from agentledger.pipeline.store.embedded import EmbeddedStore
from agentledger.pipeline.transport import OutgoingRecord, record_headers
from agentledger.pipeline.transport.kafka import KafkaTransport
from tests.collector.test_bad_input import PB, _request
from tests.collector.test_metrics import samples, value
from tests.kafka.conftest import free_port
from tests.kafka.test_kafka_path import wait_for

TRACES = 6
SPANS_PER_TRACE = 2


def _produce(settings: KafkaSettings) -> None:
    """Six traces of two spans (six records over the partitions) and one undecodable record."""
    sink = KafkaSink(settings)
    try:
        for _ in range(TRACES):
            request = _request(SPANS_PER_TRACE, name=f"op-{uuid.uuid4().hex[:6]}")
            trace_id = bytes.fromhex(uuid.uuid4().hex)
            for span in request.resource_spans[0].scope_spans[0].spans:
                span.trace_id = trace_id
            sink.write(IngestBatch("acme", time.time_ns(), request, SPANS_PER_TRACE))
    finally:
        sink.close()
    producer = KafkaTransport(settings).producer()
    try:
        poison = OutgoingRecord(
            settings.spans_topic, b"poison", b"\xff not protobuf", record_headers("acme", 1)
        )
        producer.send([poison], timeout=10)
    finally:
        producer.close()


def _lag(text: str, settings: KafkaSettings) -> dict[int, float]:
    return {
        int(dict(labels)["partition"]): v
        for (name, labels), v in samples(text).items()
        if name == "agentledger_pipeline_lag_records"
        and dict(labels)["group"] == settings.group_id
        and dict(labels)["topic"] == settings.spans_topic
    }


class RunningPipeline:
    """The pipeline process's runner in a thread; ``metrics`` is its endpoint's URL."""

    def __init__(self, settings: KafkaSettings, store: EmbeddedStore) -> None:
        port = free_port()
        pipeline = PipelineSettings(
            batch_max_spans=2000, batch_max_seconds=0.3, metrics_port=port, retry_max_seconds=1
        )
        self.runner = build_pipeline(settings, pipeline, StoreSettings(), store=store)
        self.metrics = f"http://127.0.0.1:{port}"
        self.thread = threading.Thread(target=self.runner.run, daemon=True)

    def __enter__(self) -> RunningPipeline:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.runner.stop()
        self.thread.join(timeout=60)
        assert not self.thread.is_alive()

    def scrape(self) -> str:
        try:
            return httpx.get(f"{self.metrics}/metrics", timeout=5).text
        except httpx.HTTPError:
            return ""


def test_group_lag_before_any_consumer(kafka_settings: KafkaSettings) -> None:
    transport = KafkaTransport(kafka_settings)
    with transport.admin() as admin:
        admin.ensure_topics()
    _produce(kafka_settings)
    lag = GroupLag(transport, [(kafka_settings.group_id, kafka_settings.spans_topic)])
    with transport.admin() as admin:
        snapshot = lag.refresh(admin)
        again = lag.refresh(admin)  # the admin's offsets client is reused
    rows = [p for group, p in snapshot.partitions if group == kafka_settings.group_id]
    assert len(rows) == kafka_settings.partitions
    assert sum(p.lag for p in rows) == TRACES + 1 and all(p.committed == 0 for p in rows)
    assert again.partitions == snapshot.partitions
    age = snapshot.age_seconds()
    assert age is not None and age >= 0


@pytest.fixture
def running(kafka_settings: KafkaSettings, store: EmbeddedStore) -> Iterator[RunningPipeline]:
    transport = KafkaTransport(kafka_settings)
    with transport.admin() as admin:
        admin.ensure_topics()
    _produce(kafka_settings)
    with RunningPipeline(kafka_settings, store) as pipeline:
        yield pipeline


def test_pipeline_metrics_show_consumption_lag_batches_and_dead_letters(
    running: RunningPipeline, kafka_settings: KafkaSettings, store: EmbeddedStore
) -> None:
    wait_for(
        lambda: (
            value(running.scrape(), "agentledger_pipeline_spans_stored_total")
            >= TRACES * SPANS_PER_TRACE
        ),
        what="spans stored, as the metrics say",
    )
    # committed offsets reach the end of every partition: the group's lag drains to 0
    wait_for(
        lambda: (
            (lag := _lag(running.scrape(), kafka_settings))
            and len(lag) == kafka_settings.partitions
            and sum(lag.values()) == 0
        ),
        what="group lag 0 on every partition",
    )
    text = running.scrape()
    assert value(text, "agentledger_pipeline_records_total") == TRACES + 1
    assert value(text, "agentledger_pipeline_spans_stored_total") == TRACES * SPANS_PER_TRACE
    assert value(text, "agentledger_pipeline_dead_letters_total") == 1
    batches = value(text, "agentledger_pipeline_batches_total")
    assert batches >= 1
    assert value(text, "agentledger_pipeline_batch_seconds_count") == batches
    assert value(text, "agentledger_pipeline_batch_seconds_bucket", le="+Inf") == batches
    assert value(text, "agentledger_pipeline_store_available") == 1
    ends = {
        int(dict(labels)["partition"]): v
        for (name, labels), v in samples(text).items()
        if name == "agentledger_pipeline_end_offset"
        and dict(labels)["topic"] == kafka_settings.spans_topic
    }
    assert sum(ends.values()) == TRACES + 1
    # the intents and feedback groups are watched too
    groups = {dict(labels)["group"] for (name, labels) in samples(text) if "offset" in name}
    assert {
        kafka_settings.group_id,
        f"{kafka_settings.group_id}.governance",
        f"{kafka_settings.group_id}-feedback",
    } <= groups
    assert 0 <= samples(text)[("agentledger_pipeline_lag_age_seconds", ())] < 30
    status = httpx.get(f"{running.metrics}/status", timeout=5).json()
    assert status["spans"] == TRACES * SPANS_PER_TRACE and status["dead_letters"] == 1
    assert httpx.get(f"{running.metrics}/healthz", timeout=5).status_code == 200
    assert store.query_scalar("SELECT count() FROM spans") == TRACES * SPANS_PER_TRACE


def test_kafka_collector_counts_records_produced(kafka_settings: KafkaSettings) -> None:
    from fastapi.testclient import TestClient

    app = build_collector_app(
        CollectorSettings(no_auth=True, port=0), kafka_settings, StoreSettings()
    )
    with TestClient(app) as client:
        request = _request(3)
        for i, span in enumerate(request.resource_spans[0].scope_spans[0].spans):
            span.trace_id = bytes([i + 1] * 16)  # three traces: three records
        resp = client.post(
            "/v1/traces", content=request.SerializeToString(), headers={"Content-Type": PB}
        )
        assert resp.status_code == 200
        text = client.get("/metrics").text
    assert value(text, "agentledger_collector_records_produced_total") == 3
    assert value(text, "agentledger_collector_spans_accepted_total") == 3
