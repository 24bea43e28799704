"""Fixtures of the audit and replay tests: recorded agent runs, with a named principal.

Runs go through the real SDKs (openai, anthropic) and OpenInference's instrumentors to the
scripted provider, and their spans over OTLP/HTTP into the embedded server (``server``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from agentledger.demo.documents import LOOKUP_JOURNAL_ENTRY
from agentledger.demo.provider import (
    ProviderRequest,
    Rule,
    ScriptedResponse,
    ToolCall,
    default_script,
)
from agentledger.schemas.attributes import AgentLedger as AL

PRINCIPAL = {
    AL.PRINCIPAL_ID: "dana@acme.example",
    AL.PRINCIPAL_NAME: "Dana Whitfield",
    AL.PRINCIPAL_ROLE: "controller",
    AL.PRINCIPAL_CHAIN: ["cfo@acme.example", "dana@acme.example"],
    AL.POLICY_ID: "finance-controls-v3",
}
SECOND_ENTRY = "JE-4472"
TWO_LOOKUP_DECISION = (
    "ESCALATE: JE-4471 exceeds the FIN-7 threshold and JE-4472 could not be found."
)


class StampPrincipal(SpanProcessor):
    """Stamps the principal on every span, as AgentLedger's instrumentation does inside ``acting_for``."""

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        span.set_attributes(PRINCIPAL)


def tracer_provider(server: Any) -> TracerProvider:
    """Spans exported one by one as they end: each is stored when its export returns."""
    tp = TracerProvider(resource=Resource.create({"service.name": "finance-controls"}))
    tp.add_span_processor(StampPrincipal())
    tp.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{server.url}/v1/traces")))
    return tp


def _lookups(request: ProviderRequest) -> int:
    return sum(1 for r in request.tool_results() if r.name == LOOKUP_JOURNAL_ENTRY)


def two_lookups_script() -> list[Rule]:
    """The demo model, but it looks up a second entry before deciding: two tool calls in one run."""
    return [
        Rule(lambda r: _lookups(r) >= 2, ScriptedResponse(text=TWO_LOOKUP_DECISION), name="decide"),
        Rule(
            lambda r: _lookups(r) == 1,
            ScriptedResponse(
                tool_calls=[ToolCall(LOOKUP_JOURNAL_ENTRY, {"entry_id": SECOND_ENTRY})]
            ),
            name="second-lookup",
        ),
        *default_script(),
    ]


@pytest.fixture
def record(server: Any) -> Iterator[Any]:
    """``record(fn)`` runs ``fn(tracer_provider)`` and returns its result once every span is stored."""

    def run(fn: Any) -> Any:
        tp = tracer_provider(server)
        try:
            return fn(tp)
        finally:
            tp.shutdown()

    yield run
