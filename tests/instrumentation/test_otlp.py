"""The direct OTLP encoder writes what the SDK's encoder writes."""

from __future__ import annotations

from typing import Any

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import (
    Link,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
)

from agentledger.instrumentation.otlp import FastOTLPSpanExporter, encode_request


def _spans() -> list[Any]:
    memory = InMemorySpanExporter()
    spans = []
    for service in ("svc-a", "svc-b"):
        tp = TracerProvider(resource=Resource.create({"service.name": service, "deployment": 3}))
        tp.add_span_processor(SimpleSpanProcessor(memory))
        for scope in ("scope-1", "scope-2"):
            tracer = tp.get_tracer(
                scope, "1.2.3", schema_url="https://opentelemetry.io/schemas/1.21.0"
            )
            remote = SpanContext(
                0xABC,
                0xDEF,
                is_remote=True,
                trace_flags=TraceFlags(1),
                trace_state=TraceState([("vendor", "x")]),
            )
            with tracer.start_as_current_span(
                "root",
                kind=SpanKind.SERVER,
                links=[Link(remote, {"why": "batch"})],
                attributes={
                    "s": "ü✓ text",
                    "i": -42,
                    "big": 2**62,
                    "f": 0.25,
                    "b": True,
                    "no": False,
                    "arr": ["x", "y"],
                    "ints": [1, 2],
                    "empty": "",
                    "bytes": b"\x00\x01",
                },
            ) as root:
                root.add_event("thing", {"k": "v", "n": 7})
                with tracer.start_as_current_span("child", kind=SpanKind.CLIENT) as child:
                    child.set_status(Status(StatusCode.ERROR, "boom"))
                    child.record_exception(ValueError("bad"))
            with tracer.start_as_current_span("ok") as ok:
                ok.set_status(Status(StatusCode.OK))
    spans += memory.get_finished_spans()
    return spans


def test_direct_encoding_decodes_to_the_sdk_message() -> None:
    spans = _spans()
    ours = ExportTraceServiceRequest.FromString(encode_request(spans))
    sdk = encode_spans(spans)
    assert ours == sdk
    assert encode_request(spans) == sdk.SerializeToString()  # byte for byte, field order included


def test_fast_exporter_posts_what_the_collector_stores(server: Any) -> None:
    from agentledger.pipeline.services import queries

    spans = _spans()
    exporter = FastOTLPSpanExporter(endpoint=f"{server.url}/v1/traces")
    assert exporter.export(spans).name == "SUCCESS"
    stored = [
        r
        for t in queries.list_traces(server.store, "default")
        for r in queries.get_trace(server.store, "default", t["trace_id"])
    ]
    assert len(stored) == len(spans) == 12
    child = next(r for r in stored if r["name"] == "child")
    assert (
        child["status_code"] == "ERROR"
        and child["status_message"] == "boom"
        and "ValueError" in child["events"]
    )
    root = next(r for r in stored if r["name"] == "root" and r["service"] == "svc-b")
    assert root["attributes"]["s"] == "ü✓ text" and root["attributes"]["i"] == "-42"
