"""A real tenant log for the ledger tests: canonical records of every kind, their leaf hashes, a
signing key and a signed checkpoint over them."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterator

import pytest

from agentledger.pipeline.tlog import Checkpoint, InclusionProof, Signer, root, sign_note
from agentledger.pipeline.tlog.note import NoteSignature, parse_note
from agentledger.schemas import ledger as L


@dataclasses.dataclass(frozen=True)
class TenantLog:
    tenant: str
    records: list[bytes]
    leaves: list[bytes]
    signer: Signer
    note: str
    """The signed checkpoint over all of ``leaves``."""


def make_log(tenant: str, signer: Signer, extra: int = 6) -> TenantLog:
    """The golden records re-homed to ``tenant``, then ``extra`` content records: a log whose
    size is not a power of two, so proofs take both RFC 9162 branches."""
    records = []
    for case in L.fixtures():
        record = dataclasses.replace(L.LedgerRecord.from_json(case["record"]), tenant=tenant)
        records.append(L.canonical_record(record))
    for i in range(extra):
        digest = hashlib.sha256(f"content {i}".encode()).hexdigest()
        records.append(
            L.canonical_record(
                L.content_record(tenant, digest, "text", 10 + i, 1_796_000_000_000_000_000 + i)
            )
        )
    leaves = [L.leaf_hash(r) for r in records]
    checkpoint = Checkpoint(L.origin(tenant), len(leaves), root(leaves))
    return TenantLog(tenant, records, leaves, signer, sign_note(checkpoint.text(), [signer]))


@pytest.fixture(scope="module")
def signer() -> Signer:
    return Signer.generate("agentledger")


@pytest.fixture(scope="module")
def tenant_log(signer: Signer) -> TenantLog:
    return make_log("acme", signer)


def flips(data: bytes) -> Iterator[bytes]:
    """``data`` with one bit flipped, for every bit."""
    for i in range(len(data)):
        for bit in range(8):
            yield data[:i] + bytes([data[i] ^ (1 << bit)]) + data[i + 1 :]


def mutations(proof: InclusionProof) -> Iterator[tuple[str, InclusionProof]]:
    """The proof with one bit flipped, for every bit of the record, each path element, the
    checkpoint text and the signature (key id included), and low bits of the two numbers."""
    for flipped in flips(proof.record):
        yield "record", dataclasses.replace(proof, record=flipped)
    for n, element in enumerate(proof.inclusion_path):
        for flipped in flips(element):
            path = (*proof.inclusion_path[:n], flipped, *proof.inclusion_path[n + 1 :])
            yield f"path[{n}]", dataclasses.replace(proof, inclusion_path=path)
    text, signatures = parse_note(proof.checkpoint)
    for flipped in flips(text.encode()):
        if flipped.isascii():  # a note is text: a byte that is not UTF-8 cannot be in one
            note = flipped.decode() + "\n" + signatures[0].line()
            yield "checkpoint", dataclasses.replace(proof, checkpoint=note)
    sig = signatures[0]
    for flipped in flips(sig.key_id.to_bytes(4, "big") + sig.signature):
        bad = NoteSignature(sig.name, int.from_bytes(flipped[:4], "big"), flipped[4:])
        yield "signature", dataclasses.replace(proof, checkpoint=text + "\n" + bad.line())
    for field in ("tree_size", "leaf_index"):
        for bit in range(8):
            value = getattr(proof, field) ^ (1 << bit)
            yield field, dataclasses.replace(proof, **{field: value})
