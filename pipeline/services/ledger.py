"""The verifiable ledger's reads: the latest signed checkpoint, inclusion proofs of stored spans
and records, consistency proofs between two sizes of a tenant's log.

What a proof holds (``pipeline.tlog.proof``) is recomputed from the store at the time of asking:
the record from the stored span or record row (``tlog_store.recompute``), the path from the
stored leaf hashes, streamed subtree by subtree (memory of O(log n) hashes and one page; time
linear in the log). A proof is checked against the signed root before it is answered, so a stored
row changed after it was appended yields an error naming it, never a proof that fails later.
"""

from __future__ import annotations

import base64
import dataclasses
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Final

from agentledger.pipeline.derive.settings import JobSettings
from agentledger.pipeline.derive.tlog_store import (
    CHECKPOINTS_TABLE,
    LEAVES_TABLE,
    consistency_path,
    inclusion_path,
    latest_checkpoint,
    log_head,
    stored_record,
)
from agentledger.pipeline.derive.tlog_verify import LogReport, verify_log
from agentledger.pipeline.derive.tlog_witness import WITNESS_DIR_ENV, note_checkpoint
from agentledger.pipeline.derive.witness_http import WITNESS_URL_ENV, witnessed_note
from agentledger.pipeline.services.reads import ReadError, ReadNotFound, ReadRejected
from agentledger.pipeline.store import Store
from agentledger.pipeline.tlog import (
    DEFAULT_KEY_FILE,
    ConsistencyProof,
    InclusionProof,
    KeyFileError,
    ProofError,
    Verifier,
    leaf_hash,
    signing_key_path,
    verifiers,
    verify_inclusion,
)
from agentledger.schemas.ledger import LeafKind

__all__ = [
    "LedgerMismatch",
    "LedgerStatus",
    "SignedLeaves",
    "checkpoint",
    "consistency",
    "parse_record_ref",
    "prove",
    "signed_leaves",
    "status",
    "trusted_keys",
    "verify",
    "verify_here",
    "witness_dir",
    "witnessed",
]

_SPAN_ID: Final = re.compile(r"[0-9a-f]{16}")


class LedgerMismatch(ReadError):
    """The store disagrees with its own signed log (a stored row changed after it was appended,
    or leaves missing): no proof can be given; ``agentledger ledger verify`` says more."""


def parse_record_ref(ref: str) -> tuple[str, str]:
    """``KIND:ID`` (``span:<span id>``, ``intent:<intent id>``...) as (kind, id); raises
    ReadRejected naming the known kinds."""
    kind, sep, record_id = ref.partition(":")
    kinds = sorted(k.value for k in LeafKind)
    if not sep or not record_id or kind not in kinds:
        raise ReadRejected(f"record must be KIND:ID with KIND one of {', '.join(kinds)}")
    return kind, record_id


def checkpoint(store: Store, tenant: str) -> str:
    """The latest signed checkpoint (a C2SP signed note) of the tenant's log."""
    stored = latest_checkpoint(store, tenant)
    if stored is None:
        raise ReadNotFound(f"no signed checkpoint of tenant {tenant!r} yet")
    return stored.note


def prove(store: Store, tenant: str, kind: str, record_id: str) -> InclusionProof:
    """The inclusion proof of a span (``kind`` span, id = span id) or record in the latest
    signed checkpoint. Raises ReadNotFound when it is not (yet) in a signed checkpoint,
    LedgerMismatch when the stored row no longer hashes to its leaf."""
    if kind == LeafKind.SPAN.value and not _SPAN_ID.fullmatch(record_id):
        raise ReadRejected(f"span id {record_id!r} is not 16 lowercase hex digits")
    stored = latest_checkpoint(store, tenant)
    if stored is None:
        raise ReadNotFound(f"no signed checkpoint of tenant {tenant!r} yet")
    found = [
        (i, r) for i, r in stored_record(store, tenant, kind, record_id) if i < stored.tree_size
    ]
    if not found:
        raise ReadNotFound(
            f"{kind} {record_id} is not in the signed log of tenant {tenant!r} "
            f"(size {stored.tree_size}); a record stored since is appended within a job interval"
        )
    index, record = found[0]
    try:
        path = inclusion_path(store, tenant, index, stored.tree_size)
        verify_inclusion(index, stored.tree_size, leaf_hash(record), path, stored.root_hash)
    except ProofError as exc:
        raise LedgerMismatch(
            f"{kind} {record_id} (leaf {index}) does not verify against the signed checkpoint "
            f"of size {stored.tree_size}: {exc}; run agentledger ledger verify"
        ) from exc
    return InclusionProof(
        checkpoint=stored.note,
        tree_size=stored.tree_size,
        leaf_index=index,
        record=record,
        inclusion_path=tuple(path),
    )


def consistency(store: Store, tenant: str, first: int, second: int) -> ConsistencyProof:
    """The RFC 9162 consistency proof that the log at size ``first`` is a prefix of the log at
    ``second`` (both at most the log's size)."""
    leaves, _, _ = log_head(store, tenant)
    if not 0 <= first <= second <= leaves:
        raise ReadRejected(f"sizes must satisfy 0 <= first <= second <= {leaves} (the log's size)")
    try:
        path = consistency_path(store, tenant, first, second)
    except ProofError as exc:
        raise LedgerMismatch(f"the log of tenant {tenant!r} is broken: {exc}") from exc
    return ConsistencyProof(first, second, tuple(path))


def verify(
    store: Store, tenant: str, verifiers: Iterable[Verifier], witnessed: str | None = None
) -> LogReport:
    """The store's log against its signed checkpoints, the trusted keys and the witnessed
    checkpoint (``tlog_verify``: streamed, every problem kind named)."""
    return verify_log(store, tenant, verifiers, witnessed)


# -- what the console shows auditors --------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SignedLeaves:
    """Where records sit in the log: leaf index by id, and the size the latest checkpoint signs
    (a leaf at or past it is appended but not yet signed)."""

    checkpoint_size: int
    leaves: dict[str, int]
    interval_s: float
    """Seconds between appender passes: how long an unsigned record waits at most."""

    def signed(self, record_id: str) -> bool:
        index = self.leaves.get(record_id)
        return index is not None and index < self.checkpoint_size


def signed_leaves(store: Store, tenant: str, kind: str, ids: Sequence[str]) -> SignedLeaves:
    """The first leaf of each id of ``kind`` and the latest checkpoint's size: two small reads,
    cheap enough for every span panel (a proof, by contrast, walks the tree)."""
    stored = latest_checkpoint(store, tenant)
    rows = (
        store.query_rows(
            f"SELECT record_id, min(leaf_index) AS i FROM {LEAVES_TABLE} "
            "WHERE tenant = {tenant:String} AND kind = {kind:String} "
            "AND record_id IN {ids:Array(String)} GROUP BY record_id",
            {"tenant": tenant, "kind": kind, "ids": list(ids)},
        )
        if ids
        else []
    )
    return SignedLeaves(
        stored.tree_size if stored else 0,
        {str(r["record_id"]): int(r["i"]) for r in rows},
        JobSettings().interval_s,
    )


@dataclasses.dataclass(frozen=True)
class LedgerStatus:
    """The tenant's log as an auditor first asks about it: signed how far, by which key, when,
    and whether the witness outside the store saw the same."""

    tenant: str
    leaves: int
    interval_s: float
    origin: str = ""
    tree_size: int = 0
    root: str = ""
    """Base64 root hash, as in the checkpoint text."""
    key_name: str = ""
    key_id: str = ""
    signed_at: str = ""
    note: str = ""
    witness_dir: str = ""
    witness_url: str = ""
    witnessed_size: int | None = None
    witnessed_root: str = ""
    witness_problem: str = ""
    public_keys: tuple[str, ...] = ()
    """The verifier keys (current first) a proof of this log is checked with."""

    @property
    def witness_agrees(self) -> bool:
        """The witnessed checkpoint is the store's at the same size (a smaller one is only
        behind: the witness hears of each new checkpoint after it is signed)."""
        return self.witnessed_size is not None and not self.witness_problem


def witness_dir(store: Store) -> str:
    """Where the appender sends checkpoints: ``AGENTLEDGER_WITNESS_DIR``, else beside an embedded
    store's data (what ``compose.build_ledger_log`` chooses); empty when there is none."""
    chosen = os.environ.get(WITNESS_DIR_ENV, "")
    if not chosen and store.local_dir is not None:
        chosen = os.path.join(store.local_dir, "witness", store.database)
    return chosen


def witnessed(store: Store, tenant: str) -> str | None:
    """The witnessed checkpoint the store is held to: the larger of the witness directory's and
    the ``AGENTLEDGER_WITNESS_URL`` witness's (``witness_http.witnessed_note``); raises
    ValueError when that witness cannot be asked."""
    url = os.environ.get(WITNESS_URL_ENV, "").strip()
    return witnessed_note(tenant, witness_dir(store) or None, url or None)


def status(store: Store, tenant: str) -> LedgerStatus:
    """The latest signed checkpoint, the log's size and the witness's view of it."""
    leaves, _, _ = log_head(store, tenant)
    base = LedgerStatus(
        tenant,
        leaves,
        JobSettings().interval_s,
        witness_dir=witness_dir(store),
        witness_url=os.environ.get(WITNESS_URL_ENV, "").strip(),
        public_keys=tuple(v.vkey for v in trusted_keys(store)),
    )
    stored = latest_checkpoint(store, tenant)
    if stored is None:
        return base
    signed = store.query_rows(
        f"SELECT max(signed_at) AS at FROM {CHECKPOINTS_TABLE} "
        "WHERE tenant = {tenant:String} AND tree_size = {size:UInt64}",
        {"tenant": tenant, "size": stored.tree_size},
    )
    found = dataclasses.replace(
        base,
        origin=note_checkpoint(stored.note).origin,
        tree_size=stored.tree_size,
        root=base64.b64encode(stored.root_hash).decode("ascii"),
        key_name=stored.key_name,
        key_id=stored.key_id,
        signed_at=str(signed[0]["at"])[:19] if signed else "",
        note=stored.note,
    )
    try:
        seen_note = witnessed(store, tenant)
    except ValueError as exc:
        return dataclasses.replace(found, witness_problem=f"the witness could not be asked: {exc}")
    if seen_note is None:
        return found
    seen = note_checkpoint(seen_note)
    problem = ""
    if seen.size > stored.tree_size:
        problem = (
            f"the witness saw size {seen.size}, more than the store's signed {stored.tree_size}"
        )
    elif seen.size == stored.tree_size and seen.root_hash != stored.root_hash:
        problem = f"the witness saw another root at size {seen.size}"
    return dataclasses.replace(
        found,
        witnessed_size=seen.size,
        witnessed_root=base64.b64encode(seen.root_hash).decode("ascii"),
        witness_problem=problem,
    )


def trusted_keys(store: Store) -> list[Verifier]:
    """The deployment's own key history (current and retired public keys), as ``agentledger
    ledger verify`` trusts by default; empty when this process has no key file to read."""
    path = signing_key_path()
    if path is None and store.local_dir is not None:
        path = Path(store.local_dir) / DEFAULT_KEY_FILE
    if path is None or not path.is_file():
        return []
    try:
        return verifiers(path)
    except KeyFileError:
        return []


def verify_here(store: Store, tenant: str) -> LogReport:
    """``verify`` with this deployment's keys and witness, as the CLI's defaults choose them;
    raises ValueError when the witness cannot be asked."""
    return verify(store, tenant, trusted_keys(store), witnessed(store, tenant))
