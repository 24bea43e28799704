"""The producers built on a transport (spans sink, intents log, feedback producer) over the
in-memory double: record layout, and refusals mapped to the caller's errors."""

from __future__ import annotations

from datetime import datetime, timezone

import orjson
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from agentledger.pipeline.consumers.feedback import FeedbackProducer
from agentledger.pipeline.consumers.spans import SpanConsumer
from agentledger.pipeline.governance import GovernanceRejected, GovernanceUnavailable
from agentledger.pipeline.governance.kafka_log import KafkaLog
from agentledger.pipeline.governance.records import (
    Decision,
    IntentIn,
    OutcomeIn,
    OutcomeStatus,
    intent_record,
    outcome_record,
)
from agentledger.pipeline.normalize import OtlpNormalizer
from agentledger.pipeline.services.datasets.feedback import FeedbackRecord
from agentledger.pipeline.settings import PipelineSettings
from agentledger.pipeline.sinks import IngestBatch, SinkRejected, SinkUnavailable
from agentledger.pipeline.sinks.kafka import KafkaSink
from agentledger.pipeline.transport import (
    MemoryTransport,
    RecordTooLarge,
    TransportUnavailable,
    header_map,
)
from agentledger.schemas.topics import Headers
from bench.traffic import SPANS_PER_RUN, requests
from tests.transport.conftest import Running, wait_for


def _request(traces: int, spans: int, blob: int = 0) -> ExportTraceServiceRequest:
    req = ExportTraceServiceRequest()
    scope = req.resource_spans.add().scope_spans.add()
    for t in range(traces):
        for s in range(spans):
            span = scope.spans.add()
            span.trace_id, span.span_id = bytes([t + 1]) * 16, bytes([s + 1]) * 8
            span.name = f"t{t}s{s}"
            if blob:
                kv = span.attributes.add()
                kv.key, kv.value.string_value = "blob", "x" * blob
    return req


def _batch(req: ExportTraceServiceRequest) -> IngestBatch:
    count = sum(len(ss.spans) for rs in req.resource_spans for ss in rs.scope_spans)
    return IngestBatch("acme", 1234, req, count)


def test_the_sink_writes_one_record_per_trace_with_the_headers(transport: MemoryTransport) -> None:
    sink = KafkaSink(transport)
    assert set(transport.topics()) == {
        "spans",
        "logs",
        "spans.dlq",
        "feedback",
        "intents",
        "controls",
    }
    sink.write(_batch(_request(traces=3, spans=2)))
    records = transport.records("spans")
    assert len(records) == 3 and sink.records_sent == 3
    for record in records:
        decoded = ExportTraceServiceRequest.FromString(record.value or b"")
        spans = [s for rs in decoded.resource_spans for ss in rs.scope_spans for s in ss.spans]
        assert len(spans) == 2 and {s.trace_id.hex().encode() for s in spans} == {record.key}
        headers = header_map(record.headers)
        assert headers[Headers.TENANT] == "acme" and headers[Headers.RECEIVED_AT] == "1234"


def test_the_sink_cuts_a_large_trace_and_refuses_a_span_too_large_with_413(
    transport: MemoryTransport,
) -> None:
    sink = KafkaSink(transport)  # max_record_bytes 64 KiB
    sink.write(_batch(_request(traces=1, spans=8, blob=20_000)))  # ~160 KB of one trace
    records = transport.records("spans")
    assert len(records) > 1 and len({r.key for r in records}) == 1
    assert len({r.partition for r in records}) == 1  # same key, same partition, in order
    assert (
        sum(
            len(ss.spans)
            for r in records
            for rs in ExportTraceServiceRequest.FromString(r.value or b"").resource_spans
            for ss in rs.scope_spans
        )
        == 8
    )
    with pytest.raises(SinkRejected, match="over the record limit") as refused:
        sink.write(_batch(_request(traces=1, spans=1, blob=100_000)))
    assert refused.value.status == 413


def test_the_sink_maps_refusals_and_outages(transport: MemoryTransport) -> None:
    sink = KafkaSink(transport)
    transport.fail_sends_with = RecordTooLarge("MessageSizeTooLargeError")
    with pytest.raises(SinkRejected) as refused:
        sink.write(_batch(_request(1, 1)))
    assert refused.value.status == 413
    transport.fail_sends_with = TransportUnavailable("KafkaTimeoutError: no ack")
    with pytest.raises(SinkUnavailable, match="did not acknowledge") as unavailable:
        sink.write(_batch(_request(1, 1)))
    assert unavailable.value.retry_after == 2
    assert sink.ready()
    transport.available = False
    sink._ready_checked = 0.0  # past the one-second cache
    assert not sink.ready()
    sink.close()
    sink.close()


def test_the_intents_log_keys_records_by_intent_and_maps_refusals(
    transport: MemoryTransport,
) -> None:
    log = KafkaLog(transport)
    intent = IntentIn(intent_id="1" * 32, tool_name="t", arguments_sha256="0" * 64)
    asked = intent_record("acme", intent, Decision.PROCEED, "", 1_000_000_000)
    done = outcome_record("acme", intent.intent_id, OutcomeIn(status=OutcomeStatus.OK), 2_000_000)
    log.append(asked, intent.intent_id)
    log.append(done, intent.intent_id)
    records = transport.records("intents")
    values = [orjson.loads(r.value or b"") for r in records]
    assert [v["kind"] for v in values] == ["intent", "outcome"]
    assert values[0] == asked.to_json()  # the record the collector made, as it is
    assert {r.key for r in records} == {intent.intent_id.encode()}
    assert len({r.partition for r in records}) == 1
    transport.fail_sends_with = RecordTooLarge("too large")
    with pytest.raises(GovernanceRejected) as refused:
        log.append(asked, "intent-2")
    assert refused.value.status == 413
    transport.fail_sends_with = TransportUnavailable("down")
    with pytest.raises(GovernanceUnavailable, match="Kafka did not acknowledge"):
        log.append(asked, "intent-2")
    log.close()


def test_the_feedback_producer_sends_by_trace_and_raises_unavailable(
    transport: MemoryTransport,
) -> None:
    producer = FeedbackProducer(transport)
    record = FeedbackRecord(
        tenant="acme",
        trace_id="ab" * 16,
        span_id="",
        name="thumbs",
        feedback_id="f1",
        label="up",
        created_at=datetime.now(timezone.utc),
    )
    producer.send([record], received_at_ns=99)
    (sent,) = transport.records("feedback")
    assert sent.key == ("ab" * 16).encode()
    assert FeedbackRecord.model_validate_json(sent.value or b"") == record
    assert header_map(sent.headers)[Headers.RECEIVED_AT] == "99"
    transport.fail_sends_with = RecordTooLarge("too large")
    with pytest.raises(TransportUnavailable):
        producer.send([record])
    producer.close()


def test_spans_through_the_double_are_stored_once(transport: MemoryTransport, store) -> None:
    """Sink -> in-memory topic -> span consumer -> store, every record delivered twice."""
    sink = KafkaSink(transport)
    reqs = list(requests(6, runs_per_request=2, seed=7))
    for req in reqs + reqs:
        sink.write(_batch(req))
    consumer = SpanConsumer(
        transport,
        PipelineSettings(batch_max_seconds=0.1, metrics_port=0, retry_max_seconds=0.2),
        store,
        OtlpNormalizer(),
        default_tenant="default",
    )
    with Running(consumer):
        wait_for(lambda: consumer.stats.records >= 12, "every record consumed")
    assert store.query_scalar("SELECT count() FROM spans FINAL") == 6 * SPANS_PER_RUN
    assert store.query_scalar("SELECT uniqExact(tenant) FROM spans") == 1
    assert consumer.stats.dead_letters == 0
