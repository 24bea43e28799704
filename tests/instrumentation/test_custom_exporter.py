"""A custom ``exporter=``: no spool, so what it fails to export is counted, reported, never silent.

The spool keeps OTLP requests for AgentLedger's own exporter (one endpoint and
key); an arbitrary ``SpanExporter`` gets none. What a user can still rely on:
a failed batch is counted as lost with its own reason and reported through the
same exporter once it works again; nothing is written to the spool directory;
and ``on_full="block"`` holds and retries the batch instead of losing it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

import agentledger
from agentledger.instrumentation.lifecycle import Instrumentation
from agentledger.instrumentation.losses import LOSS_SPAN, LOST_COUNT, LOST_REASONS
from tests.instrumentation import chat_agent


class FlakyExporter(SpanExporter):
    """Fails every export while ``down`` is set; keeps what it exported."""

    def __init__(self) -> None:
        self.down = threading.Event()
        self.failed_batches = 0
        self.spans: list[ReadableSpan] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self.down.is_set():
            self.failed_batches += 1
            return SpanExportResult.FAILURE
        self.spans.extend(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass

    def named(self, name: str) -> list[ReadableSpan]:
        return [s for s in self.spans if s.name == name]


@pytest.fixture
def flaky(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FlakyExporter]:
    monkeypatch.setenv("AGENTLEDGER_SPOOL_DIR", str(tmp_path / "spool"))
    yield FlakyExporter()
    agentledger.uninstrument()


def _instrument(exporter: SpanExporter, **kwargs: object) -> Instrumentation:
    return agentledger.instrument(
        exporter=exporter,
        agent_name="custom-agent",
        instrumentors=["openai"],
        tracer_provider=TracerProvider(resource=Resource.create({"service.name": "custom"})),
        **kwargs,  # type: ignore[arg-type]
    )


def test_failed_exports_are_counted_reported_and_never_spooled(
    flaky: FlakyExporter, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="agentledger"):
        state = _instrument(flaky)
        assert "no spool" in caplog.text  # said once, at start
        chat = chat_agent.client()
        flaky.down.set()
        chat_agent.calls(30, chat)
        assert agentledger.flush(5_000)  # handed to the exporter: nothing waits anywhere
        assert flaky.failed_batches > 0
        assert state.losses is not None and state.losses.total == 30
        assert state.losses.by_reason == {"exporter failed, no spool": 30}
        assert state.losses.by_agent == {"custom-agent": 30}
        # warned at the first loss (batches that fail later within warn_every are counted, not
        # warned again), so the warning names 30 or the first batches' share of them
        assert "AgentLedger lost " in caplog.text and "exporter failed, no spool" in caplog.text
    assert not list((tmp_path / "spool").rglob("*.otlp"))  # the spool is not used at all
    flaky.down.clear()  # the backend works again: new spans go out, and the loss report with them
    chat_agent.calls(10, chat)
    assert agentledger.flush(5_000)
    assert len(flaky.named("ChatCompletion")) == 10
    reports = flaky.named(LOSS_SPAN)
    assert sum(int(r.attributes[LOST_COUNT]) for r in reports) == 30  # type: ignore[index,arg-type]
    assert {r for s in reports for r in s.attributes[LOST_REASONS]} == {  # type: ignore[index,union-attr]
        "exporter failed, no spool=30"
    }


def test_block_mode_holds_what_a_custom_exporter_failed_and_retries_it(
    flaky: FlakyExporter,
) -> None:
    state = _instrument(flaky, on_full="block")
    flaky.down.set()
    chat_agent.calls(20)
    assert not agentledger.flush(500)  # held, not dropped
    assert state.losses is not None and state.losses.total == 0
    flaky.down.clear()
    assert agentledger.flush(10_000)
    assert len(flaky.named("ChatCompletion")) == 20
    assert state.losses.total == 0 and not flaky.named(LOSS_SPAN)
