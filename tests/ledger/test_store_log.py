"""The tenant logs in the store: real spans and key events appended by the job in a fixed order,
signed checkpoints, witnessed; proofs of stored spans and records served over HTTP and by the CLI
and checked offline by ``agentledger verify-proof`` and examples/verify_proof.py as child
processes; a fork is never signed, a changed span gets no proof, the witness refuses a rewrite."""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pytest
from typer.testing import CliRunner

from agentledger.cli import app
from agentledger.pipeline.derive import tlog_store as S
from agentledger.pipeline.derive.tlog_job import TreeLogJob
from agentledger.pipeline.derive.tlog_witness import WitnessDir, WitnessRefused
from agentledger.pipeline.normalize import OtlpNormalizer
from agentledger.pipeline.services import ledger
from agentledger.pipeline.services.access import KeyBook
from agentledger.pipeline.sinks import IngestBatch
from agentledger.pipeline.sinks.embedded import EmbeddedSink
from agentledger.pipeline.tlog import (
    Checkpoint,
    InclusionProof,
    Signer,
    leaf_hash,
    open_note,
    root,
    sign_note,
    verify_consistency_proof,
    verify_inclusion_proof,
)
from agentledger.schemas.ledger import origin, parse_canonical_record
from bench.traffic import SPANS_PER_RUN, requests
from tests.conftest import API_KEYS

ROOT = Path(__file__).parent.parent.parent
EXAMPLE = ROOT / "examples" / "verify_proof.py"
TENANT = "acme"
RUNS = 6


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _ingest(store, seed: int = 7) -> None:
    sink = EmbeddedSink(store, OtlpNormalizer())
    for req in requests(RUNS, runs_per_request=2, seed=seed):
        sink.write(IngestBatch(TENANT, time.time_ns(), req, 2 * SPANS_PER_RUN))
    sink.close()


@pytest.fixture
def signer() -> Signer:
    return Signer.generate("agentledger")


@pytest.fixture
def logged(store, signer: Signer, tmp_path: Path):
    """Spans and two key events of tenant acme, appended and signed (chunks of 7 leaves)."""
    _ingest(store)
    keys = KeyBook(store)
    keys.create(TENANT, "reader", "bob", actor="admin")
    keys.create(TENANT, "auditor", "eve", actor="admin")
    job = TreeLogJob(signer, WitnessDir(tmp_path / "witness"), chunk=7)
    result = job.run(store, _now())
    assert result.info["appended"][TENANT] > 0
    return store, job


def _spans(store) -> int:
    return int(store.query_scalar("SELECT count() FROM spans FINAL WHERE tenant = 'acme'"))


def _span_id(store) -> str:
    return str(
        store.query_scalar(
            "SELECT span_id FROM spans WHERE tenant = 'acme' AND kind = 'LLM' "
            "ORDER BY span_id LIMIT 1"
        )
    )


def test_every_span_and_record_is_one_leaf_in_order_and_signed(logged, signer) -> None:
    store, job = logged
    count, following, _ = S.log_head(store, TENANT)
    assert count == following == _spans(store) + 2  # spans and the two key events, each once
    rows = store.query_rows(
        "SELECT leaf_index, kind, record_id, record_key, toUnixTimestamp64Micro(source_time) AS t, "
        "leaf_hash FROM ledger_leaves WHERE tenant = 'acme' ORDER BY leaf_index"
    )
    assert [r["leaf_index"] for r in rows] == list(range(count))
    # one append: the documented order (source time, kind, id, key)
    order = [(r["t"], r["kind"], r["record_id"], r["record_key"]) for r in rows]
    assert order == sorted(order)
    assert {r["kind"] for r in rows} == {"span", "api_key"}
    # each leaf hash is the canonical record recomputed from the stored row
    leaves = []
    for r in rows:
        record = S.recompute(store, TENANT, r["kind"], r["record_id"], r["record_key"])
        assert record is not None and leaf_hash(record).hex() == r["leaf_hash"]
        assert parse_canonical_record(record).tenant == TENANT
        leaves.append(leaf_hash(record))
    note = ledger.checkpoint(store, TENANT)
    opened = open_note(note, [signer.verifier()])
    assert Checkpoint.parse(opened.text) == Checkpoint(origin(TENANT), count, root(leaves))
    # a second pass finds nothing new and signs nothing new
    assert job.run(store, _now()).info["appended"][TENANT] == 0
    assert S.latest_checkpoint(store, TENANT).note == note  # type: ignore[union-attr]
    # an appender restarted resumes from the stored compact range, not from leaf 0
    fresh = TreeLogJob(signer, chunk=7)
    KeyBook(store).create(TENANT, "reader", "mallory", actor="admin")
    assert fresh.run(store, _now()).info["appended"][TENANT] == 1
    stored = S.latest_checkpoint(store, TENANT)
    assert stored is not None and stored.tree_size == count + 1
    assert stored.root_hash == root([*leaves, bytes.fromhex(_leaf_hashes(store)[-1])])


def _leaf_hashes(store) -> list[str]:
    return [
        r["leaf_hash"]
        for r in store.query_rows(
            "SELECT leaf_hash FROM ledger_leaves WHERE tenant = 'acme' ORDER BY leaf_index"
        )
    ]


def test_a_span_proof_from_the_store_verifies_offline(logged, signer, tmp_path) -> None:
    store, _ = logged
    span_id = _span_id(store)
    proof = ledger.prove(store, TENANT, "span", span_id)
    verified = verify_inclusion_proof(proof, [signer.verifier()])
    assert verified.record.id == span_id and verified.record.kind.value == "span"
    path = tmp_path / "proof.json"
    path.write_text(proof.dumps(), encoding="utf-8")
    vkey = signer.verifier().vkey
    example = subprocess.run(
        [sys.executable, str(EXAMPLE), str(path), vkey], capture_output=True, text=True, timeout=60
    )
    assert example.returncode == 0, example.stderr
    assert example.stdout.startswith("OK") and span_id in example.stdout
    cli = subprocess.run(
        [sys.executable, "-m", "agentledger.cli", "verify-proof", str(path), "--key", vkey],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert cli.returncode == 0, cli.stderr
    assert f"span {span_id} is leaf {proof.leaf_index}" in cli.stdout
    # the same file with one bit of the record flipped: both reject it
    record = bytearray(proof.record)
    record[40] ^= 0x01
    bad = tmp_path / "bad.json"
    bad.write_text(
        InclusionProof(
            proof.checkpoint, proof.tree_size, proof.leaf_index, bytes(record), proof.inclusion_path
        ).dumps(),
        encoding="utf-8",
    )
    rejected = subprocess.run(
        [sys.executable, str(EXAMPLE), str(bad), vkey], capture_output=True, text=True, timeout=60
    )
    assert rejected.returncode == 1


def test_a_record_proof_and_errors(logged, signer) -> None:
    store, _ = logged
    proof = ledger.prove(store, TENANT, "api_key", "eve")
    assert verify_inclusion_proof(proof, [signer.verifier()]).record.body["role"] == "auditor"
    with pytest.raises(ledger.ReadNotFound):
        ledger.prove(store, TENANT, "api_key", "nobody")
    with pytest.raises(ledger.ReadNotFound):
        ledger.prove(store, "globex", "span", _span_id(store))  # another tenant's log: none
    with pytest.raises(ledger.ReadRejected):
        ledger.prove(store, TENANT, "span", "not-a-span")
    with pytest.raises(ledger.ReadRejected):
        ledger.parse_record_ref("bogus:1")


def test_the_log_grows_consistently_and_the_witness_follows(logged, signer, tmp_path) -> None:
    store, job = logged
    first = ledger.checkpoint(store, TENANT)
    witness = WitnessDir(tmp_path / "witness")
    assert witness.latest(TENANT) == first
    _ingest(store, seed=8)
    assert job.run(store, _now()).info["appended"][TENANT] == RUNS * SPANS_PER_RUN
    second = ledger.checkpoint(store, TENANT)
    assert witness.latest(TENANT) == second
    old, new = (Checkpoint.parse(n[: n.rfind("\n\n") + 1]) for n in (first, second))
    proof = ledger.consistency(store, TENANT, old.size, new.size)
    verify_consistency_proof(proof, first, second, [signer.verifier()])
    with pytest.raises(ledger.ReadRejected):
        ledger.consistency(store, TENANT, new.size, old.size)


def test_the_witness_refuses_a_smaller_or_different_tree(logged, signer, tmp_path, caplog) -> None:
    store, _ = logged
    witness = WitnessDir(tmp_path / "witness")
    witnessed = Checkpoint.parse(open_note(witness.latest(TENANT) or "", [signer.verifier()]).text)
    forged = Signer.generate("agentledger")  # a rebuilt log, signed with a fresh key

    def proof(a: int, b: int) -> list[bytes]:
        return S.consistency_path(store, TENANT, a, b)

    smaller = Checkpoint(origin(TENANT), witnessed.size - 1, witnessed.root_hash)
    other = Checkpoint(origin(TENANT), witnessed.size + 1, bytes(32))
    with caplog.at_level(logging.ERROR):
        for bad in (smaller, other):
            with pytest.raises(WitnessRefused):
                witness.submit(TENANT, sign_note(bad.text(), [forged]), lambda a, b: [])
    assert "refused" in caplog.text
    assert (
        Checkpoint.parse(open_note(witness.latest(TENANT) or "", [signer.verifier()]).text)
        == witnessed
    )
    assert proof(witnessed.size, witnessed.size) == []


def test_a_stale_checkpoint_of_the_same_log_is_kept_out_without_an_alarm(
    logged, signer, tmp_path, caplog
) -> None:
    """Pipeline replicas sign concurrently: one that reaches the witness after a later
    checkpoint of the same log was taken is stale, not tampering (the witness stays newer)."""
    store, _ = logged
    witness = WitnessDir(tmp_path / "witness")
    witnessed = Checkpoint.parse(open_note(witness.latest(TENANT) or "", [signer.verifier()]).text)
    assert witnessed.size > 2
    older = Checkpoint(
        origin(TENANT), witnessed.size - 1, S.range_root(store, TENANT, 0, witnessed.size - 1)
    )

    def proof(a: int, b: int) -> list[bytes]:
        return S.consistency_path(store, TENANT, a, b)

    with caplog.at_level(logging.ERROR):
        kept = witness.submit(TENANT, sign_note(older.text(), [signer]), proof)
    assert "refused" not in caplog.text
    assert kept.size == witnessed.size
    assert (
        Checkpoint.parse(open_note(witness.latest(TENANT) or "", [signer.verifier()]).text)
        == witnessed
    )


def test_a_fork_is_detected_and_never_signed(logged, caplog) -> None:
    store, job = logged
    count, _, _ = S.log_head(store, TENANT)
    before = S.latest_checkpoint(store, TENANT)
    # a second appender that saw other rows wrote its own leaf at an index already taken
    forked = store.query_arrow(
        "SELECT * FROM ledger_leaves WHERE tenant = 'acme' AND leaf_index = {i:UInt64}",
        {"i": count - 1},
    )
    forked = forked.set_column(
        forked.schema.get_field_index("leaf_hash"), "leaf_hash", pa.array(["00" * 32], pa.string())
    )
    store.insert_arrow("ledger_leaves", forked, dedup_token="acme/fork")
    KeyBook(store).create(TENANT, "reader", "trent", actor="admin")
    with caplog.at_level(logging.ERROR):
        assert job.run(store, _now()).info["appended"][TENANT] == 0
    assert "a gap or a fork" in caplog.text
    assert S.latest_checkpoint(store, TENANT) == before
    with pytest.raises(S.LogGap, match="stored twice"):
        list(S.leaf_hashes(store, TENANT, 0, count))


def test_a_changed_span_gets_no_proof(logged) -> None:
    store, _ = logged
    span_id = _span_id(store)
    store.command(
        "ALTER TABLE spans UPDATE response_model = 'gpt-forged' WHERE span_id = {s:String} "
        "SETTINGS mutations_sync = 2",
        {"s": span_id},
    )
    with pytest.raises(ledger.LedgerMismatch, match="does not verify"):
        ledger.prove(store, TENANT, "span", span_id)


@pytest.mark.integration
def test_proofs_over_http_and_the_cli(logged, signer, auth_server, tmp_path) -> None:
    store, _ = logged
    span_id = _span_id(store)
    runner = CliRunner()
    where = ["--url", auth_server.url, "--api-key", API_KEYS[TENANT]]
    out = tmp_path / "span.json"
    done = runner.invoke(app, ["prove", "--span", span_id, "--out", str(out), *where])
    assert done.exit_code == 0, done.output
    assert verify_inclusion_proof(out.read_text(), [signer.verifier()]).record.id == span_id
    done = runner.invoke(app, ["ledger", "checkpoint", *where])
    assert done.exit_code == 0 and done.output == ledger.checkpoint(store, TENANT)
    size = Checkpoint.parse(done.output[: done.output.rfind("\n\n") + 1]).size
    done = runner.invoke(app, ["ledger", "consistency", "1", str(size), *where])
    assert done.exit_code == 0, done.output
    assert f'"second_size": {size}' in done.output
    done = runner.invoke(app, ["prove", "--record", "api_key:bob", *where])
    assert done.exit_code == 0 and '"leaf_index"' in done.output
    done = runner.invoke(app, ["prove", "--span", "0" * 16, *where])
    assert done.exit_code == 1 and "not in the signed log" in done.output
    import httpx

    other = httpx.get(
        f"{auth_server.url}/api/v1/ledger/proof",
        params={"span_id": span_id},
        headers={"Authorization": f"Bearer {API_KEYS['globex']}"},
    )
    assert other.status_code == 404  # globex's log holds no acme span
    both = httpx.get(
        f"{auth_server.url}/api/v1/ledger/proof",
        params={"span_id": span_id, "record": "api_key:bob"},
        headers={"Authorization": f"Bearer {API_KEYS[TENANT]}"},
    )
    assert both.status_code == 400


def test_consistency_from_a_checkpoint_range_reads_only_the_new_leaves(logged) -> None:
    from agentledger.pipeline.tlog import CompactRange, consistency_proof

    store, _ = logged
    leaves = [bytes.fromhex(h) for h in _leaf_hashes(store)]
    n = len(leaves)
    for m in range(1, n):
        compact = CompactRange()
        compact.extend(leaves[:m])
        fast = S.consistency_path(store, TENANT, m, n, compact.hashes)
        assert fast == consistency_proof(m, leaves), m
    # with the leaves left of the checkpoint gone, only the fast path still answers
    first = S.latest_checkpoint(store, TENANT)
    assert first is not None and first.tree_size == n
    store.command(
        "ALTER TABLE ledger_leaves DELETE WHERE tenant = 'acme' AND leaf_index < 3 "
        "SETTINGS mutations_sync = 2"
    )
    ((root_hash, hashes),) = S.checkpoint_ranges(store, TENANT, n)
    assert root_hash == first.root_hash
    assert S.consistency_path(store, TENANT, n, n, hashes) == []
    with pytest.raises(S.LogGap):
        S.consistency_path(store, TENANT, 5, n)
