"""The witness over HTTP: ``agentledger witness serve`` as a child process, the appender posting
every new checkpoint to it (``HttpWitness``), and ``ledger verify --witness-url`` holding the store
to what it witnessed. Real chDB store, real server, real sockets."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from agentledger.cli import app
from agentledger.pipeline.derive import tlog_store as S
from agentledger.pipeline.derive.tlog_job import TreeLogJob
from agentledger.pipeline.derive.tlog_witness import WitnessRefused
from agentledger.pipeline.derive.witness_http import HttpWitness
from agentledger.pipeline.normalize import OtlpNormalizer
from agentledger.pipeline.sinks import IngestBatch
from agentledger.pipeline.sinks.embedded import EmbeddedSink
from agentledger.pipeline.tlog import (
    Checkpoint,
    Signer,
    create_signing_key,
    parse_note,
    read_signing_key,
    sign_note,
)
from agentledger.pipeline.tlog.witness import AddCheckpoint, CosignatureVerifier
from bench.traffic import SPANS_PER_RUN, requests

pytestmark = pytest.mark.integration

TENANT = "acme"
ORIGIN = "agentledger/acme"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class WitnessProcess:
    url: str
    key: CosignatureVerifier
    directory: Path
    proc: subprocess.Popen[bytes]

    def size(self) -> int | None:
        resp = httpx.get(f"{self.url}/checkpoint", params={"origin": ORIGIN}, timeout=10)
        if resp.status_code == 404:
            return None
        assert resp.status_code == 200, resp.text
        assert self.key.verified_time(resp.text) is not None  # cosigned by the witness's key
        return Checkpoint.parse(parse_note(resp.text)[0]).size


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "ledger-signing.key"
    create_signing_key(path)
    return path


@pytest.fixture
def signer(key_file: Path) -> Signer:
    return read_signing_key(key_file)


@pytest.fixture
def start_witness(tmp_path: Path, signer: Signer) -> Iterator[Callable[..., WitnessProcess]]:
    started: list[subprocess.Popen[bytes]] = []

    def start(port: int | None = None) -> WitnessProcess:
        port = port or _free_port()
        directory = tmp_path / "witness-state"
        proc = subprocess.Popen(
            [sys.executable, "-m", "agentledger.cli", "witness", "serve", "--dir", str(directory)]
            + ["--key", signer.verifier().vkey, "--port", str(port), "--log-level", "warning"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        started.append(proc)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                about = httpx.get(f"{url}/", timeout=1)
                if about.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, "witness exited"
            assert time.monotonic() < deadline, "witness did not start"
            time.sleep(0.1)
        key = CosignatureVerifier.parse(about.json()["vkey"])
        return WitnessProcess(url, key, directory, proc)

    yield start
    for proc in started:
        proc.terminate()
        proc.wait(timeout=30)


def _ingest(store, runs: int, seed: int) -> None:
    sink = EmbeddedSink(store, OtlpNormalizer())
    for req in requests(runs, runs_per_request=2, seed=seed):
        sink.write(IngestBatch(TENANT, time.time_ns(), req, 2 * SPANS_PER_RUN))
    sink.close()


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _verify(store, key_file: Path, database: str, chdb_path: Path, url: str, tmp_path: Path):
    runner = CliRunner(env={"AGENTLEDGER_DATABASE": database, "AGENTLEDGER_WITNESS_URL": url})
    args = ["ledger", "verify", "--tenant", TENANT, "--data-dir", str(chdb_path)]
    args += ["--key-file", str(key_file), "--witness-dir", str(tmp_path / "no-witness-dir")]
    return runner.invoke(app, args)


def test_witnessing_advances_with_consistency_proofs(store, signer, start_witness) -> None:
    witness = start_witness()
    client = HttpWitness(witness.url, witness.key)
    job = TreeLogJob(signer, client, chunk=7)
    _ingest(store, 4, seed=7)
    job.run(store, _now())
    first = S.latest_checkpoint(store, TENANT)
    assert first is not None and witness.size() == first.tree_size == 4 * SPANS_PER_RUN
    _ingest(store, 3, seed=8)
    result = job.run(store, _now())
    second = S.latest_checkpoint(store, TENANT)
    assert second is not None and second.tree_size == 7 * SPANS_PER_RUN
    assert witness.size() == second.tree_size  # accepted: the proof from 20 to 35 verified
    state = result.info["witness"][TENANT]
    assert state["witnessed_size"] == second.tree_size and state["failures"] == 0
    # a fresh client (a restarted appender) learns the witness's size from its 409 and goes on
    _ingest(store, 1, seed=9)
    TreeLogJob(signer, HttpWitness(witness.url, witness.key)).run(store, _now())
    assert witness.size() == 8 * SPANS_PER_RUN
    client.close()
    runner = CliRunner()
    shown = runner.invoke(app, ["witness", "latest", "--url", witness.url, "--tenant", TENANT])
    assert shown.exit_code == 0 and shown.output.startswith(f"{ORIGIN}\n40\n"), shown.output
    assert witness.key.verified_time(shown.output) is not None
    none = runner.invoke(app, ["witness", "latest", "--url", witness.url, "--tenant", "nobody"])
    assert none.exit_code == 1 and "no checkpoint of nobody" in none.output
    vkey = runner.invoke(app, ["witness", "public-key", "--dir", str(witness.directory)])
    assert vkey.output.strip() == witness.key.vkey


def test_a_rebuilt_log_is_refused(store, signer, start_witness, chdb_path, tmp_path) -> None:
    from agentledger.pipeline.store import migrate
    from agentledger.pipeline.store.embedded import EmbeddedStore

    witness = start_witness()
    _ingest(store, 4, seed=7)
    TreeLogJob(signer, HttpWitness(witness.url, witness.key)).run(store, _now())
    witnessed = witness.size()
    # the operator rebuilds the log elsewhere (other spans, the same key) and submits it
    with EmbeddedStore(str(chdb_path), database=f"rebuilt_{os.getpid()}_{time.time_ns()}") as other:
        migrate(other)
        _ingest(other, 6, seed=21)
        rebuilt = HttpWitness(witness.url, witness.key)
        job = TreeLogJob(signer, rebuilt)
        job.run(other, _now())  # refused: logged, and the appender goes on
        assert "refused" in rebuilt.state()[TENANT]["last_error"]
        assert S.latest_checkpoint(other, TENANT) is not None
        other.command(f"DROP DATABASE {other.database}")
    assert witness.size() == witnessed
    # the answers themselves, as the spec gives them
    note = S.latest_checkpoint(store, TENANT)
    assert note is not None
    stale = httpx.post(
        f"{witness.url}/add-checkpoint", content=AddCheckpoint(0, (), note.note).body()
    )
    assert stale.status_code == 409 and stale.text == f"{witnessed}\n"
    assert stale.headers["content-type"].startswith("text/x.tlog.size")
    bad_proof = AddCheckpoint(witnessed, (b"\x00" * 32,), note.note).body()
    # same size and root with a useless proof is fine; a larger forged tree is not
    assert httpx.post(f"{witness.url}/add-checkpoint", content=bad_proof).status_code == 200
    forged = Signer.parse(signer.skey)

    bigger = sign_note(Checkpoint(ORIGIN, witnessed + 5, b"\x07" * 32).text(), [forged])
    refused = httpx.post(
        f"{witness.url}/add-checkpoint",
        content=AddCheckpoint(witnessed, (b"\x00" * 32,), bigger).body(),
    )
    assert refused.status_code == 422, refused.text
    stranger = sign_note(Checkpoint(ORIGIN, 1, b"\x07" * 32).text(), [Signer.generate("x")])
    assert (
        httpx.post(
            f"{witness.url}/add-checkpoint", content=AddCheckpoint(0, (), stranger).body()
        ).status_code
        == 403
    )
    assert httpx.post(f"{witness.url}/add-checkpoint", content=b"old x\n\n").status_code == 400
    huge = httpx.post(f"{witness.url}/add-checkpoint", content=b"old 0\n" * 20_000)
    assert huge.status_code == 413 and "bytes" in huge.text
    unknown = httpx.get(f"{witness.url}/checkpoint", params={"origin": "agentledger/nobody"})
    assert unknown.status_code == 404 and "agentledger/nobody" in unknown.text


def test_an_unreachable_witness_never_stops_the_appender(store, signer, start_witness) -> None:
    port = _free_port()
    client = HttpWitness(f"http://127.0.0.1:{port}", timeout_s=2)
    job = TreeLogJob(signer, client)
    _ingest(store, 2, seed=7)
    result = job.run(store, _now())
    assert result.info["appended"][TENANT] == 2 * SPANS_PER_RUN  # appended and signed all the same
    assert S.latest_checkpoint(store, TENANT) is not None
    state = client.state()[TENANT]
    assert state["failures"] == 1 and state["pending_size"] == 2 * SPANS_PER_RUN
    assert state["witnessed_size"] is None and "Connect" in state["last_error"]
    witness = start_witness(port)
    result = job.run(store, _now())  # nothing new to append: the pending checkpoint is retried
    assert result.info["appended"][TENANT] == 0
    assert witness.size() == 2 * SPANS_PER_RUN
    assert client.state()[TENANT]["pending_size"] is None
    assert client.state()[TENANT]["failures"] == 0


def test_verify_reports_a_store_behind_or_forked_from_the_witness(
    store, signer, key_file, start_witness, database, chdb_path, tmp_path
) -> None:
    witness = start_witness()
    job = TreeLogJob(signer, HttpWitness(witness.url, witness.key))
    _ingest(store, 3, seed=7)
    job.run(store, _now())
    done = _verify(store, key_file, database, chdb_path, witness.url, tmp_path)
    assert done.exit_code == 0, done.output
    assert f"witnessed at {3 * SPANS_PER_RUN}" in done.output
    _ingest(store, 2, seed=8)
    job.run(store, _now())
    assert witness.size() == 5 * SPANS_PER_RUN
    # the store is restored from a backup taken before the second pass: it is behind the witness
    keep = 3 * SPANS_PER_RUN
    store.command(
        "ALTER TABLE ledger_leaves DELETE WHERE leaf_index >= {n:UInt64} SETTINGS mutations_sync=2",
        {"n": keep},
    )
    store.command(
        "ALTER TABLE ledger_tree_checkpoints DELETE WHERE tree_size > {n:UInt64} "
        "SETTINGS mutations_sync = 2",
        {"n": keep},
    )
    done = _verify(store, key_file, database, chdb_path, witness.url, tmp_path)
    assert done.exit_code == 1, done.output
    assert "witness_mismatch" in done.output and "truncated" in done.output
    assert f"the witness saw size {5 * SPANS_PER_RUN}" in done.output
    # the leaves are rewritten into another log of the witnessed size: inconsistent with it
    store.command(
        "ALTER TABLE ledger_leaves UPDATE leaf_hash = repeat('1', 64) WHERE leaf_index = 0 "
        "SETTINGS mutations_sync = 2"
    )
    done = _verify(store, key_file, database, chdb_path, witness.url, tmp_path)
    assert done.exit_code == 1 and "root_mismatch" in done.output, done.output
    # a witness that cannot be asked is an error (exit 2), never a silent OK
    gone = _verify(
        store, key_file, database, chdb_path, f"http://127.0.0.1:{_free_port()}", tmp_path
    )
    assert gone.exit_code == 2 and "witness" in gone.output


def test_a_refusal_is_raised_to_the_caller(store, signer, start_witness) -> None:
    witness = start_witness()
    client = HttpWitness(witness.url, witness.key)
    _ingest(store, 2, seed=7)
    TreeLogJob(signer, client).run(store, _now())
    smaller = S.latest_checkpoint(store, TENANT)
    assert smaller is not None

    other = sign_note(Checkpoint(ORIGIN, 3, b"\x05" * 32).text(), [signer])
    with pytest.raises(WitnessRefused, match="above this log"):
        HttpWitness(witness.url, witness.key).submit(TENANT, other, lambda a, b: [])
