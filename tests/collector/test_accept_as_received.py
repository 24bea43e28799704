"""A clean OTLP protobuf request is accepted exactly as received: the compiled normalizer checks
it (parses, valid ids, no value over the limit) without the collector building the message, and
the sink gets the bytes. Anything to drop or cut takes the parsing path, which names problems."""

from __future__ import annotations

from fastapi.testclient import TestClient
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from agentledger.collector import CollectorSettings
from agentledger.compose import build_edge_app
from agentledger.pipeline.sinks.memory import MemorySink
from tests.collector.test_bad_input import PB, _request


def _client(sink: MemorySink, **settings) -> TestClient:
    return TestClient(build_edge_app(CollectorSettings(no_auth=True, **settings), sink))


def test_clean_request_reaches_the_sink_as_received_and_parses_on_demand() -> None:
    sink = MemorySink()
    body = _request(3, value="short").SerializeToString()
    resp = _client(sink, max_attribute_length=64).post(
        "/v1/traces", content=body, headers={"Content-Type": PB}
    )
    assert resp.status_code == 200
    assert not ExportTraceServiceResponse.FromString(resp.content).HasField("partial_success")
    (batch,) = sink.batches
    assert batch.raw == body and batch.span_count == 3
    assert batch._request is None  # not parsed by the collector
    assert [s.name for s in batch.request.resource_spans[0].scope_spans[0].spans] == ["op"] * 3


def test_requests_needing_changes_take_the_parsing_path() -> None:
    sink = MemorySink()
    client = _client(sink, max_attribute_length=8)
    long_value = _request(2, value="x" * 20).SerializeToString()
    assert (
        client.post("/v1/traces", content=long_value, headers={"Content-Type": PB}).status_code
        == 200
    )
    bad_id = _request(2)
    bad_id.resource_spans[0].scope_spans[0].spans[1].span_id = b"\x00" * 8
    resp = client.post(
        "/v1/traces", content=bad_id.SerializeToString(), headers={"Content-Type": PB}
    )
    assert ExportTraceServiceResponse.FromString(resp.content).partial_success.rejected_spans == 1
    cut, dropped = sink.batches
    assert cut.raw is None and cut.span_count == 2
    attrs = {
        kv.key: kv.value for kv in cut.request.resource_spans[0].scope_spans[0].spans[0].attributes
    }
    assert attrs["payload"].string_value == "x" * 8 and "agentledger.truncated_attributes" in attrs
    assert dropped.raw is None and dropped.span_count == 1


def test_span_limit_applies_to_requests_accepted_as_received() -> None:
    sink = MemorySink()
    resp = _client(sink, max_spans_per_request=2).post(
        "/v1/traces", content=_request(3).SerializeToString(), headers={"Content-Type": PB}
    )
    assert resp.status_code == 413 and "3 spans, over the limit of 2" in resp.text
    assert not sink.batches
