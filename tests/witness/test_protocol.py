"""The C2SP witness protocol pieces without HTTP: the add-checkpoint body, cosignatures, and the
witness's rule (old size, same-size root, consistency proof, trusted key, followed origin)."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentledger.pipeline.tlog import (
    Checkpoint,
    NoteError,
    Signer,
    consistency_proof,
    open_note,
    parse_note,
    root,
    sign_note,
)
from agentledger.pipeline.tlog.witness import (
    AddCheckpoint,
    CosignatureVerifier,
    Cosigner,
    WitnessError,
    WitnessLog,
)

pytestmark = pytest.mark.unit

LOG = Signer.generate("agentledger")
LEAVES = [bytes([i]) * 32 for i in range(40)]


def _note(size: int, leaves: list[bytes] = LEAVES, signer: Signer = LOG) -> str:
    return sign_note(Checkpoint("agentledger/acme", size, root(leaves[:size])).text(), [signer])


def _add(witness: WitnessLog, old: int, size: int, leaves: list[bytes] = LEAVES) -> str:
    proof = tuple(consistency_proof(old, leaves[:size])) if 0 < old < size else ()
    return witness.add_checkpoint(AddCheckpoint(old, proof, _note(size, leaves)).body())


@pytest.fixture
def witness(tmp_path: Path) -> WitnessLog:
    return WitnessLog(tmp_path, Cosigner.generate("witness.example/w1"), [LOG.verifier()])


def test_the_body_round_trips_and_malformed_bodies_name_the_problem() -> None:
    request = AddCheckpoint(12, (b"\x01" * 32, b"\x02" * 32), _note(20))
    body = request.body()
    assert body.startswith(b"old 12\nAQEB") and b"\n\nagentledger/acme\n20\n" in body
    assert AddCheckpoint.parse(body) == request
    for bad, says in [
        (b"old 012\n\n" + _note(20).encode(), "zeros"),
        (b"new 3\n\n", "must start"),
        (b"old 3\nnot-base64!\n\n" + _note(20).encode(), "base64"),
        (b"old 3\nAQID\n\n" + _note(20).encode(), "32-byte"),
        (b"old 3\n" + b"AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=\n" * 64 + b"\n", "63"),
    ]:
        with pytest.raises(WitnessError, match=says) as err:
            AddCheckpoint.parse(bad)
        assert err.value.status == 400


def test_a_cosignature_verifies_with_its_key_only(witness: WitnessLog) -> None:
    cosigner = witness.cosigner
    text = Checkpoint("agentledger/acme", 3, root(LEAVES[:3])).text()
    line = cosigner.cosign(text, timestamp=1_700_000_000)
    verifier = CosignatureVerifier.parse(cosigner.verifier().vkey)
    assert verifier == cosigner.verifier() and verifier.vkey.startswith("witness.example/w1+")
    assert verifier.timestamp(text, line) == 1_700_000_000
    assert verifier.timestamp(text.replace("\n3\n", "\n4\n"), line) is None  # another checkpoint
    assert Cosigner.generate("witness.example/w1").verifier().timestamp(text, line) is None
    assert Cosigner.parse(cosigner.skey) == cosigner and "seed" not in repr(cosigner)
    # a cosigned note still opens with the log's key: the witness's line is an unknown key's
    note = _note(3) + line.line()
    assert open_note(note, [LOG.verifier()]).unverified[0].name == "witness.example/w1"
    with pytest.raises(NoteError, match="cosignature/v1"):
        CosignatureVerifier.parse(LOG.verifier().vkey)  # a log key (0x01) is not a witness key


def test_the_witness_advances_and_refuses_a_rewrite(witness: WitnessLog, tmp_path: Path) -> None:
    lines = _add(witness, 0, 10)
    assert lines.startswith("\u2014 witness.example/w1 ")
    stored = witness.latest("agentledger/acme")
    assert stored is not None and witness.cosigner.verifier().verified_time(stored) is not None
    _add(witness, 10, 25)
    _add(witness, 25, 25)  # the same checkpoint again: cosigned again
    assert Checkpoint.parse(parse_note(witness.latest("agentledger/acme") or "")[0]).size == 25
    forked = LEAVES[:20] + [b"\xee" * 32] * 20  # same first 20 leaves, another tail
    cases = [
        (lambda: _add(witness, 10, 30), 409, "has size 25"),  # stale old size
        (lambda: _add(witness, 25, 25, forked), 409, "another root"),
        (lambda: _add(witness, 25, 30, forked), 422, "not an extension"),
        (lambda: _add(witness, 31, 30), 400, "above the size"),
    ]
    for call, status, says in cases:
        with pytest.raises(WitnessError, match=says) as err:
            call()
        assert err.value.status == status
        if status == 409:
            assert err.value.size == 25
    assert Checkpoint.parse(parse_note(witness.latest("agentledger/acme") or "")[0]).size == 25
    refused = (tmp_path / "agentledger%2Facme.refused").read_text()
    assert refused.count("# ") == 2 and "not an extension" in refused  # kept as evidence


def test_unknown_keys_and_logs_are_refused(witness: WitnessLog) -> None:
    stranger = Signer.generate("agentledger")
    with pytest.raises(WitnessError) as err:
        witness.add_checkpoint(AddCheckpoint(0, (), _note(5, signer=stranger)).body())
    assert err.value.status == 403
    other = sign_note(Checkpoint("example.com/log", 5, root(LEAVES[:5])).text(), [LOG])
    with pytest.raises(WitnessError) as err:
        witness.add_checkpoint(AddCheckpoint(0, (), other).body())
    assert err.value.status == 404
    with pytest.raises(WitnessError, match="must be empty") as err:
        witness.add_checkpoint(AddCheckpoint(0, (b"\x00" * 32,), _note(5)).body())
    assert err.value.status == 400
