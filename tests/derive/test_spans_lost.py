"""Spans lost in the agent, per agent and hour (issue 21, server side).

Agents report the spans they had to drop as ``agentledger.spans_lost`` spans (made here by the
real :class:`LossLedger` and encoder, stored by the real normalizer and writer). Usage sums them
into ``spans_lost`` per agent and hour, from the raw tail and from the rollup alike, without
counting them as calls, tokens, cost or errors; the trace list leaves them out, the trace detail
still shows them, and ``agentledger usage`` shows a "lost in agent" column.
"""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta, timezone

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from typer.testing import CliRunner

from agentledger.cli import app
from agentledger.instrumentation.losses import LOSS_SPAN, LOST_COUNT, LossLedger
from agentledger.pipeline.derive import UsageQuery, UsageRollupJob, usage_report, usage_totals
from agentledger.pipeline.derive.patterns import new_use, tool_sequences
from agentledger.pipeline.derive.usage import floor_hour
from agentledger.pipeline.normalize import OtlpNormalizer, SourcePosition
from agentledger.pipeline.services.queries import get_trace, list_traces
from agentledger.pipeline.store.migrate import DATA_STEPS
from agentledger.pipeline.store.writer import StoreWriter
from agentledger.schemas.analytics import SPANS_LOST_COUNT, SPANS_LOST_NAME
from bench.traffic import add_run

NOW = datetime.now(timezone.utc)
H0 = floor_hour(NOW) - timedelta(hours=2)
H1 = H0 + timedelta(hours=1)
AGENTS = ("agent-a", "agent-b")
LOST = {("agent-a", H0): 5, ("agent-a", H1): 3, ("agent-b", H0): 2, ("agent-b", H1): 7}
RANGE = (H0 - timedelta(hours=1), NOW + timedelta(hours=1))


def _write(store, req: ExportTraceServiceRequest, token: str) -> None:
    batch = OtlpNormalizer().normalize([(req, SourcePosition("default", 0, "test", 0, 1))])
    StoreWriter(store).write(batch, token)


def _traffic(store) -> None:
    """Ordinary runs: agent-a twice an hour, agent-b once, in both hours."""
    req = ExportTraceServiceRequest()
    scope = req.resource_spans.add().scope_spans.add()
    rng = random.Random(21)
    for h, hour in enumerate((H0, H1)):
        for i, agent in enumerate(("agent-a", "agent-a", "agent-b")):
            start = int((hour + timedelta(minutes=5 + 10 * i)).timestamp()) * 10**9
            add_run(scope, rng, 10 * h + i, start, agent=agent, principal=f"{agent}@acme.example")
    _write(store, req, "traffic")


def _reports(store) -> list[str]:
    """The agents' loss reports, as the agent sends them, timed into the hour they cover."""
    resource = Resource.create({"service.name": "agents"})
    trace_ids = []
    for hour in (H0, H1):
        ledger = LossLedger(default_agent="agent-a")
        for agent in AGENTS:
            ledger.add(LOST[(agent, hour)] - 1, "queue full", agent)
            ledger.add(1, "not redactable", agent)
        req = encode_spans(ledger.report_spans(resource))
        for rs in req.resource_spans:
            for ss in rs.scope_spans:
                for span in ss.spans:
                    assert span.name == LOSS_SPAN
                    span.start_time_unix_nano = (
                        int((hour + timedelta(minutes=50)).timestamp()) * 10**9
                    )
                    span.end_time_unix_nano = span.start_time_unix_nano + 10**6
                    trace_ids.append(span.trace_id.hex())
        _write(store, req, f"reports-{hour:%H}")
    assert len(trace_ids) == 4
    return trace_ids


def _by_agent_hour(store, *, tail_hours: int | None) -> dict[tuple[str, str], dict]:
    q = UsageQuery(*RANGE, group_by=("agent",), interval="hour", top=None)
    rows = usage_report(store, "default", q, tail_hours=tail_hours, now=NOW)
    return {(r["agent"], r["bucket"][:13]): r for r in rows}


def _activity(rows: dict) -> dict:
    keep = ("calls", "errors", "input_tokens", "output_tokens", "cost_usd", "latency_p50_ms")
    return {k: {m: r[m] for m in keep} for k, r in rows.items()}


def test_names_agree_with_the_instrumentation() -> None:
    assert (SPANS_LOST_NAME, SPANS_LOST_COUNT) == (LOSS_SPAN, LOST_COUNT)


def test_usage_shows_spans_lost_per_agent_and_hour_and_nothing_else_changes(store) -> None:
    _traffic(store)
    before = _by_agent_hour(store, tail_hours=48)
    assert len(before) == 4 and all(r["spans_lost"] == 0 for r in before.values())
    report_traces = _reports(store)
    expected = {(a, f"{h:%Y-%m-%dT%H}"): n for (a, h), n in LOST.items()}

    tail = _by_agent_hour(store, tail_hours=48)  # nothing rolled up yet: all from raw spans
    assert {k: r["spans_lost"] for k, r in tail.items()} == expected
    assert _activity(tail) == _activity(before)

    UsageRollupJob().run(store, NOW)
    rolled = _by_agent_hour(store, tail_hours=None)  # the rollup alone
    assert {k: r["spans_lost"] for k, r in rolled.items()} == expected
    assert _activity(rolled) == _activity(before)

    # never LLM or tool usage: by kind, the reports' rows carry no calls and no cost
    by_kind = usage_report(store, "default", UsageQuery(*RANGE, group_by=("kind",), top=None))
    lost_rows = [r for r in by_kind if r["spans_lost"]]
    assert [(r["kind"], r["calls"], r["cost_usd"]) for r in lost_rows] == [("UNKNOWN", 0, 0.0)]
    assert lost_rows[0]["spans_lost"] == sum(LOST.values())
    totals = usage_totals(store, "default", *RANGE)
    assert totals["spans_lost"] == sum(LOST.values())
    assert totals["calls"] == sum(r["calls"] for r in before.values())
    top = usage_report(store, "default", UsageQuery(*RANGE, ("agent",), order_by="spans_lost"))
    assert [(r["agent"], r["spans_lost"]) for r in top] == [("agent-b", 9), ("agent-a", 8)]

    # the trace list shows activity only; the detail still reads a report
    listed = {t["trace_id"] for t in list_traces(store, "default", limit=100)}
    assert len(listed) == 6 and not listed & set(report_traces)
    detail = get_trace(store, "default", report_traces[0])
    assert [s["name"] for s in detail] == [LOSS_SPAN]
    assert int(detail[0]["attributes"][LOST_COUNT]) in LOST.values()

    # patterns: a report is no tool sequence of its agent and no new use
    seqs = tool_sequences(store, "default", RANGE[0], RANGE[1])
    assert sum(s["traces"] for s in seqs) == 6
    only_reports = (H0 + timedelta(minutes=45), H1)  # H0's reports, none of its runs
    assert new_use(store, "default", (H1, RANGE[1]), only_reports, topics=False)["baseline_empty"]


def test_migration_makes_hours_with_reports_recompute(store) -> None:
    """0014 marks the hours that already held reports dirty, so the rollup stops counting them
    as calls; a second pass finds them clean again."""
    _traffic(store)
    _reports(store)
    job = UsageRollupJob()
    job.run(store, NOW)
    assert job.dirty_hours(store) == {}
    DATA_STEPS[14](store)  # what applying 0014 to such a store runs after its statement
    dirty = job.dirty_hours(store)
    assert [h for h, _, _ in dirty["default"]] == [int(H0.timestamp()), int(H1.timestamp())]
    job.run(store, NOW)
    assert job.dirty_hours(store) == {}


def test_cli_shows_the_lost_in_agent_column(server) -> None:
    _traffic(server.store)
    _reports(server.store)
    args = ["usage", "--by", "agent", "--since", "6h", "--url", server.url]
    result = CliRunner().invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    rows = {r["agent"]: r["spans_lost"] for r in json.loads(result.output)}
    assert rows == {"agent-a": 8, "agent-b": 9}
    table = CliRunner().invoke(app, args)
    assert table.exit_code == 0, table.output
    assert "lost in agent" in table.output
    assert " 8 " in table.output.split("agent-a")[1].split("\n")[0]


def test_cli_has_no_lost_column_without_losses(server) -> None:
    _traffic(server.store)
    result = CliRunner().invoke(app, ["usage", "--since", "6h", "--url", server.url])
    assert result.exit_code == 0, result.output
    assert "calls" in result.output and "lost in agent" not in result.output
