"""Feedback in Kafka mode: POST /v1/feedback -> feedback topic (acks=all) -> FeedbackConsumer -> store."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from agentledger.collector import CollectorSettings
from agentledger.compose import build_collector_app
from agentledger.pipeline.consumers.feedback import FeedbackConsumer
from agentledger.pipeline.services.datasets import list_feedback
from agentledger.pipeline.settings import StoreSettings
from agentledger.server import AppServer
from tests.datasets import otlp


@pytest.fixture
def collector(kafka_settings, store) -> Iterator[AppServer]:
    """The production collector (Kafka sink) with the store attached for reads."""
    with AppServer(
        build_collector_app(
            CollectorSettings(no_auth=True, port=0), kafka_settings, StoreSettings(), store=store
        )
    ) as srv:
        yield srv


def _wait(predicate, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail("timed out")
        time.sleep(0.1)


def test_feedback_goes_through_kafka_into_the_store_once(collector, kafka_settings, store) -> None:
    span = otlp.chat_span("Is the refund policy 30 days?", "Yes.")
    body = [
        {
            "trace_id": span.trace_id,
            "span_id": span.span_id,
            "name": "thumbs",
            "label": "up",
            "annotator": "u1",
        },
        {"trace_id": span.trace_id, "name": "quality", "score": 0.8},
    ]
    resp = httpx.post(f"{collector.url}/v1/feedback", json=body, timeout=30)
    assert resp.status_code == 200, resp.text
    assert resp.json()["durable_in"] == "kafka"
    again = httpx.post(f"{collector.url}/v1/feedback", json=body, timeout=30)  # a client retry
    assert again.json()["ids"] == resp.json()["ids"]
    # a record that is not a feedback goes to the dead-letter topic, the rest is stored
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=kafka_settings.bootstrap_servers)
    producer.send(kafka_settings.feedback_topic, value=b"{not json").get(timeout=30)
    producer.close()

    consumer = FeedbackConsumer(kafka_settings, store)
    thread = threading.Thread(target=consumer.run, daemon=True)
    thread.start()
    try:
        _wait(lambda: consumer.stats.records >= 5)
        _wait(lambda: len(list_feedback(store, "default", trace_id=span.trace_id)) == 2)
    finally:
        consumer.stop()
        thread.join(timeout=60)
    assert not thread.is_alive()
    rows = {r["name"]: r for r in list_feedback(store, "default", trace_id=span.trace_id)}
    assert rows["thumbs"]["span_id"] == span.span_id and rows["thumbs"]["label"] == "up"
    assert rows["quality"]["span_id"] == "" and rows["quality"]["score"] == 0.8
    assert consumer.stats.dead_letters == 1
    # stored twice at the transport, once in the results
    assert (
        store.query_scalar(
            "SELECT count() FROM feedback_latest_v WHERE trace_id = {t:String}",
            {"t": span.trace_id},
        )
        == 2
    )
