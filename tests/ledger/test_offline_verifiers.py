"""The offline verifiers as an auditor runs them: ``agentledger verify-proof`` and the
``ledger`` key commands as child processes, and examples/verify_proof.py (stdlib + cryptography)
on a proof built over a real log: it accepts it, and rejects any flipped bit."""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from agentledger.pipeline.tlog import (
    InclusionProof,
    Signer,
    build_inclusion_proof,
    keyring_path,
    read_signing_key,
    verify_inclusion_proof,
)
from agentledger.pipeline.tlog.note import NoteSignature, parse_note
from tests.ledger.conftest import TenantLog, make_log, mutations

pytestmark = pytest.mark.integration

ROOT = Path(__file__).parent.parent.parent
EXAMPLE = ROOT / "examples" / "verify_proof.py"
CLI = [sys.executable, "-m", "agentledger.cli"]


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("AGENTLEDGER_")}
    return subprocess.run(
        [*args], capture_output=True, text=True, timeout=120, env={**full, **(env or {})}
    )


def _example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("verify_proof_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write(tmp_path: Path, name: str, proof: InclusionProof) -> str:
    path = tmp_path / name
    path.write_text(proof.dumps(), encoding="utf-8")
    return str(path)


def _flipped(proof: InclusionProof) -> dict[str, InclusionProof]:
    """One proof per part with one bit flipped in it."""
    text, (sig, *_) = parse_note(proof.checkpoint)
    record = bytearray(proof.record)
    record[len(record) // 2] ^= 0x04
    path = [bytearray(h) for h in proof.inclusion_path]
    path[-1][17] ^= 0x80
    bad_sig = bytearray(sig.signature)
    bad_sig[63] ^= 0x01
    resigned = NoteSignature(sig.name, sig.key_id, bytes(bad_sig))
    return {
        "record": dataclasses.replace(proof, record=bytes(record)),
        "path": dataclasses.replace(proof, inclusion_path=tuple(bytes(h) for h in path)),
        "checkpoint": dataclasses.replace(
            proof, checkpoint=text.replace("acme\n", "acmf\n") + "\n" + sig.line()
        ),
        "signature": dataclasses.replace(proof, checkpoint=text + "\n" + resigned.line()),
    }


def test_the_example_verifier_accepts_a_real_proof_and_rejects_flipped_bits(
    tmp_path: Path, tenant_log: TenantLog
) -> None:
    vkey = tenant_log.signer.verifier().vkey
    proof = build_inclusion_proof(tenant_log.note, tenant_log.leaves, 0, tenant_log.records[0])
    ok = _run(sys.executable, str(EXAMPLE), _write(tmp_path, "proof.json", proof), vkey)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ok.stdout.startswith("OK: span 00f067aa0ba902b7 is leaf 0 of agentledger/acme")
    for part, bad in _flipped(proof).items():
        out = _run(sys.executable, str(EXAMPLE), _write(tmp_path, f"{part}.json", bad), vkey)
        assert out.returncode == 1, part
        assert out.stdout.startswith("REJECTED"), (part, out.stdout)
    other = Signer.generate("agentledger").verifier().vkey
    out = _run(sys.executable, str(EXAMPLE), _write(tmp_path, "proof.json", proof), other)
    assert out.returncode == 1 and "no signature by this key" in out.stdout


def test_the_example_agrees_with_the_library_on_every_bit_of_every_part(
    tenant_log: TenantLog,
) -> None:
    verify = _example().verify
    vkey = tenant_log.signer.verifier().vkey
    key = tenant_log.signer.verifier()
    for index in (7, len(tenant_log.leaves) - 1):  # a record-log kind and a content leaf
        proof = build_inclusion_proof(
            tenant_log.note, tenant_log.leaves, index, tenant_log.records[index]
        )
        assert verify(proof.dumps(), vkey).startswith("OK")
        assert verify_inclusion_proof(proof, [key]).leaf_index == index
        tried = 0
        for where, mutated in mutations(proof):
            with pytest.raises(Exception):  # noqa: B017 - the example raises whatever failed
                verify(mutated.dumps(), vkey)
            tried += where == "record"
        assert tried == 8 * len(proof.record)


def test_verify_proof_and_the_key_commands(tmp_path: Path) -> None:
    key_file = tmp_path / "keys" / "ledger.key"
    env = {"AGENTLEDGER_LEDGER_SIGNING_KEY_FILE": str(key_file)}
    missing = _run(*CLI, "ledger", "public-key", env=env)
    assert missing.returncode == 1 and "no ledger signing key at" in missing.stderr

    created = _run(*CLI, "ledger", "create-key", "--name", "ledger.example", env=env)
    assert created.returncode == 0, created.stderr
    shown = _run(*CLI, "ledger", "public-key", env=env)
    vkey = shown.stdout.strip()
    signer = read_signing_key(key_file)
    assert vkey == signer.verifier().vkey and vkey.startswith("ledger.example+")
    log = make_log("acme", signer)
    proof = build_inclusion_proof(log.note, log.leaves, 4, log.records[4])
    proof_file = _write(tmp_path, "proof.json", proof)

    ok = _run(*CLI, "verify-proof", proof_file, "--key", vkey, env={"AGENTLEDGER_DATA_DIR": "/nonexistent"})  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip().startswith("OK: ") and "leaf 4 of agentledger/acme" in ok.stdout
    assert f"tree size {len(log.leaves)}" in ok.stdout

    bad = _run(*CLI, "verify-proof", _write(tmp_path, "bad.json", _flipped(proof)["path"]), "--key", vkey)  # fmt: skip
    assert bad.returncode == 1
    assert "proof rejected: inclusion path does not lead to the root" in bad.stderr
    no_key = _run(*CLI, "verify-proof", proof_file)
    assert no_key.returncode == 2 and "--key" in no_key.stderr
    no_ring = _run(*CLI, "verify-proof", proof_file, "--key", vkey, "--keyring", str(tmp_path / "none"))  # fmt: skip
    assert no_ring.returncode == 2 and "no keyring file" in no_ring.stderr

    rotated = _run(*CLI, "ledger", "rotate-key", "--key-file", str(key_file))
    assert rotated.returncode == 0, rotated.stderr
    assert f"retired {vkey}" in rotated.stdout
    assert keyring_path(key_file).read_text().strip().endswith(vkey)
    new_vkey = _run(*CLI, "ledger", "public-key", "--key-file", str(key_file)).stdout.strip()
    assert new_vkey != vkey
    # the old proof: refused with the new key alone, accepted with the keyring
    refused = _run(*CLI, "verify-proof", proof_file, "--key", new_vkey)
    assert refused.returncode == 1 and "no signature by a known key" in refused.stderr
    kept = _run(*CLI, "verify-proof", proof_file, "--key", new_vkey, "--keyring", str(keyring_path(key_file)))  # fmt: skip
    assert kept.returncode == 0, kept.stderr
    both = _run(*CLI, "ledger", "public-key", "--all", env=env)
    assert both.stdout.split() == [new_vkey, vkey]


def test_the_light_verifier_checks_a_proof_without_the_servers_dependencies(
    tmp_path: Path, tenant_log: TenantLog
) -> None:
    vkey = tenant_log.signer.verifier().vkey
    proof = build_inclusion_proof(tenant_log.note, tenant_log.leaves, 2, tenant_log.records[2])
    good, bad = _write(tmp_path, "good.json", proof), _write(tmp_path, "bad.json", _flipped(proof)["record"])  # fmt: skip
    code = (
        "import runpy, sys\n"
        "sys.argv = ['tlog', 'verify-proof', sys.argv[1], '--key', sys.argv[2]]\n"
        "try:\n"
        "    runpy.run_module('agentledger.pipeline.tlog', run_name='__main__')\n"
        "except SystemExit as exc:\n"
        "    status = exc.code\n"
        "heavy = {'chdb', 'pyarrow', 'numpy', 'kafka', 'typer', 'rich', 'pydantic', 'fastapi'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
        "sys.exit(status)\n"
    )
    ok = _run(sys.executable, "-c", code, good, vkey)
    assert ok.returncode == 0, ok.stderr
    summary, loaded = ok.stdout.splitlines()
    assert summary.startswith("OK: intent ") and "leaf 2 of agentledger/acme" in summary
    assert loaded == "[]"
    rejected = _run(sys.executable, "-m", "agentledger.pipeline.tlog", "verify-proof", bad, "--key", vkey)  # fmt: skip
    assert rejected.returncode == 1 and "error: proof rejected: " in rejected.stderr
    unusable = _run(sys.executable, "-m", "agentledger.pipeline.tlog", "verify-proof", good, "--key", "x+y")  # fmt: skip
    assert unusable.returncode == 2 and "verifier key" in unusable.stderr
