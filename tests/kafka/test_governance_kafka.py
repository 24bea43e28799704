"""Governance in Kafka mode: intents acknowledged only once the broker has them (acks=all),
stored by the pipeline's IntentConsumer; run controls with and without a collector store."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from agentledger.collector import CollectorSettings
from agentledger.compose import build_collector_app
from agentledger.instrumentation import governance
from agentledger.instrumentation.governance import flush_outcomes, governed_tool
from agentledger.pipeline.consumers.intents import IntentConsumer
from agentledger.pipeline.settings import KafkaSettings, PipelineSettings, StoreSettings
from agentledger.schemas.records import Record
from agentledger.schemas.topics import Headers
from agentledger.server import AppServer


def _records(kafka: KafkaSettings, topic: str, timeout_s: float = 10.0) -> list[Any]:
    """Every record on ``topic`` so far (a throw-away consumer from the beginning)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        bootstrap_servers=kafka.bootstrap_servers,
        enable_auto_commit=False,
        consumer_timeout_ms=1000,
    )
    try:
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        ends = consumer.end_offsets(parts)
        out: list[Any] = []
        deadline = time.monotonic() + timeout_s
        while any(consumer.position(tp) < ends[tp] for tp in parts) and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                out.extend(batch)
        return out
    finally:
        consumer.close()


class _Running:
    def __init__(self, consumer: IntentConsumer) -> None:
        self.consumer = consumer
        self.thread = threading.Thread(target=consumer.run, daemon=True)

    def __enter__(self) -> IntentConsumer:
        self.thread.start()
        return self.consumer

    def __exit__(self, *exc: object) -> None:
        self.consumer.stop()
        self.thread.join(timeout=60)
        assert not self.thread.is_alive()


def _wait_for(predicate: Any, timeout: float = 60, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


def _collector(kafka_settings: KafkaSettings, store_settings: StoreSettings) -> AppServer:
    return AppServer(
        build_collector_app(CollectorSettings(no_auth=True, port=0), kafka_settings, store_settings)
    )


@pytest.fixture
def governed_to() -> Iterator[Any]:
    def point(url: str) -> None:
        governance.configure_governance(url, initial_backoff_s=0.02, max_backoff_s=0.1)

    yield point
    flush_outcomes(5)
    governance.cancel_paused_runs()
    governance.configure_governance("http://127.0.0.1:9")


_LATEST = {  # what the record log holds of each kind, as it stands: the latest record per key
    "intents": ("intents_v", "intent_id", "attempt DESC, received_at DESC"),
    "intent_outcomes": ("intent_outcomes_v", "intent_id", "received_at DESC"),
    "controls": ("controls_v", "control_id", "created_at DESC"),
}


def _rows(store: Any, kind: str, **where: str) -> list[dict[str, Any]]:
    view, key, order = _LATEST[kind]
    cond = " AND ".join(f"{k} = {{{k}:String}}" for k in where) or "1"
    return store.query_rows(
        f"SELECT * FROM {view} WHERE {cond} ORDER BY {order} LIMIT 1 BY {key}", dict(where)
    )


def test_intents_are_on_the_topic_before_the_tool_runs_and_the_pipeline_stores_them(
    kafka_settings: KafkaSettings,
    pipeline_settings: PipelineSettings,
    ch_store: Any,
    endpoint: Any,
    governed_to: Any,
) -> None:
    seen_in_body: list[list[dict[str, Any]]] = []

    @governed_tool
    def approve_invoice(invoice: str, amount: int) -> str:
        records = _records(kafka_settings, kafka_settings.intents_topic)
        seen_in_body.append([orjson.loads(r.value) for r in records])
        return "approved"

    store_settings = StoreSettings(clickhouse_url=endpoint.url, database=ch_store.database)
    with _collector(kafka_settings, store_settings) as collector:
        governed_to(collector.url)
        assert approve_invoice("INV-9", 1200) == "approved"
        assert flush_outcomes(10)

    (in_body,) = seen_in_body
    (value,) = in_body  # on the topic, acknowledged, before the body ran
    assert value["kind"] == "intent" and value["actor"] == "api"  # a record of the record log
    intent = Record.from_json(value).fields()  # its body matches its hash
    assert intent["tool_name"] == "approve_invoice"
    assert intent["arguments"] == '{"amount":1200,"invoice":"INV-9"}'
    records = _records(kafka_settings, kafka_settings.intents_topic)
    assert [orjson.loads(r.value)["kind"] for r in records] == ["intent", "outcome"]
    assert all(r.key == intent["intent_id"].encode() for r in records)  # one partition, in order
    assert dict(records[0].headers)[Headers.TENANT] == b"default"

    consumer = IntentConsumer(kafka_settings, pipeline_settings, ch_store)
    with _Running(consumer):
        _wait_for(lambda: _rows(ch_store, "intent_outcomes"), what="the outcome stored")
    (row,) = _rows(ch_store, "intents", tool_name="approve_invoice")
    assert row["intent_id"] == intent["intent_id"] and row["arguments"] == intent["arguments"]
    assert row["tenant"] == "default" and row["decision"] == "proceed"
    assert row["body"] == value["body"]  # stored as the collector made it
    (outcome,) = _rows(ch_store, "intent_outcomes", intent_id=row["intent_id"])
    assert outcome["status"] == "ok" and outcome["result"] == '"approved"'

    # a second consumer group re-reads everything (redelivery): reads stay exact
    again = IntentConsumer(
        kafka_settings.model_copy(update={"group_id": f"g{uuid.uuid4().hex[:8]}"}),
        pipeline_settings,
        ch_store,
    )
    with _Running(again):
        _wait_for(lambda: again.stats.records >= 2, what="the replay")
    assert len(_rows(ch_store, "intents")) == 1 and len(_rows(ch_store, "intent_outcomes")) == 1


def test_broker_down_the_tool_does_not_run(
    kafka_settings: KafkaSettings, governed_to: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    with _collector(kafka_settings, StoreSettings(clickhouse_url=None)) as collector:
        governed_to(collector.url)
        service = collector.app.state.services.governance.get()

        def refuse(*args: Any, **kwargs: Any) -> Any:
            from kafka.errors import KafkaTimeoutError

            raise KafkaTimeoutError("Failed to update metadata after 5.0 secs.")

        # kafka-python's own producer fails: the transport's boundary translates its error
        monkeypatch.setattr(service.intents._producer._client, "send", refuse)
        ran: list[int] = []

        @governed_tool
        def close_books(period: int) -> None:
            ran.append(period)

        with pytest.raises(governance.IntentNotRecorded, match="503.*Kafka did not acknowledge"):
            close_books(2026)
        assert ran == []


@pytest.mark.parametrize(
    "with_store", [True, False], ids=["controls-in-store", "controls-in-memory"]
)
def test_pause_and_resume_in_kafka_mode(
    kafka_settings: KafkaSettings,
    pipeline_settings: PipelineSettings,
    ch_store: Any,
    endpoint: Any,
    governed_to: Any,
    with_store: bool,
) -> None:
    store_settings = (
        StoreSettings(clickhouse_url=endpoint.url, database=ch_store.database)
        if with_store
        else StoreSettings(clickhouse_url=None)
    )
    ran: list[str] = []

    @governed_tool(agent="kafka-agent")
    def settle(trade: str) -> str:
        ran.append(trade)
        return trade

    with _collector(kafka_settings, store_settings) as collector:
        governed_to(collector.url)
        url = collector.url
        pause = httpx.post(
            f"{url}/v1/controls",
            json={
                "action": "pause",
                "scope": "agent",
                "target": "kafka-agent",
                "by": "risk-desk",
                "reason": "limit breach",
            },
        )
        assert pause.status_code == 200, pause.text
        if with_store:  # stored before the answer, where every replica reads it
            # recorded by the key ("api" without keys); the body's by is kept as a note
            assert [(r["by"], r["note"]) for r in _rows(ch_store, "controls")] == [
                ("api", "risk-desk")
            ]
        listed = httpx.get(f"{url}/v1/controls").json()
        assert listed["shared"] is True  # the store, or the controls topic every replica follows
        assert [(c["target"], c["reason"]) for c in listed["controls"]] == [
            ("kafka-agent", "limit breach")
        ]

        service = collector.app.state.services.governance.get()
        decisions: list[str] = []
        ask = service.ask

        def recording_ask(*args: Any, **kwargs: Any) -> Any:
            ack = ask(*args, **kwargs)
            decisions.append(ack.decision.value)
            return ack

        service.ask = recording_ask  # type: ignore[method-assign]
        thread = threading.Thread(target=settle, args=("T-1",))
        thread.start()
        _wait_for(lambda: decisions.count("paused") >= 2, what="the call parked and re-asking")
        assert ran == [] and thread.is_alive()
        resume = httpx.post(
            f"{url}/v1/controls",
            json={
                "action": "resume",
                "scope": "agent",
                "target": "kafka-agent",
                "by": "risk-desk",
                "reason": "cleared",
            },
        )
        assert resume.status_code == 200
        thread.join(30)
        assert ran == ["T-1"]
        assert flush_outcomes(10)

    consumer = IntentConsumer(kafka_settings, pipeline_settings, ch_store)
    with _Running(consumer):
        _wait_for(lambda: _rows(ch_store, "intent_outcomes"), what="the outcome stored")
    (intent,) = _rows(ch_store, "intents", tool_name="settle")
    assert intent["decision"] == "proceed" and intent["attempt"] >= 1
    controls = sorted(
        (r["action"], r["by"], r["note"], r["reason"]) for r in _rows(ch_store, "controls")
    )
    # in memory mode the controls went through the topic, so the pipeline keeps who and why too
    assert controls == [
        ("pause", "api", "risk-desk", "limit breach"),
        ("resume", "api", "risk-desk", "cleared"),
    ]


def test_records_that_are_not_governance_records_are_dead_lettered(
    kafka_settings: KafkaSettings,
    pipeline_settings: PipelineSettings,
    ch_store: Any,
) -> None:
    from kafka import KafkaProducer

    from agentledger.pipeline.transport.kafka import ensure_topics

    ensure_topics(kafka_settings)
    producer = KafkaProducer(bootstrap_servers=kafka_settings.bootstrap_servers)
    good = {
        "type": "control",
        "tenant": "default",
        "created_at": time.time_ns(),
        "control_id": uuid.uuid4().hex,
        "action": "pause",
        "scope": "session",
        "target": "s",
        "by": "x",
        "reason": "y",
    }
    producer.send(kafka_settings.intents_topic, key=b"k", value=b"not json at all")
    producer.send(
        kafka_settings.intents_topic,
        key=b"k",
        value=orjson.dumps({"type": "intent", "tenant": "t"}),
    )
    producer.send(kafka_settings.intents_topic, key=b"k", value=orjson.dumps(good))
    producer.flush()
    producer.close()
    consumer = IntentConsumer(kafka_settings, pipeline_settings, ch_store)
    with _Running(consumer):
        _wait_for(lambda: _rows(ch_store, "controls"), what="the good record stored")
    assert consumer.stats.dead_letters == 2
    dead = _records(kafka_settings, kafka_settings.dead_letter_topic)
    assert min(r.value for r in dead) == b"not json at all"
    assert all(dict(r.headers)[Headers.ERROR].startswith(b"not a governance record") for r in dead)
