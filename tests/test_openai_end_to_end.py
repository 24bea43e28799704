"""The real openai SDK + OpenInference's instrumentor, through the scripted model server,
exported over OTLP/HTTP to the embedded server: what the store holds."""

from __future__ import annotations

import json

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from agentledger.demo.agent import run_finance_agent
from agentledger.pipeline.services import queries
from agentledger.schemas import content_hash


def test_finance_agent_is_recorded_end_to_end(server, provider) -> None:
    tp = TracerProvider(resource=Resource.create({"service.name": "finance-controls"}))
    tp.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{server.url}/v1/traces")))
    run = run_finance_agent(provider.base_url, tp)
    assert tp.force_flush(10_000)
    tp.shutdown()

    spans = queries.get_trace(server.store, "default", run.trace_id)
    assert len(spans) == run.expected_span_count == 5
    kinds = sorted(s["kind"] for s in spans)
    assert kinds == ["AGENT", "LLM", "LLM", "RETRIEVER", "TOOL"]
    llm = [s for s in spans if s["kind"] == "LLM"]
    sent = [r for r in provider.requests if r.path.endswith("/chat/completions")]
    assert len(sent) == 2
    for span, request in zip(llm, sent):
        assert span["request_model"] == request.model == "gpt-4o"
        assert span["response_model"] == "gpt-4o-2024-08-06"
        assert span["input_tokens"] > 0 and span["output_tokens"] > 0
        assert span["convention"] == "openinference" and span["provider"] == "openai"
        assert span["session_id"] == run.session_id and span["user_id"] == run.user_id
        assert span["agent_name"] == "finance-controls-agent"
        # the stored messages are exactly what the SDK sent, and their hash is the SHA-256 of the stored form
        content = queries.get_contents(server.store, "default", [span["input_hash"]])[
            span["input_hash"]
        ]
        assert content_hash(content["content"]) == span["input_hash"]
        stored = json.loads(content["content"])
        assert [m["role"] for m in stored] == [m["role"] for m in request.messages]
        assert stored[0]["content"] == request.messages[0]["content"]  # the system prompt
    first, second = llm
    assert [c["name"] for c in first["tool_calls"]] == ["lookup_journal_entry"]
    args = queries.get_contents(server.store, "default", [first["tool_calls"][0]["arguments_hash"]])
    assert json.loads(next(iter(args.values()))["content"]) == run.tool_calls[0].arguments
    assert second["output_preview"] and run.decision.startswith(second["output_preview"][:40])
    tool = next(s for s in spans if s["kind"] == "TOOL")
    assert tool["tool_name"] == "lookup_journal_entry"
    assert (
        tool["input_hash"] == first["tool_calls"][0]["arguments_hash"]
    )  # the arguments the model chose
    retriever = next(s for s in spans if s["kind"] == "RETRIEVER")
    assert [d["id"] for d in retriever["documents"]] == [d.id for d in run.documents]
    docs = queries.get_contents(
        server.store, "default", [d["content_hash"] for d in retriever["documents"]]
    )
    assert [docs[d["content_hash"]]["content"] for d in retriever["documents"]] == [
        d.document.content for d in run.documents
    ]
    # the whole trace as the API returns it
    traces = queries.list_traces(server.store, "default")
    assert (
        traces[0]["trace_id"] == run.trace_id
        and traces[0]["llm_calls"] == 2
        and traces[0]["cost_usd"] > 0
    )
