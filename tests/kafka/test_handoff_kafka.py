"""A handoff through a real Kafka topic to an agent in another process: agent A (this process)
produces with kafka-python, agent B (a child process) consumes; B's spans link to A's handoff
spans and carry A's principal and the delegation chain planner -> executor."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic

from agentledger.instrumentation import acting_for, as_agent, inject_handoff
from agentledger.schemas.attributes import AgentLedger as AL
from tests.handoff.conftest import Recorded

_EXECUTOR = r"""
import json, sys
from kafka import KafkaConsumer
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from agentledger.instrumentation import receive_handoff
from agentledger.instrumentation.processors import AttributionProcessor

bootstrap, topic, expected = sys.argv[1], sys.argv[2], int(sys.argv[3])
exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(AttributionProcessor())
provider.add_span_processor(SimpleSpanProcessor(exporter))
tracer = provider.get_tracer("executor")
consumer = KafkaConsumer(
    topic, bootstrap_servers=bootstrap, group_id=topic + "-executor",
    auto_offset_reset="earliest", consumer_timeout_ms=30000,
)
handled = 0
for record in consumer:
    with receive_handoff(record.headers, agent_name="executor", tracer_provider=provider):
        with tracer.start_as_current_span("post_journal_entry"):
            pass
    handled += 1
    if handled == expected:
        break
consumer.close()
print(json.dumps([
    {
        "name": s.name,
        "trace_id": format(s.context.trace_id, "032x"),
        "span_id": format(s.context.span_id, "016x"),
        "links": [format(l.context.span_id, "016x") for l in s.links],
        "attributes": {k: list(v) if isinstance(v, tuple) else v for k, v in s.attributes.items()},
    }
    for s in exporter.get_finished_spans()
]))
"""


def test_kafka_handoff_to_an_agent_in_another_process(kafka_bootstrap: str) -> None:
    topic = f"handoff-{uuid.uuid4().hex[:10]}"
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    finally:
        admin.close()
    recorded = Recorded()
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    try:
        with acting_for("alice@acme.example", role="controller"), as_agent("planner"):
            for entry in ("JE-1", "JE-2", "JE-3"):
                headers = inject_handoff([], to_agent="executor", tracer_provider=recorded.provider)
                producer.send(topic, entry.encode(), headers=headers)
        producer.flush(30)
    finally:
        producer.close()
    out = subprocess.run(
        [sys.executable, "-c", _EXECUTOR, kafka_bootstrap, topic, "3"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    spans = json.loads(out.stdout)
    sent = {
        format(s.context.span_id, "016x"): s
        for s in recorded.spans()
        if s.name == "handoff executor"
    }
    received = [s for s in spans if s["name"] == "invoke_agent executor"]
    work = [s for s in spans if s["name"] == "post_journal_entry"]
    assert len(sent) == len(received) == len(work) == 3
    assert {link for s in received for link in s["links"]} == set(sent)  # each links to A's span
    for span in received + work:
        attrs = span["attributes"]
        assert attrs[AL.PRINCIPAL_ID] == "alice@acme.example"
        assert attrs[AL.DELEGATION_CHAIN] == ["planner", "executor"]
        assert attrs[AL.AGENT_NAME] == "executor"
    for span in received:
        (link,) = span["links"]
        assert span["attributes"][AL.HANDOFF_ID] == sent[link].attributes[AL.HANDOFF_ID]
        assert span["attributes"][AL.HANDOFF_FROM_AGENT] == "planner"
    recorded.provider.shutdown()
