"""The appender of the tenant logs: new spans and records become leaves, then a signed checkpoint.

A background job (``start_background_jobs``; ``agentledger ledger append`` runs it on demand), never
the ingest path: a batch is acknowledged when it is stored, and its leaves follow within one job
interval. Each pass, per tenant:

1. read the log's head (leaves, next index, latest source time); a log whose indices are not
   0..n-1 each once is not appended to (an error is logged; ``ledger verify`` names the index);
2. take the stored rows that are not leaves yet (``tlog_store.candidates``: stored since the head's
   source time less ``late_s``, in the documented order), ``chunk`` at a time, and insert their
   leaf hashes at the next indices, claimed with the deduplication token ``tenant/first index``
   (fencing, below) after checking that the head has not moved;
3. sign a C2SP checkpoint of the new size (origin ``agentledger/<tenant>``) with the deployment's
   key, store it, and hand it to the witness directory, which refuses it (logged) unless it extends
   the witnessed one.

Fencing, with several pipeline processes (each runs this job): ClickHouse has no transactions, so
the head check and the insert are two statements, and an appender may insert after another moved
the head (it read the head, lost the race, or its process was paused). Index ranges are claimed
store-side, first writer wins: the deduplication token of an insert is ``tenant/first index``
alone, so of two inserts starting at the same index the engine keeps the first whatever its
leaves, and drops the other. Each appender then reads back the leaf hashes at its indices and
signs only when they are its own (a re-sent identical batch is its own, so both sign the same
checkpoint); otherwise it lost, forgets its cached range and re-reads the head next pass. The
log's indices start at the end of the previous insert, so the only way to claim a taken index
is to start at a taken first index: a fork cannot be written this way, nor a checkpoint signed
over leaves the signer did not check. Should one still be found (a row inserted by hand, an
insert older than the table's deduplication window of 10,000 inserts), the appender signs nothing
and refuses to extend the log, and ``verify`` names the index.

The root is kept incrementally (``CompactRange``, O(log n) hashes): each checkpoint row stores its
compact range, so a restarted appender resumes from the latest checkpoint (checked against the
signed root) instead of reading every leaf.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from datetime import datetime
from typing import Final

import pyarrow as pa

from agentledger.pipeline.derive.base import Job, JobResult
from agentledger.pipeline.derive.tlog_store import (
    CHECKPOINTS_TABLE,
    LEAVES_TABLE,
    Candidate,
    LogGap,
    candidates,
    checkpoint_ranges,
    consistency_path,
    latest_checkpoint,
    leaf_hashes,
    log_head,
)
from agentledger.pipeline.derive.tlog_witness import Witness, WitnessRefused, note_checkpoint
from agentledger.pipeline.store import Store
from agentledger.pipeline.tlog import Checkpoint, CompactRange, Signer, sign_note
from agentledger.schemas.ledger import origin

__all__ = ["LATE_S", "TreeLogJob"]

log = logging.getLogger(__name__)

LATE_S: Final = 3600.0
"""How late (seconds after rows with a later source time were appended) a stored row may arrive
and still be appended: the candidates window reaches this far behind the log's head. A row
arriving later stays out of the log and ``verify`` reports it."""
CHUNK: Final = 20_000
"""Leaves appended per insert (and canonical records held in memory at once)."""

_LEAF_SCHEMA: Final = pa.schema(
    [
        ("tenant", pa.string()),
        ("leaf_index", pa.uint64()),
        ("kind", pa.string()),
        ("record_id", pa.string()),
        ("record_key", pa.string()),
        ("source_time", pa.timestamp("us", tz="UTC")),
        ("leaf_hash", pa.string()),
        ("batch", pa.string()),
        ("appended_at", pa.timestamp("us", tz="UTC")),
    ]
)


class TreeLogJob(Job):
    """Appends each tenant's new spans and records to its log and signs a checkpoint."""

    name = "ledger-log"

    def __init__(
        self,
        signer: Signer,
        witness: Witness | None = None,
        *,
        chunk: int = CHUNK,
        late_s: float = LATE_S,
    ) -> None:
        self.signer = signer
        self.witness = witness
        self.chunk = chunk
        self.late_us = int(late_s * 1_000_000)
        self._compact: dict[str, CompactRange] = {}
        self._lock = threading.Lock()  # the scheduler's pass and an on-demand run, one at a time

    def run(self, store: Store, now: datetime) -> JobResult:
        started = time.monotonic()
        tenants = [
            str(r["tenant"])
            for r in store.query_rows(
                "SELECT DISTINCT tenant FROM (SELECT DISTINCT tenant FROM spans "
                "UNION ALL SELECT DISTINCT tenant FROM records) ORDER BY tenant"
            )
        ]
        appended: dict[str, int] = {}
        with self._lock:
            if self.witness is not None:  # what a witness out of reach did not take last pass
                self.witness.retry()
            for tenant in tenants:
                appended[tenant] = self.append(store, tenant)
        witnessed = self.witness.state() if self.witness is not None else {}
        return JobResult(
            self.name,
            rows_written=sum(appended.values()),
            seconds=time.monotonic() - started,
            info={"appended": appended, "witness": witnessed},
        )

    def _range(self, store: Store, tenant: str, size: int) -> CompactRange:
        """The compact range of the first ``size`` leaves: cached, else resumed from the latest
        checkpoint (when its root checks out) and extended, else streamed from leaf 0."""
        cached = self._compact.get(tenant)
        if cached is not None and cached.size == size:
            return cached
        compact = CompactRange()
        stored = latest_checkpoint(store, tenant)
        if stored is not None and stored.tree_size <= size:
            try:
                resumed = CompactRange.resume(stored.tree_size, stored.compact_range)
            except ValueError:
                resumed = None
            if resumed is not None and resumed.root() == stored.root_hash:
                compact = resumed
        compact.extend(leaf_hashes(store, tenant, compact.size, size))
        self._compact[tenant] = compact
        return compact

    def append(self, store: Store, tenant: str) -> int:
        """Append the tenant's new rows and sign the new size; returns the leaves appended."""
        count, following, newest = log_head(store, tenant)
        if count != following:
            log.error(
                "ledger of %s: %d leaves but indices up to %d (a gap or a fork): not appending; "
                "run agentledger ledger verify",
                tenant,
                count,
                following - 1,
            )
            return 0
        try:
            compact = self._range(store, tenant, count)
        except LogGap as exc:  # as many rows as indices, yet one taken twice and one missing
            log.error("ledger of %s: %s: not appending; run agentledger ledger verify", tenant, exc)
            return 0
        added = 0
        while True:
            low = max(0, newest - self.late_us)
            batch = candidates(
                store, tenant, low, self.chunk, lambda e: log.error("ledger of %s: %s", tenant, e)
            )
            if not batch:
                break
            hashes = [c.leaf for c in batch]
            if not self._insert(store, tenant, compact.size, batch, hashes):
                self._compact.pop(tenant, None)
                return added
            compact.extend(hashes)
            added += len(batch)
            newest = max(newest, max(c.t_us for c in batch))
            if len(batch) < self.chunk:
                break
        self._sign(store, tenant, compact)
        return added

    def _insert(
        self, store: Store, tenant: str, first: int, batch: list[Candidate], hashes: list[bytes]
    ) -> bool:
        """Insert one batch at ``first``, fenced (module docstring); False when it must stop."""
        digest = hashlib.sha256(b"".join(hashes)).hexdigest()[:32]
        claim = f"{tenant}/{first}"  # the dedup token: first writer at this index wins
        count, following, _ = log_head(store, tenant)
        if (count, following) != (first, first):
            log.info(
                "ledger of %s moved to %d leaves under this appender: re-reading", tenant, count
            )
            return False
        now = time.time_ns() // 1000
        n = len(batch)
        table = pa.Table.from_arrays(
            [
                pa.array([tenant] * n, pa.string()),
                pa.array(range(first, first + n), pa.uint64()),
                pa.array([c.kind for c in batch], pa.string()),
                pa.array([c.record_id for c in batch], pa.string()),
                pa.array([c.record_key for c in batch], pa.string()),
                pa.array([c.t_us for c in batch], pa.timestamp("us", tz="UTC")),
                pa.array([h.hex() for h in hashes], pa.string()),
                pa.array([f"{claim}/{digest}"] * n, pa.string()),
                pa.array([now] * n, pa.timestamp("us", tz="UTC")),
            ],
            schema=_LEAF_SCHEMA,
        )
        store.insert_arrow(LEAVES_TABLE, table, dedup_token=claim)
        return self._claimed(store, tenant, first, hashes)

    def _claimed(self, store: Store, tenant: str, first: int, hashes: list[bytes]) -> bool:
        """True when the leaves at ``first``.. are exactly ``hashes`` (this appender's insert, or
        an identical one, won the indices)."""
        n = len(hashes)
        stored = store.query_arrow(
            f"SELECT leaf_hash FROM {LEAVES_TABLE} WHERE tenant = {{tenant:String}} "
            "AND leaf_index >= {lo:UInt64} AND leaf_index < {hi:UInt64} ORDER BY leaf_index",
            {"tenant": tenant, "lo": first, "hi": first + n},
        ).column("leaf_hash")
        if len(stored) > n:
            log.error(
                "ledger of %s forked: %d leaves at indices %d..%d, this appender wrote %d; "
                "signing nothing",
                tenant,
                len(stored),
                first,
                first + n - 1,
                n,
            )
            return False
        mine = [h.hex() for h in hashes]
        if stored.to_pylist() == mine:
            return True
        if stored.to_pylist() == mine[: len(stored)]:
            # a Distributed insert not visible yet, or a shorter batch (a prefix of this one)
            # won: the next pass resumes from the head
            log.info("ledger of %s: leaves %d.. not all visible yet", tenant, first)
            return False
        log.info(
            "ledger of %s: another appender claimed leaves %d.. first; re-reading", tenant, first
        )
        return False

    def _sign(self, store: Store, tenant: str, compact: CompactRange) -> None:
        """Sign, store and witness a checkpoint of ``compact`` unless one of its size exists."""
        stored = latest_checkpoint(store, tenant)
        if compact.size == 0 or (stored is not None and stored.tree_size >= compact.size):
            return
        root = compact.root()
        note = sign_note(Checkpoint(origin(tenant), compact.size, root).text(), [self.signer])
        log.info("ledger of %s: signed a checkpoint at size %d", tenant, compact.size)
        key_id = f"{self.signer.key_id:08x}"
        row = pa.Table.from_pylist(
            [
                {
                    "tenant": tenant,
                    "tree_size": compact.size,
                    "root_hash": root.hex(),
                    "compact_range": [h.hex() for h in compact.hashes],
                    "note": note,
                    "key_name": self.signer.name,
                    "key_id": key_id,
                    "signed_at": time.time_ns() // 1000,
                }
            ],
            schema=pa.schema(
                [
                    ("tenant", pa.string()),
                    ("tree_size", pa.uint64()),
                    ("root_hash", pa.string()),
                    ("compact_range", pa.list_(pa.string())),
                    ("note", pa.string()),
                    ("key_name", pa.string()),
                    ("key_id", pa.string()),
                    ("signed_at", pa.timestamp("us", tz="UTC")),
                ]
            ),
        )
        store.insert_arrow(
            CHECKPOINTS_TABLE, row, dedup_token=f"{tenant}/{compact.size}/{root.hex()}/{key_id}"
        )
        if self.witness is not None:
            witness = self.witness

            def proof(first: int, second: int) -> list[bytes]:
                # the witnessed size's compact range, when a stored checkpoint of that size has
                # the witnessed root: only the leaves appended since are read
                seen = witness.latest(tenant)
                witnessed = note_checkpoint(seen).root_hash if seen else b""
                ranges = [
                    r
                    for root, r in checkpoint_ranges(store, tenant, first)
                    if root == witnessed and _resumes(first, r, root)
                ]
                return consistency_path(store, tenant, first, second, ranges[0] if ranges else ())

            try:
                witness.submit(tenant, note, proof)
            except WitnessRefused:
                pass  # logged by the witness; verify reports the disagreement


def _resumes(size: int, hashes: tuple[bytes, ...], root: bytes) -> bool:
    try:
        return CompactRange.resume(size, hashes).root() == root
    except ValueError:
        return False
