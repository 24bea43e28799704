"""``agentledger ledger verify`` over a real log: a clean store verifies; an updated, deleted,
inserted or reordered record, a truncated tail, a deleted referenced content, a fork and a log
re-signed with a fresh key are each reported as what they are."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agentledger.cli import app
from agentledger.pipeline.derive import tlog_store as S
from agentledger.pipeline.derive.tlog_job import TreeLogJob
from agentledger.pipeline.derive.tlog_witness import WitnessDir
from agentledger.pipeline.normalize import OtlpNormalizer
from agentledger.pipeline.services import ledger
from agentledger.pipeline.services.access import KeyBook
from agentledger.pipeline.sinks import IngestBatch
from agentledger.pipeline.sinks.embedded import EmbeddedSink
from agentledger.pipeline.store.records import append_records
from agentledger.pipeline.tlog import Checkpoint, Signer, create_signing_key, sign_note
from agentledger.schemas.ledger import origin
from agentledger.schemas.records import RecordKind, make_record
from bench.traffic import SPANS_PER_RUN, requests

TENANT = "acme"


def _now() -> datetime:
    return datetime.now(timezone.utc)


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "ledger-signing.key"
    create_signing_key(path)
    return path


@pytest.fixture
def logged(store, key_file: Path, tmp_path: Path):
    from agentledger.pipeline.tlog import read_signing_key

    sink = EmbeddedSink(store, OtlpNormalizer())
    for req in requests(4, runs_per_request=2, seed=11):
        sink.write(IngestBatch(TENANT, time.time_ns(), req, 2 * SPANS_PER_RUN))
    sink.close()
    KeyBook(store).create(TENANT, "reader", "bob", actor="admin")
    signer = read_signing_key(key_file)
    witness = WitnessDir(tmp_path / "witness")
    job = TreeLogJob(signer, witness, chunk=5)
    job.run(store, _now())
    return store, signer, witness, job


def _verify(logged) -> ledger.LogReport:
    store, signer, witness, _ = logged
    return ledger.verify(store, TENANT, [signer.verifier()], witness.latest(TENANT))


def _mutate(store, sql: str, **params: object) -> None:
    store.command(sql + " SETTINGS mutations_sync = 2", params)


def _llm_span(store) -> dict:
    return store.query_rows(
        "SELECT span_id, input_hash FROM spans WHERE tenant = 'acme' AND kind = 'LLM' "
        "ORDER BY span_id LIMIT 1"
    )[0]


def test_a_clean_log_verifies_and_new_rows_are_pending(logged) -> None:
    store = logged[0]
    report = _verify(logged)
    assert report.ok, report.as_dict()
    count, _, _ = S.log_head(store, TENANT)
    assert report.leaves == report.checkpoint_size == report.witnessed_size == count
    KeyBook(store).create(TENANT, "reader", "carol", actor="admin")  # not appended yet
    report = _verify(logged)
    assert report.ok and report.pending == 1
    assert _verify(logged).leaves == count
    assert ledger.verify(store, "globex", [logged[1].verifier()]).ok  # no log, nothing broken


def test_an_updated_span_and_a_deleted_record_are_named(logged) -> None:
    store = logged[0]
    span = _llm_span(store)
    _mutate(
        store,
        "ALTER TABLE spans UPDATE input_tokens = 1 WHERE span_id = {s:String}",
        s=span["span_id"],
    )
    _mutate(store, "ALTER TABLE records DELETE WHERE kind = 'api_key' AND record_id = 'bob'")
    report = _verify(logged)
    assert report.counts == {"updated": 1, "deleted": 1}, report.as_dict()
    assert span["span_id"] in next(p.detail for p in report.problems if p.kind == "updated")
    assert "api_key bob" in next(p.detail for p in report.problems if p.kind == "deleted")


def test_a_record_inserted_behind_the_appender_is_reported(logged) -> None:
    store = logged[0]
    old = time.time_ns() - 3_600_000_000_000  # an hour before the log's head
    forged = make_record(
        RecordKind.API_KEY,
        TENANT,
        {
            "name": "ghost",
            "role": "admin",
            "agent": "",
            "key_sha256": "0" * 64,
            "status": "active",
            "created_at": old,
            "changed_at": old,
        },
        actor="admin",
        recorded_at_ns=old // 1000 * 1000,
    )
    append_records(store, [forged])
    report = _verify(logged)
    assert report.counts == {"inserted": 1}, report.as_dict()
    assert "api_key ghost" in report.problems[0].detail


def test_a_truncated_tail_is_reported(logged) -> None:
    store = logged[0]
    count, _, _ = S.log_head(store, TENANT)
    _mutate(store, "ALTER TABLE ledger_leaves DELETE WHERE leaf_index >= {n:UInt64}", n=count - 2)
    report = _verify(logged)
    assert report.counts.get("truncated") == 1  # signed and witnessed: one size
    assert f"covers {count} leaves, the log holds {count - 2}" in report.problems[0].detail
    # their rows are no leaves now: stored at the new head's time or after it
    assert report.leaves == count - 2
    assert report.counts.get("inserted", 0) + report.pending == 2


def test_reordered_leaves_are_reported(logged) -> None:
    store = logged[0]
    rows = store.query_rows(
        "SELECT leaf_index, record_id, record_key FROM ledger_leaves WHERE tenant = 'acme' "
        "AND leaf_index IN (1, 2) ORDER BY leaf_index"
    )
    for mine, theirs in ((rows[0], rows[1]), (rows[1], rows[0])):
        _mutate(
            store,
            "ALTER TABLE ledger_leaves UPDATE record_id = {r:String}, record_key = {k:String} "
            "WHERE tenant = 'acme' AND leaf_index = {i:UInt64}",
            r=theirs["record_id"],
            k=theirs["record_key"],
            i=mine["leaf_index"],
        )
    report = _verify(logged)
    assert report.counts == {"reordered": 2}, report.as_dict()


def test_a_deleted_referenced_content_is_reported(logged) -> None:
    store = logged[0]
    span = _llm_span(store)
    _mutate(store, "ALTER TABLE contents DELETE WHERE hash = {h:String}", h=span["input_hash"])
    report = _verify(logged)
    assert report.counts.get("content_missing", 0) >= 1, report.as_dict()
    assert set(report.counts) == {"content_missing"}


def test_a_log_rebuilt_and_resigned_with_a_fresh_key_fails(logged) -> None:
    store, signer, witness, _ = logged
    count, _, _ = S.log_head(store, TENANT)
    # the attacker changes a span, rewrites its leaf hash, and signs the new root with a new key
    span = _llm_span(store)
    _mutate(
        store,
        "ALTER TABLE spans UPDATE input_tokens = 2 WHERE span_id = {s:String}",
        s=span["span_id"],
    )
    index = store.query_scalar(
        "SELECT leaf_index FROM ledger_leaves WHERE record_id = {s:String}", {"s": span["span_id"]}
    )
    from agentledger.pipeline.tlog import leaf_hash

    record = S.recompute(store, TENANT, "span", span["span_id"], _trace(store, span["span_id"]))
    assert record is not None
    _mutate(
        store,
        "ALTER TABLE ledger_leaves UPDATE leaf_hash = {h:String} WHERE leaf_index = {i:UInt64}",
        h=leaf_hash(record).hex(),
        i=index,
    )
    forged_root = S.range_root(store, TENANT, 0, count)
    fresh = Signer.generate(signer.name)
    note = sign_note(Checkpoint(origin(TENANT), count, forged_root).text(), [fresh])
    store.command(
        "INSERT INTO ledger_tree_checkpoints (tenant, tree_size, root_hash, note, key_name, "
        "key_id, signed_at) VALUES ('acme', {n:UInt64}, {r:String}, {note:String}, 'x', 'x', "
        "now64(6) + 10)",
        {"n": count, "r": forged_root.hex(), "note": note},
    )
    report = _verify(logged)
    assert "unknown_key" in report.counts, report.as_dict()
    assert "root_mismatch" in report.counts  # against the witnessed checkpoint
    assert "updated" not in report.counts  # the leaf was rewritten to match: only keys tell
    assert witness.latest(TENANT) is not None


def _trace(store, span_id: str) -> str:
    return str(
        store.query_scalar("SELECT trace_id FROM spans WHERE span_id = {s:String}", {"s": span_id})
    )


def test_a_fork_is_reported_as_a_duplicate_index(logged) -> None:
    store = logged[0]
    store.command(
        "INSERT INTO ledger_leaves SELECT tenant, leaf_index, kind, record_id, record_key, "
        "source_time, repeat('0', 64), 'fork', appended_at FROM ledger_leaves "
        "WHERE tenant = 'acme' AND leaf_index = 3"
    )
    report = _verify(logged)
    assert report.counts.get("duplicate") == 1, report.as_dict()


def test_the_cli_verifies_with_the_key_file_and_the_witness(
    logged, key_file: Path, tmp_path: Path, database: str, chdb_path: Path
) -> None:
    runner = CliRunner(env={"AGENTLEDGER_DATABASE": database})
    args = ["ledger", "verify", "--tenant", TENANT, "--data-dir", str(chdb_path)]
    args += ["--key-file", str(key_file), "--witness-dir", str(tmp_path / "witness")]
    done = runner.invoke(app, args)
    assert done.exit_code == 0, done.output
    assert done.output.startswith("OK: tenant acme") and "0 stored since" in done.output
    KeyBook(logged[0]).create(TENANT, "reader", "dave", actor="admin")
    done = runner.invoke(app, args)
    assert done.exit_code == 0 and "1 stored since (pending)" in done.output, done.output
    appended = runner.invoke(
        app,
        ["ledger", "append", "--data-dir", str(chdb_path)],
        env={
            "AGENTLEDGER_DATABASE": database,
            "AGENTLEDGER_LEDGER_SIGNING_KEY_FILE": str(key_file),
        },
    )
    assert appended.exit_code == 0 and "acme: 1 leaves appended" in appended.output, appended.output
    done = runner.invoke(app, args)
    assert done.exit_code == 0 and "0 stored since" in done.output, done.output
    span = _llm_span(logged[0])
    _mutate(
        logged[0],
        "ALTER TABLE spans UPDATE output_tokens = 0 WHERE span_id = {s:String}",
        s=span["span_id"],
    )
    done = runner.invoke(app, [*args, "--json"])
    assert done.exit_code == 1 and '"updated": 1' in done.output
