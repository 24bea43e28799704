"""Fixtures for dataset tests: production data made by the real demo agent (OpenAI SDK +
OpenInference against the scripted provider, exported over OTLP/HTTP to the embedded server)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from agentledger.demo.agent import AgentRun, run_finance_agent


@pytest.fixture
def run_agent(server: Any, provider: Any) -> Callable[..., AgentRun]:
    """``run_agent(question=..., session_id=...)``: one demo-agent run recorded by ``server``."""

    def run(**kwargs: Any) -> AgentRun:
        tp = TracerProvider(resource=Resource.create({"service.name": "finance-controls"}))
        tp.add_span_processor(
            SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{server.url}/v1/traces"))
        )
        try:
            return run_finance_agent(provider.base_url, tp, **kwargs)
        finally:
            tp.shutdown()

    return run


def read_lines(path: Any) -> list[str]:
    with open(path, encoding="utf-8") as fh:
        return [line for line in fh.read().splitlines() if line]
