"""What the console's ledger views are made of, on a real store without a browser: a span is
"not yet in a signed checkpoint" until the appender signs, then it is, at its leaf; the status
names the checkpoint, the key and the witness, and sees a witness that disagrees; verification
with the deployment's own key is OK and fails under a log rewritten behind its back."""

from __future__ import annotations

import socket
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from agentledger.pipeline.derive.tlog_job import TreeLogJob
from agentledger.pipeline.derive.tlog_witness import WitnessDir
from agentledger.pipeline.normalize import OtlpNormalizer
from agentledger.pipeline.services import ledger
from agentledger.pipeline.sinks import IngestBatch
from agentledger.pipeline.sinks.embedded import EmbeddedSink
from agentledger.pipeline.tlog import (
    SIGNING_KEY_ENV,
    Checkpoint,
    create_signing_key,
    sign_note,
)
from bench.traffic import SPANS_PER_RUN, requests

pytestmark = pytest.mark.integration

TENANT = "acme"


def _ingest(store) -> list[str]:  # type: ignore[no-untyped-def]
    sink = EmbeddedSink(store, OtlpNormalizer())
    for req in requests(2, runs_per_request=2, seed=5):
        sink.write(IngestBatch(TENANT, time.time_ns(), req, 2 * SPANS_PER_RUN))
    sink.close()
    rows = store.query_rows(
        "SELECT span_id FROM spans WHERE tenant = {t:String} ORDER BY span_id", {"t": TENANT}
    )
    return [str(r["span_id"]) for r in rows]


def test_a_span_is_marked_signed_only_once_a_checkpoint_covers_it(
    store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key_file = tmp_path / "ledger.key"
    signer = create_signing_key(key_file)
    monkeypatch.setenv(SIGNING_KEY_ENV, str(key_file))
    monkeypatch.setenv("AGENTLEDGER_WITNESS_DIR", str(tmp_path / "witness"))
    spans = _ingest(store)
    assert spans

    before = ledger.signed_leaves(store, TENANT, "span", spans[:3])
    assert before.checkpoint_size == 0 and not any(before.signed(s) for s in spans[:3])
    assert before.interval_s > 0  # what "appended within N s" says
    empty = ledger.status(store, TENANT)
    assert empty.tree_size == 0 and empty.witnessed_size is None and not empty.witness_agrees
    assert empty.public_keys == (signer.verifier().vkey,)

    job = TreeLogJob(signer, WitnessDir(tmp_path / "witness"))
    job.run(store, datetime.now(timezone.utc))
    after = ledger.signed_leaves(store, TENANT, "span", [*spans, "f" * 16])
    assert all(after.signed(s) for s in spans)
    assert not after.signed("f" * 16)  # never stored: no leaf
    assert sorted(after.leaves[s] for s in spans) == sorted(set(after.leaves.values()))

    state = ledger.status(store, TENANT)
    assert state.tree_size == state.leaves >= len(spans)
    assert state.origin == f"agentledger/{TENANT}" and state.key_name == signer.name
    assert state.signed_at and state.root and state.note.startswith(state.origin)
    assert state.witnessed_size == state.tree_size and state.witness_agrees

    report = ledger.verify_here(store, TENANT)
    assert report.ok, report.problems
    assert report.leaves == state.tree_size

    # a witness that saw another root at the same size: the status says so
    forged = Checkpoint(state.origin, state.tree_size, b"\x01" * 32)
    (tmp_path / "witness" / f"{TENANT}.checkpoint").write_text(sign_note(forged.text(), [signer]))
    disagreeing = ledger.status(store, TENANT)
    assert not disagreeing.witness_agrees
    assert "another root" in disagreeing.witness_problem
    assert not ledger.verify_here(store, TENANT).ok


def test_verification_fails_when_a_signed_span_is_changed(
    store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key_file = tmp_path / "ledger.key"
    signer = create_signing_key(key_file)
    monkeypatch.setenv(SIGNING_KEY_ENV, str(key_file))
    monkeypatch.setenv("AGENTLEDGER_WITNESS_DIR", str(tmp_path / "witness"))
    spans = _ingest(store)
    TreeLogJob(signer, WitnessDir(tmp_path / "witness")).run(store, datetime.now(timezone.utc))
    assert ledger.verify_here(store, TENANT).ok
    store.command(
        "ALTER TABLE spans UPDATE name = 'rewritten' WHERE span_id = {s:String} "
        "SETTINGS mutations_sync = 2",
        {"s": spans[0]},
    )
    report = ledger.verify_here(store, TENANT)
    assert not report.ok and "updated" in report.counts, report.counts
    with pytest.raises(ledger.LedgerMismatch):
        ledger.prove(store, TENANT, "span", spans[0])


def test_a_witness_that_cannot_be_asked_is_named_not_a_failure_of_the_page(
    store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key_file = tmp_path / "ledger.key"
    signer = create_signing_key(key_file)
    monkeypatch.setenv(SIGNING_KEY_ENV, str(key_file))
    monkeypatch.setenv("AGENTLEDGER_WITNESS_DIR", str(tmp_path / "witness"))
    _ingest(store)
    TreeLogJob(signer, WitnessDir(tmp_path / "witness")).run(store, datetime.now(timezone.utc))
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("AGENTLEDGER_WITNESS_URL", f"http://127.0.0.1:{port}")
    state = ledger.status(store, TENANT)
    assert state.tree_size > 0 and state.witness_url.endswith(str(port))
    assert "could not be asked" in state.witness_problem and not state.witness_agrees
    with pytest.raises(ValueError):
        ledger.verify_here(store, TENANT)
