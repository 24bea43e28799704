"""OTLP logs in Kafka mode: POST /v1/logs -> logs topic (acks=all) -> the pipeline's LogConsumer ->
store, wired as ``agentledger collector`` and ``agentledger pipeline run`` wire them; the captured
GenAI events of ``opentelemetry-instrumentation-openai-v2`` become the chat span's messages."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import httpx
import pytest

from agentledger.collector import CollectorSettings
from agentledger.compose import build_collector_app, build_pipeline
from agentledger.pipeline.consumers.logs import LogConsumer
from agentledger.pipeline.services import queries
from agentledger.pipeline.settings import KafkaSettings, PipelineSettings, StoreSettings
from agentledger.pipeline.transport.base import OutgoingRecord
from agentledger.pipeline.transport.kafka import KafkaTransport
from agentledger.server import AppServer
from tests.logs.conftest import MANIFEST, PB, ids, payload


def _wait(predicate: Callable[[], bool], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail("timed out")
        time.sleep(0.2)


def test_logs_go_through_kafka_into_the_store_and_join_their_span(
    kafka_settings: KafkaSettings, store
) -> None:
    trace_id, span_id = ids("events")
    app = build_collector_app(
        CollectorSettings(no_auth=True, port=0), kafka_settings, StoreSettings(), store=store
    )
    with AppServer(app) as collector:
        for signal in ("logs", "traces", "logs"):  # logs first, and once more (a client retry)
            resp = httpx.post(
                f"{collector.url}/v1/{signal}", content=payload("events", signal), headers=PB
            )
            assert resp.status_code == 200, resp.text
    transport = KafkaTransport(kafka_settings)
    producer = transport.producer()
    producer.send([OutgoingRecord(kafka_settings.logs_topic, b"x", b"\x0a\xff\xff\xff")], 30)
    producer.close()

    pipeline = PipelineSettings(batch_max_spans=2000, batch_max_seconds=0.3, metrics_port=0)
    runner = build_pipeline(kafka_settings, pipeline, StoreSettings(), store=store)
    (logs,) = [c for c in runner.side_consumers if isinstance(c, LogConsumer)]
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    try:
        _wait(  # both requests stored (3 records each), the bad record dead-lettered, the span in
            lambda: (
                logs.stats.log_records >= 6
                and logs.stats.dead_letters >= 1
                and runner.consumer.stats.spans >= 1
            )
        )
    finally:
        runner.stop()
        thread.join(timeout=60)
    assert not thread.is_alive()
    assert logs.stats.dead_letters == 1 and logs.stats.log_records == 6
    stored = store.query_scalar(
        "SELECT count() FROM logs FINAL WHERE trace_id = {t:String}", {"t": trace_id}
    )
    assert stored == 3  # sent twice at the transport, once in the results
    (chat,) = [s for s in queries.get_trace(store, "default", trace_id) if s["span_id"] == span_id]
    assert chat["output_preview"] == MANIFEST["events"]["answer"]
    assert [log["event_name"] for log in chat["logs"]] == [
        "gen_ai.system.message",
        "gen_ai.user.message",
        "gen_ai.choice",
    ]
    assert queries.get_contents(store, "default", [chat["input_hash"]])
