"""Idempotency in Kafka mode with store-less collectors: a replica refuses what conflicts with
what it accepted itself; what it cannot know (another replica's records) the pipeline's
IntentConsumer decides: duplicates dropped, conflicts and outcomes without intent
dead-lettered. Real broker, real collectors, real consumer into a ClickHouse-protocol store."""

from __future__ import annotations

import hashlib
import threading
import time
import uuid
from typing import Any

import httpx
import pytest

from agentledger.collector import CollectorSettings
from agentledger.compose import build_collector_app
from agentledger.pipeline.consumers.intents import IntentConsumer
from agentledger.pipeline.settings import KafkaSettings, PipelineSettings, StoreSettings
from agentledger.schemas.topics import Headers
from agentledger.server import AppServer
from tests.kafka.test_governance_kafka import _records


def _wait_for(predicate: Any, timeout: float = 60, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


def _intent(intent_id: str, arguments: str) -> dict[str, Any]:
    return {
        "intent_id": intent_id,
        "requested_at_ns": 1_760_000_000_000_000_000,
        "tool_name": "pay",
        "arguments": arguments,
        "arguments_sha256": hashlib.sha256(arguments.encode()).hexdigest(),
    }


def test_store_less_replicas_and_the_consumer_keep_one_record_per_key(
    kafka_settings: KafkaSettings, pipeline_settings: PipelineSettings, ch_store: Any
) -> None:
    def replica() -> AppServer:
        return AppServer(
            build_collector_app(
                CollectorSettings(no_auth=True, port=0), kafka_settings, StoreSettings()
            )
        )

    x, never_asked = uuid.uuid4().hex, uuid.uuid4().hex
    ask, other = _intent(x, '{"amount":10}'), _intent(x, '{"amount":10000}')
    with replica() as a, replica() as b, replica() as c:
        assert a.app.state.services.governance.get().store is None  # nothing to look up
        assert httpx.post(f"{a.url}/v1/intents", json=ask).status_code == 200
        assert httpx.post(f"{a.url}/v1/intents", json=ask).status_code == 200  # not produced
        assert httpx.post(f"{a.url}/v1/intents", json=other).status_code == 409  # a knows
        assert httpx.post(f"{b.url}/v1/intents", json=ask).status_code == 200  # b cannot know
        assert httpx.post(f"{b.url}/v1/intents", json=other).status_code == 409  # now b knows
        assert httpx.post(f"{c.url}/v1/intents", json=other).status_code == 200  # c cannot
        orphan = httpx.post(f"{a.url}/v1/intents/{never_asked}/outcome", json={"status": "ok"})
        assert orphan.status_code == 200  # its intent may be on another replica's way
        done = {"status": "ok", "finished_at_ns": 1_760_000_000_100_000_000}
        assert httpx.post(f"{a.url}/v1/intents/{x}/outcome", json=done).status_code == 200
        second = httpx.post(f"{a.url}/v1/intents/{x}/outcome", json={"status": "error"})
        assert second.status_code == 409

    assert len(_records(kafka_settings, kafka_settings.intents_topic)) == 5
    consumer = IntentConsumer(kafka_settings, pipeline_settings, ch_store)
    thread = threading.Thread(target=consumer.run, daemon=True)
    thread.start()
    try:
        _wait_for(lambda: consumer.stats.records >= 5, what="the intents topic consumed")
    finally:
        consumer.stop()
        thread.join(timeout=60)
    assert consumer.stats.duplicates == 1 and consumer.stats.conflicts == 2
    rows = ch_store.query_rows(
        "SELECT kind, record_id, body FROM records WHERE record_id IN {ids:Array(String)}",
        {"ids": [x, never_asked]},
    )
    assert sorted((r["kind"], r["record_id"]) for r in rows) == [("intent", x), ("outcome", x)]
    assert '"arguments":"{\\"amount\\":10}"' in next(
        r["body"] for r in rows if r["kind"] == "intent"
    )
    dead = _records(kafka_settings, kafka_settings.dead_letter_topic)
    reasons = sorted(dict(r.headers)[Headers.ERROR].decode() for r in dead)
    assert len(reasons) == 2 and all(r.startswith("conflict: ") for r in reasons)
    assert any("another request" in r for r in reasons)
    assert any(f"no intent {never_asked}" in r for r in reasons)
