"""Proof files: one record's inclusion in a signed checkpoint, and the consistency of two
checkpoints, checkable with nothing but the file and the log's public key.

An inclusion proof is a JSON object with exactly these members::

    {"checkpoint": "<signed note: the C2SP checkpoint and its signatures>",
     "tree_size": N, "leaf_index": i,
     "record": "<base64 of the canonical record (agentledger.schemas.ledger)>",
     "inclusion_path": ["<base64 hash>", ...]}

and verifying it is (docs/verifying.md says the same for outsiders):

1. open the signed note with the given verifier keys: at least one signature verifies, none by a
   given key fails; signatures by other keys (witnesses, retired keys) are ignored;
2. parse the note text as a checkpoint; its tree size must be ``tree_size``;
3. parse the record: canonical JSON of the ledger form; its tenant's origin
   ``agentledger/<tenant>`` must be the checkpoint's origin (a record cannot be proven in
   another tenant's log);
4. leaf hash = SHA-256(0x00 || record); RFC 9162 2.1.3.2 over ``inclusion_path`` from that leaf
   at ``leaf_index`` must end at the checkpoint's root hash.

A consistency proof is ``{"first_size": m, "second_size": n, "consistency_path": [...]}``,
checked against two signed checkpoints of the same origin (RFC 9162 2.1.4.2).

Every failure raises a ``ValueError`` subclass (``ProofFileError``, ``ProofError``,
``NoteError``) whose message is the reason, which the command line prints as it is.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

from agentledger.pipeline.tlog.merkle import (
    ProofError,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    root,
    verify_consistency,
    verify_inclusion,
)
from agentledger.pipeline.tlog.note import (
    Checkpoint,
    NoteSignature,
    Verifier,
    b64decode_strict,
    open_note,
)
from agentledger.schemas.ledger import LedgerRecord, origin, parse_canonical_record

__all__ = [
    "ConsistencyProof",
    "InclusionProof",
    "ProofFileError",
    "VerifiedInclusion",
    "build_consistency_proof",
    "build_inclusion_proof",
    "verify_consistency_proof",
    "verify_inclusion_proof",
]

_INCLUSION_MEMBERS: Final = frozenset(
    {"checkpoint", "tree_size", "leaf_index", "record", "inclusion_path"}
)
_CONSISTENCY_MEMBERS: Final = frozenset({"first_size", "second_size", "consistency_path"})


class ProofFileError(ValueError):
    """A proof file that is not a proof of the expected shape; the message says what is off."""


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _object(data: str | bytes | Mapping[str, Any], members: frozenset[str]) -> Mapping[str, Any]:
    if isinstance(data, Mapping):
        value: Any = data
    else:
        try:
            value = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ProofFileError(f"proof is not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise ProofFileError("proof must be a JSON object")
    if value.keys() != members:
        missing, extra = sorted(members - value.keys()), sorted(value.keys() - members)
        raise ProofFileError(f"proof members: missing {missing}, unknown {extra}")
    return value


def _count(value: Any, what: str) -> int:
    if type(value) is not int or value < 0:
        raise ProofFileError(f"{what} must be a non-negative integer")
    return value


def _hashes(value: Any, what: str) -> tuple[bytes, ...]:
    if not isinstance(value, list) or not all(isinstance(h, str) for h in value):
        raise ProofFileError(f"{what} must be an array of base64 strings")
    return tuple(b64decode_strict(h, f"{what}[{i}]") for i, h in enumerate(value))


@dataclasses.dataclass(frozen=True)
class InclusionProof:
    """One record, where it is in the log, and the signed checkpoint it is proven against."""

    checkpoint: str
    tree_size: int
    leaf_index: int
    record: bytes
    inclusion_path: tuple[bytes, ...]

    def to_json(self) -> dict[str, Any]:
        """The proof file's object."""
        return {
            "checkpoint": self.checkpoint,
            "tree_size": self.tree_size,
            "leaf_index": self.leaf_index,
            "record": _b64(self.record),
            "inclusion_path": [_b64(h) for h in self.inclusion_path],
        }

    def dumps(self) -> str:
        """The proof file's text."""
        return json.dumps(self.to_json(), indent=2, ensure_ascii=False) + "\n"

    @classmethod
    def loads(cls, data: str | bytes | Mapping[str, Any]) -> InclusionProof:
        """The proof in a proof file; raises ProofFileError (or NoteError for bad base64)."""
        value = _object(data, _INCLUSION_MEMBERS)
        if not isinstance(value["checkpoint"], str):
            raise ProofFileError("checkpoint must be the signed note as a string")
        if not isinstance(value["record"], str):
            raise ProofFileError("record must be a base64 string")
        return cls(
            checkpoint=value["checkpoint"],
            tree_size=_count(value["tree_size"], "tree_size"),
            leaf_index=_count(value["leaf_index"], "leaf_index"),
            record=b64decode_strict(value["record"], "record"),
            inclusion_path=_hashes(value["inclusion_path"], "inclusion_path"),
        )


@dataclasses.dataclass(frozen=True)
class VerifiedInclusion:
    """What a verified inclusion proof established."""

    origin: str
    tree_size: int
    leaf_index: int
    record: LedgerRecord
    signatures: tuple[NoteSignature, ...]
    """The checkpoint's signatures by the given keys (all verified)."""

    def summary(self) -> str:
        """The one line the verifiers print on success."""
        signers = ", ".join(f"{s.name}+{s.key_id:08x}" for s in self.signatures)
        return (
            f"OK: {self.record.kind.value} {self.record.id} is leaf {self.leaf_index} of "
            f"{self.origin} at tree size {self.tree_size} (checkpoint signed by {signers})"
        )


def _checkpoint(
    note: str, verifiers: Iterable[Verifier]
) -> tuple[Checkpoint, tuple[NoteSignature, ...]]:
    opened = open_note(note, verifiers)
    return Checkpoint.parse(opened.text), opened.verified


def verify_inclusion_proof(
    proof: InclusionProof | str | bytes, verifiers: Iterable[Verifier]
) -> VerifiedInclusion:
    """Check a proof with the log's public key(s) and nothing else (the steps in the module
    docstring); raises a ValueError subclass naming the first check that failed."""
    if not isinstance(proof, InclusionProof):
        proof = InclusionProof.loads(proof)
    checkpoint, signatures = _checkpoint(proof.checkpoint, verifiers)
    if checkpoint.size != proof.tree_size:
        raise ProofError(
            f"tree_size {proof.tree_size} is not the checkpoint's size {checkpoint.size}"
        )
    try:
        record = parse_canonical_record(proof.record)
    except ValueError as exc:
        raise ProofFileError(f"record: {exc}") from exc
    if checkpoint.origin != origin(record.tenant):
        raise ProofError(
            f"record of tenant {record.tenant!r} is not in the log {checkpoint.origin!r}"
        )
    verify_inclusion(
        proof.leaf_index,
        proof.tree_size,
        leaf_hash(proof.record),
        proof.inclusion_path,
        checkpoint.root_hash,
    )
    return VerifiedInclusion(
        origin=checkpoint.origin,
        tree_size=checkpoint.size,
        leaf_index=proof.leaf_index,
        record=record,
        signatures=signatures,
    )


def build_inclusion_proof(
    signed_checkpoint: str, leaves: Sequence[bytes], leaf_index: int, record: bytes
) -> InclusionProof:
    """The proof of ``record`` at ``leaf_index`` of the log whose leaf hashes are ``leaves`` and
    whose signed checkpoint is ``signed_checkpoint`` (checked to match, so a proof that would not
    verify is never written)."""
    checkpoint = Checkpoint.parse(signed_checkpoint[: signed_checkpoint.rfind("\n\n") + 1])
    if checkpoint.size != len(leaves):
        raise ValueError(f"checkpoint size {checkpoint.size} is not the log's {len(leaves)}")
    if checkpoint.root_hash != root(leaves):
        raise ValueError("checkpoint root is not the root of these leaves")
    if not 0 <= leaf_index < len(leaves) or leaf_hash(record) != leaves[leaf_index]:
        raise ValueError(f"record is not leaf {leaf_index} of the log")
    return InclusionProof(
        checkpoint=signed_checkpoint,
        tree_size=len(leaves),
        leaf_index=leaf_index,
        record=record,
        inclusion_path=tuple(inclusion_proof(leaf_index, leaves)),
    )


@dataclasses.dataclass(frozen=True)
class ConsistencyProof:
    """That the log at ``first_size`` is a prefix of the log at ``second_size``."""

    first_size: int
    second_size: int
    consistency_path: tuple[bytes, ...]

    def to_json(self) -> dict[str, Any]:
        """The proof's object."""
        return {
            "first_size": self.first_size,
            "second_size": self.second_size,
            "consistency_path": [_b64(h) for h in self.consistency_path],
        }

    def dumps(self) -> str:
        """The proof's text."""
        return json.dumps(self.to_json(), indent=2) + "\n"

    @classmethod
    def loads(cls, data: str | bytes | Mapping[str, Any]) -> ConsistencyProof:
        """The consistency proof in ``data``; raises ProofFileError."""
        value = _object(data, _CONSISTENCY_MEMBERS)
        return cls(
            first_size=_count(value["first_size"], "first_size"),
            second_size=_count(value["second_size"], "second_size"),
            consistency_path=_hashes(value["consistency_path"], "consistency_path"),
        )


def build_consistency_proof(first_size: int, leaves: Sequence[bytes]) -> ConsistencyProof:
    """The proof that the log's first ``first_size`` leaves are a prefix of all of ``leaves``."""
    return ConsistencyProof(first_size, len(leaves), tuple(consistency_proof(first_size, leaves)))


def verify_consistency_proof(
    proof: ConsistencyProof | str | bytes,
    first_checkpoint: str,
    second_checkpoint: str,
    verifiers: Iterable[Verifier],
) -> tuple[Checkpoint, Checkpoint]:
    """Check that two signed checkpoints of one log are consistent by ``proof``; returns them.
    Raises a ValueError subclass naming the failed check."""
    if not isinstance(proof, ConsistencyProof):
        proof = ConsistencyProof.loads(proof)
    keys = list(verifiers)
    first, _ = _checkpoint(first_checkpoint, keys)
    second, _ = _checkpoint(second_checkpoint, keys)
    if first.origin != second.origin:
        raise ProofError(f"checkpoints of two logs: {first.origin!r} and {second.origin!r}")
    if (first.size, second.size) != (proof.first_size, proof.second_size):
        raise ProofError(
            f"proof is for sizes {proof.first_size}->{proof.second_size}, "
            f"checkpoints are {first.size}->{second.size}"
        )
    verify_consistency(
        first.size, second.size, proof.consistency_path, first.root_hash, second.root_hash
    )
    return first, second
