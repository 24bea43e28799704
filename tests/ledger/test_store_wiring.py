"""The log wired into the embedded server: spans sent over OTLP/HTTP are appended by the
background job with the key the data directory holds (created on first start), witnessed in the
data directory (with a warning), and proven over HTTP; a configured key file that is missing
stops the start."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import httpx
import pytest

from agentledger.compose import build_ledger_log
from agentledger.pipeline.derive.tlog_witness import WitnessDir
from agentledger.pipeline.tlog import (
    DEFAULT_KEY_FILE,
    SIGNING_KEY_ENV,
    read_signing_key,
    verify_inclusion_proof,
)
from bench.traffic import requests

PB = "application/x-protobuf"


def test_the_embedded_store_gets_a_key_and_a_witness_in_its_data_dir(
    store, chdb_path: Path, caplog, monkeypatch
) -> None:
    monkeypatch.delenv(SIGNING_KEY_ENV, raising=False)
    monkeypatch.delenv("AGENTLEDGER_WITNESS_DIR", raising=False)
    with caplog.at_level(logging.WARNING):
        job = build_ledger_log(store)
    assert job is not None
    assert job.signer == read_signing_key(chdb_path / DEFAULT_KEY_FILE)
    assert isinstance(job.witness, WitnessDir)
    assert job.witness.directory == chdb_path / "witness" / store.database
    assert "not external" in caplog.text
    monkeypatch.setenv(SIGNING_KEY_ENV, str(chdb_path / "no-such.key"))
    with pytest.raises(ValueError, match="no ledger signing key"):
        build_ledger_log(store)


def test_spans_sent_to_the_server_are_proven_by_the_background_job(
    store, tmp_path: Path, monkeypatch
) -> None:
    from agentledger.pipeline.tlog import create_signing_key
    from tests.conftest import _server

    key = tmp_path / "deploy.key"
    signer = create_signing_key(key)
    monkeypatch.setenv(SIGNING_KEY_ENV, str(key))
    monkeypatch.setenv("AGENTLEDGER_WITNESS_DIR", str(tmp_path / "witness"))
    monkeypatch.setenv("AGENTLEDGER_JOBS_INTERVAL_S", "0.5")
    with _server(store, no_auth=True) as srv:
        for req in requests(3, runs_per_request=3, seed=5):
            resp = httpx.post(
                f"{srv.url}/v1/traces",
                content=req.SerializeToString(),
                headers={"Content-Type": PB},
                timeout=30,
            )
            assert resp.status_code == 200
        span_id = store.query_scalar("SELECT span_id FROM spans ORDER BY span_id LIMIT 1")
        deadline = time.monotonic() + 60
        proof = None
        while time.monotonic() < deadline:  # the job's first pass: within an interval or two
            answer = httpx.get(
                f"{srv.url}/api/v1/ledger/proof", params={"span_id": span_id}, timeout=30
            )
            if answer.status_code == 200:
                proof = answer.text
                break
            assert answer.status_code == 404, answer.text
            time.sleep(0.2)
        assert proof is not None, "no proof within 60 s"
        verified = verify_inclusion_proof(proof, [signer.verifier()])
        assert verified.record.id == span_id
        note = httpx.get(f"{srv.url}/api/v1/ledger/checkpoint", timeout=30)
        assert note.headers["content-type"].startswith("text/plain")
    assert WitnessDir(tmp_path / "witness").latest("default") is not None
