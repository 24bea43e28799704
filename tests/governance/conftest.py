"""Governed tools against the real embedded server (collector + chDB store) on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agentledger.instrumentation import governance


@pytest.fixture
def spans() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def tracer_provider(spans: InMemorySpanExporter) -> Iterator[TracerProvider]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    yield provider
    provider.shutdown()


@pytest.fixture
def governed(server: Any, tracer_provider: TracerProvider) -> Iterator[Any]:
    """Governed tools talk to the embedded ``server``; parked calls re-ask every 20-100 ms."""
    governance.configure_governance(
        server.url,
        initial_backoff_s=0.02,
        max_backoff_s=0.1,
        timeout_s=5,
        tracer_provider=tracer_provider,
    )
    yield server
    governance.flush_outcomes(5)
    governance.cancel_paused_runs()
    governance.configure_governance(
        "http://127.0.0.1:9"
    )  # nothing left pointing at a stopped server
