"""The real OpenTelemetry SDK exporters (OTLP/HTTP protobuf and JSON) into the embedded server."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Status, StatusCode


def _exporter(kind: str, endpoint: str, headers: dict[str, str] | None = None):
    if kind == "protobuf":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    else:
        from opentelemetry.exporter.otlp.json.http.trace_exporter import OTLPSpanExporter
    return OTLPSpanExporter(endpoint=endpoint, headers=headers)


def _emit(exporter, service: str) -> str:
    provider = TracerProvider(
        resource=Resource.create({"service.name": service, "deployment.environment": "test"})
    )
    provider.add_span_processor(BatchSpanProcessor(exporter))
    tracer = provider.get_tracer("tests.ingest", "1.2.3")
    with tracer.start_as_current_span(
        "agent run", attributes={"openinference.span.kind": "AGENT"}
    ) as root:
        with tracer.start_as_current_span(
            "chat gpt-4o",
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "openai",
                "gen_ai.request.model": "gpt-4o",
                "gen_ai.response.model": "gpt-4o-2024-08-06",
                "gen_ai.usage.input_tokens": 120,
                "gen_ai.usage.output_tokens": 30,
                "gen_ai.response.finish_reasons": ["stop"],
                "custom.flag": True,
                "custom.ratio": 0.25,
            },
        ):
            pass
        with tracer.start_as_current_span(
            "failing tool",
            attributes={"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "lookup"},
        ) as span:
            span.add_event("exception", {"exception.type": "KeyError", "exception.message": "JE-1"})
            span.set_status(Status(StatusCode.ERROR, "lookup failed"))
        trace_id = format(root.get_span_context().trace_id, "032x")
    assert provider.force_flush(10_000)
    provider.shutdown()
    return trace_id


@pytest.mark.parametrize("encoding", ["protobuf", "json"])
def test_sdk_exporter_spans_are_stored(server, encoding) -> None:
    trace_id = _emit(_exporter(encoding, f"{server.url}/v1/traces"), f"svc-{encoding}")
    rows = {
        r["name"]: r
        for r in server.store.query_rows(
            "SELECT * FROM spans WHERE trace_id = {t:String}", {"t": trace_id}
        )
    }
    assert set(rows) == {"agent run", "chat gpt-4o", "failing tool"}
    llm = rows["chat gpt-4o"]
    assert llm["tenant"] == "default"
    assert llm["kind"] == "LLM" and llm["convention"] == "otel_genai"
    assert (llm["request_model"], llm["response_model"], llm["provider"]) == (
        "gpt-4o",
        "gpt-4o-2024-08-06",
        "openai",
    )
    assert (llm["input_tokens"], llm["output_tokens"]) == (120, 30)
    assert llm["cost_source"] == "price_table" and llm["cost_usd"] == pytest.approx(
        (120 * 2.5 + 30 * 10) / 1e6
    )
    attrs = dict(llm["attributes"])
    assert attrs["custom.flag"] == "true" and attrs["custom.ratio"] == "0.25"
    assert attrs["gen_ai.response.finish_reasons"] == '["stop"]'
    assert dict(llm["resource_attributes"])["service.name"] == f"svc-{encoding}"
    assert llm["service"] == f"svc-{encoding}" and llm["scope_name"] == "tests.ingest"
    assert llm["parent_span_id"] == rows["agent run"]["span_id"]
    assert llm["source_topic"] == "embedded" and llm["source_offset"] > 0
    tool = rows["failing tool"]
    assert (tool["kind"], tool["tool_name"], tool["status_code"], tool["status_message"]) == (
        "TOOL",
        "lookup",
        "ERROR",
        "lookup failed",
    )
    assert "KeyError" in tool["events"]
    assert rows["agent run"]["kind"] == "AGENT"
    assert rows["agent run"]["duration_ms"] >= llm["duration_ms"]


def test_api_key_sets_the_tenant(auth_server) -> None:
    from tests.conftest import API_KEYS

    for _tenant, key in API_KEYS.items():
        _emit(
            _exporter(
                "protobuf", f"{auth_server.url}/v1/traces", {"Authorization": f"Bearer {key}"}
            ),
            "svc",
        )
    counts = dict(
        (r["tenant"], r["n"])
        for r in auth_server.store.query_rows(
            "SELECT tenant, count() AS n FROM spans GROUP BY tenant"
        )
    )
    assert counts == {"acme": 3, "globex": 3}
