"""The hourly usage rollup is exact: it equals sums over the raw rows, whatever was delivered twice."""

from __future__ import annotations

import math
import random
import statistics
from collections import defaultdict
from datetime import timedelta

import pyarrow as pa
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from agentledger.pipeline.derive import (
    UsageQuery,
    UsageQueryError,
    UsageRollupJob,
    usage_report,
    usage_totals,
)
from agentledger.pipeline.normalize import OtlpNormalizer, SourcePosition
from agentledger.pipeline.store.writer import StoreWriter
from agentledger.schemas.analytics import USAGE_TABLE
from bench.traffic import add_run
from tests.derive import scenario

ALL_TIME = (scenario.START - timedelta(days=30), scenario.NOW + timedelta(days=1))


def _model(row: dict) -> str:
    return row["response_model"] or row["request_model"]


def _independent(rows: list[dict]) -> dict[tuple[str, str, str], dict[str, float]]:
    """Sums per (principal, model, kind) computed in Python over the generated rows."""
    out: dict[tuple[str, str, str], dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for r in rows:
        g = out[(r["principal_id"], _model(r), r["kind"])]
        g["calls"] += 1
        g["errors"] += r["status_code"] == "ERROR"
        g["input_tokens"] += r["input_tokens"]
        g["output_tokens"] += r["output_tokens"]
        g["cost_usd"] += r["cost_usd"]
    return out


def _report(store, **kw) -> dict[tuple, dict]:
    q = UsageQuery(*ALL_TIME, group_by=("principal", "model", "kind"), top=None, **kw)
    return {(r["principal"], r["model"], r["kind"]): r for r in usage_report(store, "default", q)}


def _assert_equal(report: dict, expected: dict) -> None:
    assert set(report) == set(expected)
    for key, want in expected.items():
        got = report[key]
        for metric in ("calls", "errors", "input_tokens", "output_tokens"):
            assert got[metric] == want[metric], (key, metric)
        assert math.isclose(got["cost_usd"], want["cost_usd"], rel_tol=1e-9, abs_tol=1e-12), key


def test_rollup_equals_independent_sums_over_the_raw_rows(injected) -> None:
    store, generated = injected
    UsageRollupJob().run(store, scenario.NOW)
    rows = generated.rows
    _assert_equal(_report(store), _independent(rows))
    totals = usage_totals(store, "default", *ALL_TIME)
    assert totals["calls"] == len(rows)
    assert totals["errors"] == sum(r["status_code"] == "ERROR" for r in rows) > 0
    assert math.isclose(totals["cost_usd"], sum(r["cost_usd"] for r in rows), rel_tol=1e-9)


def test_latency_quantiles_match_the_raw_durations(injected) -> None:
    store, generated = injected
    UsageRollupJob().run(store, scenario.NOW)
    q = UsageQuery(*ALL_TIME, group_by=("model",), filters={"kind": "LLM"}, top=None)
    for r in usage_report(store, "default", q):
        durations = sorted(
            x["duration_ms"]
            for x in generated.rows
            if x["kind"] == "LLM" and _model(x) == r["model"]
        )
        assert r["latency_p50_ms"] == pytest.approx(statistics.median(durations), rel=0.05)
        assert r["latency_p95_ms"] == pytest.approx(durations[int(0.95 * len(durations))], rel=0.08)
        assert r["latency_avg_ms"] == pytest.approx(statistics.fmean(durations), rel=1e-9)
        assert r["latency_p50_ms"] < r["latency_p95_ms"] <= r["latency_p99_ms"]


def test_duplicates_do_not_change_usage(store) -> None:
    generated = scenario.generate(store, inject=False, days=1, seed=11)
    job = UsageRollupJob()
    assert job.run(store, scenario.NOW).info["hours_recomputed"] == 24
    assert (
        job.run(store, scenario.NOW).info["hours_recomputed"] == 0
    )  # nothing changed: nothing recomputed
    before = _report(store)
    _assert_equal(before, _independent(generated.rows))

    # rows stored twice and three times (the store writer now refuses re-sends, but a table
    # written before insert-only history, or by hand, may hold them): inserted directly
    for i, batch in enumerate(generated.batches):
        store.insert_arrow("spans", batch.spans, dedup_token=f"redelivery-{i}")
        store.insert_arrow(
            "spans", batch.spans.slice(0, batch.spans.num_rows // 2), dedup_token=f"again-{i}"
        )
    raw = store.query_scalar("SELECT count() FROM spans")
    assert raw > 2 * len(generated.rows)  # the duplicates are really there
    assert job.run(store, scenario.NOW).info["hours_recomputed"] == 24
    assert _report(store) == before

    store.command(
        "OPTIMIZE TABLE spans FINAL"
    )  # merges collapse them: the fingerprint changes again
    assert store.query_scalar("SELECT count() FROM spans") == len(generated.rows)
    job.run(store, scenario.NOW)
    assert _report(store) == before
    assert _report(store, interval="hour") != {}  # the series reads the same rollup


def test_late_spans_for_an_old_hour_recompute_that_hour_only(store) -> None:
    generated = scenario.generate(store, inject=False, days=1, seed=12)
    job = UsageRollupJob()
    job.run(store, scenario.NOW)
    late = ExportTraceServiceRequest()
    scope = late.resource_spans.add().scope_spans.add()
    old_hour = scenario.NOW - timedelta(hours=20)
    add_run(
        scope,
        random.Random(99),
        0,
        int(old_hour.timestamp()) * 10**9 + 60 * 10**9,
        principal="late@acme.example",
    )
    batch = OtlpNormalizer().normalize([(late, SourcePosition("default", 0, "test", 0, 999))])
    StoreWriter(store).write(batch, "late")
    result = job.run(store, scenario.NOW)
    assert result.info["hours_recomputed"] == 1
    _assert_equal(_report(store), _independent(generated.rows + batch.spans.to_pylist()))


def test_a_group_that_vanished_from_an_hour_is_zeroed(store) -> None:
    """A second version of a span with other dimensions (stored before insert-only history, when
    ReplacingMergeTree kept the last; the writer now keeps it as a conflict): once it replaces the
    first, the old group must disappear from the rollup, not linger."""
    generated = scenario.generate(store, inject=False, days=1, seed=13)
    job = UsageRollupJob()
    job.run(store, scenario.NOW)
    batch = generated.batches[0]
    spans = batch.spans
    moved = spans.set_column(
        spans.schema.get_field_index("principal_id"),
        "principal_id",
        pa.array(["moved@acme.example"] * spans.num_rows),
    )
    store.insert_arrow("spans", moved, dedup_token="moved")  # past the writer, as before
    job.run(store, scenario.NOW)
    report = _report(store)
    assert {k[0] for k in report} == {"moved@acme.example"}
    assert sum(r["calls"] for r in report.values()) == len(generated.rows)
    assert (
        store.query_scalar(f"SELECT countIf(calls = 0) FROM {USAGE_TABLE} FINAL") > 0
    )  # the zero rows


def test_usage_queries_group_filter_order_and_series(injected) -> None:
    store, generated = injected
    UsageRollupJob().run(store, scenario.NOW)
    top = usage_report(store, "default", UsageQuery(*ALL_TIME, group_by=("principal",), top=2))
    assert [r["principal"] for r in top] == sorted(
        {r["principal_id"] for r in generated.rows},
        key=lambda p: -sum(x["cost_usd"] for x in generated.rows if x["principal_id"] == p),
    )[:2]
    assert top[0]["cost_usd"] >= top[1]["cost_usd"]

    tools = usage_report(
        store,
        "default",
        UsageQuery(
            *ALL_TIME, group_by=("tool",), filters={"kind": "TOOL"}, order_by="errors", top=None
        ),
    )
    errors = {r["tool"]: r["errors"] for r in tools}
    assert (
        errors["match_purchase_order"]
        == sum(
            1
            for r in generated.rows
            if r["tool_name"] == "match_purchase_order" and r["status_code"] == "ERROR"
        )
        >= 8
    )
    assert (
        tools[0]["tool"] == "match_purchase_order"
    )  # the injected burst makes it the most failing tool

    day = scenario.NOW - timedelta(days=1)
    series = usage_report(
        store,
        "default",
        UsageQuery(
            day, scenario.NOW, group_by=("model",), interval="hour", top=1, filters={"kind": "LLM"}
        ),
    )
    assert len({r["model"] for r in series}) == 1 and len(series) == 24
    assert [r["bucket"] for r in series] == sorted(r["bucket"] for r in series)
    one_model = series[0]["model"]
    assert sum(r["calls"] for r in series) == sum(
        1
        for r in generated.rows
        if r["kind"] == "LLM" and _model(r) == one_model and r["start_time"] >= day
    )
    daily = usage_report(store, "default", UsageQuery(*ALL_TIME, interval="day", top=None))
    assert len(daily) == scenario.DAYS and sum(r["calls"] for r in daily) == len(generated.rows)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"group_by": ("colour",)}, "unknown dimension"),
        ({"order_by": "vibes"}, "unknown metric"),
        ({"interval": "minute"}, "interval"),
        ({"group_by": ("model", "model")}, "repeated"),
    ],
)
def test_bad_usage_queries_are_refused(store, kwargs, message) -> None:
    with pytest.raises(UsageQueryError, match=message):
        usage_report(store, "default", UsageQuery(*ALL_TIME, **kwargs))


def test_rollup_and_queries_run_on_the_clickhouse_server_store(ch_store) -> None:
    """The same SQL through clickhouse-connect (server-side parameters over HTTP)."""
    generated = scenario.generate(ch_store, inject=False, days=1, seed=14)
    UsageRollupJob().run(ch_store, scenario.NOW)
    _assert_equal(_report(ch_store), _independent(generated.rows))
    series = usage_report(
        ch_store, "default", UsageQuery(*ALL_TIME, group_by=("kind",), interval="hour", top=2)
    )
    assert series and {r["kind"] for r in series} <= {"LLM", "TOOL", "RETRIEVER", "AGENT"}
