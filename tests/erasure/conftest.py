"""A tenant with four agent runs of four users (run N's user is u-N, its question carries the
marker ``zqx<N>marker``), their OTLP log events, an exported dataset, and a signed ledger log."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from agentledger.pipeline.derive.tlog_job import TreeLogJob
from agentledger.pipeline.derive.tlog_witness import WitnessDir
from agentledger.pipeline.normalize import OtlpNormalizer, SourcePosition
from agentledger.pipeline.normalize.logs import normalize_logs
from agentledger.pipeline.services import ledger
from agentledger.pipeline.sinks import IngestBatch
from agentledger.pipeline.sinks.embedded import EmbeddedSink
from agentledger.pipeline.sinks.logs import write_logs
from agentledger.pipeline.tlog import Signer
from bench.traffic import add_run

TENANT = "acme"
RUNS = 4


def marker(run: int) -> str:
    """Text only run ``run``'s user typed: found nowhere once that user is erased."""
    return f"zqx{run}marker"


@dataclass
class Recorded:
    store: object
    signer: Signer
    witness: WitnessDir
    job: TreeLogJob
    traces: dict[int, str]
    dataset_dir: Path

    def append(self) -> None:
        self.job.run(self.store, datetime.now(timezone.utc))  # type: ignore[arg-type]

    def verify(self) -> ledger.LogReport:
        return ledger.verify(
            self.store,  # type: ignore[arg-type]
            TENANT,
            [self.signer.verifier()],
            self.witness.latest(TENANT),
        )


def ingest(store, runs: range, *, seed: int = 3, received_ns: int | None = None) -> dict[int, str]:
    """Runs ``runs`` (user u-N, session s-N) as one OTLP request received at ``received_ns``
    (default now; the runs start then too); run -> trace id."""
    received_ns = received_ns or time.time_ns()
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    kv = rs.resource.attributes.add()
    kv.key, kv.value.string_value = "service.name", "finance-controls"
    scope = rs.scope_spans.add()
    rng = random.Random(seed)
    traces = {
        run: add_run(scope, rng, run, received_ns, question=f"question {marker(run)} asked")
        for run in runs
    }
    sink = EmbeddedSink(store, OtlpNormalizer())
    sink.write(IngestBatch(TENANT, received_ns, req, 5 * len(traces)))
    sink.close()
    return traces


def log_event(store, trace_id: str, span_id: str, text: str) -> None:
    """A prompt event of a span as OpenTelemetry's GenAI instrumentation sends it: a small body
    (kept inline in ``logs``) and a large one (stored by hash in ``contents``)."""
    request = ExportLogsServiceRequest()
    records = request.resource_logs.add().scope_logs.add().log_records
    for body in (text, text + " " + "y" * 3000):
        record = records.add()
        record.trace_id, record.span_id = bytes.fromhex(trace_id), bytes.fromhex(span_id)
        record.event_name = "gen_ai.user.message"
        kv = record.body.kvlist_value.values.add()
        kv.key, kv.value.string_value = "content", body
    batch = normalize_logs([(request, SourcePosition(TENANT, time.time_ns(), "embedded"), "")])
    write_logs(store, batch, f"logs-{trace_id}")


@pytest.fixture
def recorded(store, tmp_path: Path) -> Recorded:
    from agentledger.pipeline.services.datasets.export import export_dataset

    traces = ingest(store, range(RUNS))
    for run, trace_id in traces.items():
        span_id = store.query_scalar(
            "SELECT span_id FROM spans WHERE trace_id = {t:String} AND kind = 'LLM' LIMIT 1",
            {"t": trace_id},
        )
        log_event(store, trace_id, span_id, f"logged {marker(run)} prompt")
    export_dataset(store, TENANT, tmp_path / "dataset")
    signer = Signer.generate("agentledger")
    witness = WitnessDir(tmp_path / "witness")
    found = Recorded(
        store, signer, witness, TreeLogJob(signer, witness), traces, tmp_path / "dataset"
    )
    found.append()
    return found


def tables_holding(store, text: str) -> dict[str, int]:
    """Every table of the test's database (views aside) whose rows hold ``text``: each row is
    rendered whole (every column, maps and arrays included) and searched."""
    names = [
        str(r["name"])
        for r in store.query_rows(
            "SELECT name FROM system.tables WHERE database = currentDatabase() "
            "AND engine NOT LIKE '%View%'"
        )
    ]
    assert {"spans", "contents", "logs", "records", "span_conflicts"} <= set(names)
    hits = {}
    for name in names:
        n = store.query_scalar(
            f"SELECT count() FROM `{name}` WHERE "
            "position(formatRowNoNewline('JSONEachRow', *), {m:String}) > 0",
            {"m": text},
        )
        if n:
            hits[name] = int(n)
    return hits
