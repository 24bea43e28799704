"""The verifiable ledger's reads: the latest signed checkpoint, inclusion proofs of stored spans
and records, consistency proofs between two sizes of a tenant's log.

What a proof holds (``pipeline.tlog.proof``) is recomputed from the store at the time of asking:
the record from the stored span or record row (``tlog_store.recompute``), the path from the
stored leaf hashes, streamed subtree by subtree (memory of O(log n) hashes and one page; time
linear in the log). A proof is checked against the signed root before it is answered, so a stored
row changed after it was appended yields an error naming it, never a proof that fails later.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final

from agentledger.pipeline.derive.tlog_store import (
    consistency_path,
    inclusion_path,
    latest_checkpoint,
    log_head,
    stored_record,
)
from agentledger.pipeline.derive.tlog_verify import LogReport, verify_log
from agentledger.pipeline.services.reads import ReadError, ReadNotFound, ReadRejected
from agentledger.pipeline.store import Store
from agentledger.pipeline.tlog import (
    ConsistencyProof,
    InclusionProof,
    ProofError,
    Verifier,
    leaf_hash,
    verify_inclusion,
)
from agentledger.schemas.ledger import LeafKind

__all__ = [
    "LedgerMismatch",
    "checkpoint",
    "consistency",
    "parse_record_ref",
    "prove",
    "verify",
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
