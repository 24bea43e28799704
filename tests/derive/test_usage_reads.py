"""Usage reads never run the rollup: they read ``usage_hourly`` and add the not-yet-rolled tail
from raw spans, bounded to recent hours; the background job alone rolls up."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pytest
from fastapi.testclient import TestClient
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from agentledger.collector import CollectorSettings
from agentledger.compose import build_embedded_app
from agentledger.pipeline.derive import UsageQuery, UsageRollupJob, usage_report
from agentledger.pipeline.derive.usage import READ_TAIL_HOURS
from agentledger.pipeline.normalize import OtlpNormalizer, SourcePosition
from agentledger.pipeline.settings import StoreSettings
from agentledger.pipeline.store.writer import StoreWriter
from agentledger.schemas.analytics import USAGE_STATE_TABLE
from bench.traffic import add_run
from tests.derive import scenario

ALL_TIME = (scenario.START - timedelta(days=30), scenario.NOW + timedelta(days=1))
KEY = "usage-reads-key-0123"


def _calls(store, *, tail_hours: int | None, now: datetime = scenario.NOW) -> dict[str, int]:
    q = UsageQuery(*ALL_TIME, group_by=("principal",), top=None)
    rows = usage_report(store, "default", q, tail_hours=tail_hours, now=now)
    return {r["principal"]: r["calls"] for r in rows}


def _expected(rows: list[dict]) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in rows:
        out[r["principal_id"]] = out.get(r["principal_id"], 0) + 1
    return out


def _spans(principal: str, at: datetime, n: int = 1) -> ExportTraceServiceRequest:
    req = ExportTraceServiceRequest()
    scope = req.resource_spans.add().scope_spans.add()
    rng = random.Random(len(principal))
    for i in range(n):
        add_run(scope, rng, i, int(at.timestamp()) * 10**9 + i * 10**9, principal=principal)
    return req


def _write(store, req: ExportTraceServiceRequest, token: str) -> list[dict]:
    batch = OtlpNormalizer().normalize([(req, SourcePosition("default", 0, "test", 0, 1))])
    StoreWriter(store).write(batch, token)
    return batch.spans.to_pylist()


def test_the_tail_adds_what_the_rollup_lacks_and_nothing_twice(store) -> None:
    generated = scenario.generate(store, inject=False, days=1, seed=21)
    everything = _expected(generated.rows)
    # never rolled up: the tail (every hour is within it) is the whole answer
    assert _calls(store, tail_hours=48) == everything
    assert _calls(store, tail_hours=None) == {}
    # the tail is bounded: 2 hours of raw spans at most, however stale the rollup
    recent = [r for r in generated.rows if r["start_time"] >= scenario.NOW - timedelta(hours=2)]
    assert 0 < sum(_calls(store, tail_hours=2).values()) == len(recent) < len(generated.rows)

    UsageRollupJob().run(store, scenario.NOW)
    assert _calls(store, tail_hours=None) == everything
    assert _calls(store, tail_hours=48) == everything  # rollup + tail: no hour counted twice

    # new spans in the latest rolled-up hour, after the pass: the tail has them, the rollup not
    latest = scenario.NOW - timedelta(minutes=30)
    added = _write(store, _spans("fresh@acme.example", latest, 3), "fresh")
    with_new = _expected(generated.rows + added)
    assert _calls(store, tail_hours=48) == with_new
    assert "fresh@acme.example" not in _calls(store, tail_hours=None)
    UsageRollupJob().run(store, scenario.NOW)  # the background pass catches up: same answer
    assert _calls(store, tail_hours=None) == with_new == _calls(store, tail_hours=48)


@pytest.fixture
def client(store, tmp_path, monkeypatch) -> Iterator[TestClient]:
    monkeypatch.setenv("AGENTLEDGER_JOBS_INTERVAL_S", "0")  # no background pass during the test
    app = build_embedded_app(
        CollectorSettings(api_keys=f"acme={KEY}"), StoreSettings(data_dir=str(tmp_path)), store
    )
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def test_n_reads_run_no_rollup_yet_see_fresh_spans(client, store, monkeypatch) -> None:
    passes: list[int] = []
    real_run = UsageRollupJob.run

    def counted(self, *args, **kwargs):
        passes.append(1)
        return real_run(self, *args, **kwargs)

    monkeypatch.setattr(UsageRollupJob, "run", counted)
    auth = {"Authorization": f"Bearer {KEY}"}
    now = datetime.now(timezone.utc)
    sent = client.post(
        "/v1/traces",
        content=_spans("acme-user", now - timedelta(minutes=5), 4).SerializeToString(),
        headers={**auth, "Content-Type": "application/x-protobuf"},
    )
    assert sent.status_code == 200, sent.text
    reads = 10
    for _ in range(reads):
        got = client.get("/api/v1/usage", params={"group_by": "principal"}, headers=auth)
        assert got.status_code == 200, got.text
        assert [(r["principal"], r["calls"]) for r in got.json()["rows"]] == [("acme-user", 20)]
    assert passes == []  # ten reads, no rollup
    assert store.query_scalar(f"SELECT count() FROM {USAGE_STATE_TABLE}") == 0  # nothing written
    stale = client.get(
        "/api/v1/usage", params={"group_by": "principal", "refresh": "false"}, headers=auth
    )
    assert stale.json()["rows"] == []  # the rollup alone: the job has not run

    UsageRollupJob(lookback_hours=READ_TAIL_HOURS).run(store, now)  # the background pass
    assert len(passes) == 1
    for refresh in ("true", "false"):
        rolled = client.get(
            "/api/v1/usage", params={"group_by": "principal", "refresh": refresh}, headers=auth
        )
        assert [(r["principal"], r["calls"]) for r in rolled.json()["rows"]] == [("acme-user", 20)]
