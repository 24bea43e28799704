"""A tracer provider with AgentLedger's attribution processor and an in-memory exporter: what a
process gets from ``instrument()``, minus the network, so spans can be read back directly."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agentledger.instrumentation.processors import AttributionProcessor


class Recorded:
    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider()
        self.provider.add_span_processor(AttributionProcessor())
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.tracer = self.provider.get_tracer("tests.handoff")

    def spans(self) -> list:
        return list(self.exporter.get_finished_spans())

    def named(self, name: str):
        (span,) = [s for s in self.spans() if s.name == name]
        return span


@pytest.fixture
def recorded() -> Iterator[Recorded]:
    rec = Recorded()
    yield rec
    rec.provider.shutdown()
