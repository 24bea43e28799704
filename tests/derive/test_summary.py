"""The demo's closing report: usage of its traffic and the anomalies found in it."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from rich.console import Console

from agentledger.cli.usage import print_usage_summary
from agentledger.pipeline.derive.summary import usage_summary
from agentledger.pipeline.normalize import OtlpNormalizer, SourcePosition
from agentledger.pipeline.store.writer import StoreWriter
from bench.traffic import add_run


def test_summary_of_a_demo_sized_run(store) -> None:
    now = datetime.now(timezone.utc)
    req = ExportTraceServiceRequest()
    scope = req.resource_spans.add().scope_spans.add()
    add_run(
        scope,
        random.Random(1),
        0,
        int((now - timedelta(minutes=5)).timestamp()) * 10**9,
        question="approve JE-42 and send the memo to cfo.office@contoso.com",
    )
    StoreWriter(store).write(
        OtlpNormalizer().normalize([(req, SourcePosition("default", 0, "test"))]), "demo"
    )
    summary = usage_summary(store, "default", now - timedelta(hours=1), now)
    assert summary["totals"]["calls"] == 5 and summary["totals"]["cost_usd"] > 0
    assert [(m["provider"], m["model"], m["calls"]) for m in summary["models"]] == [
        ("openai", "gpt-4o-2024-08-06", 2)
    ]
    assert [t["tool"] for t in summary["tools"]] == ["lookup_journal_entry"]
    # no baseline: no spikes or first-seen; but the e-mail sent to the provider is caught at once
    assert [(a["type"], a["dimensions"]) for a in summary["anomalies"]] == [
        ("sensitive_egress", {"detector": "email", "provider": "openai"})
    ]
    console = Console(record=True, width=160)
    print_usage_summary(console, summary)
    text = console.export_text()
    assert "gpt-4o-2024-08-06" in text and "sensitive_egress" in text and "5 spans" in text
