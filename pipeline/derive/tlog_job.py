"""The appender of the tenant logs: new spans and records become leaves, then a signed checkpoint.

A background job (``start_background_jobs``; ``agentledger ledger append`` runs it on demand), never
the ingest path: a batch is acknowledged when it is stored, and its leaves follow within one job
interval. Each pass, per tenant:

1. read the log's head (leaves, next index, latest source time); a log whose indices are not
   0..n-1 each once is not appended to (an error is logged; ``ledger verify`` names the index);
2. take the stored rows that are not leaves yet (``tlog_store.candidates``: stored since the head's
   source time less ``late_s``, in the documented order), ``chunk`` at a time, and insert their
   leaf hashes at the next indices with the deduplication token ``tenant/first index/hash of the
   batch``, after checking that the head has not moved;
3. sign a C2SP checkpoint of the new size (origin ``agentledger/<tenant>``) with the deployment's
   key, store it, and hand it to the witness directory, which refuses it (logged) unless it extends
   the witnessed one.

Fencing, and what it guarantees on a ClickHouse server with several pipeline processes: ClickHouse
has no transactions, so the head check and the insert are two statements. Two appenders that read
the same head compute the same batch (the order is a function of the stored rows) and so the same
token: the second insert is dropped and both sign the same checkpoint. Two appenders whose batches
differ (one saw rows the other did not yet) both insert: the indices are then taken twice. Each
appender counts the leaves at its indices right after its insert and, finding more than it wrote,
logs the fork and signs nothing; every later pass refuses to append to a forked log, and ``verify``
reports the duplicate index. So a fork can be written but is never signed or extended, and is
always detected; run the job in one process (the embedded server, or one pipeline replica) to
avoid it.

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
from agentledger.pipeline.derive.tlog_witness import WitnessDir, WitnessRefused, note_checkpoint
from agentledger.pipeline.store import Store
from agentledger.pipeline.tlog import Checkpoint, CompactRange, Signer, leaf_hash, sign_note
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
        witness: WitnessDir | None = None,
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
            for tenant in tenants:
                appended[tenant] = self.append(store, tenant)
        return JobResult(
            self.name,
            rows_written=sum(appended.values()),
            seconds=time.monotonic() - started,
            info={"appended": appended},
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
            hashes = [leaf_hash(c.record) for c in batch]
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
        token = f"{tenant}/{first}/{digest}"
        count, following, _ = log_head(store, tenant)
        if (count, following) != (first, first):
            log.error(
                "ledger of %s moved to %d leaves under this appender: stopping", tenant, count
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
                pa.array([token] * n, pa.string()),
                pa.array([now] * n, pa.timestamp("us", tz="UTC")),
            ],
            schema=_LEAF_SCHEMA,
        )
        store.insert_arrow(LEAVES_TABLE, table, dedup_token=token)
        stored = store.query_scalar(
            f"SELECT count() FROM {LEAVES_TABLE} WHERE tenant = {{tenant:String}} "
            "AND leaf_index >= {lo:UInt64} AND leaf_index < {hi:UInt64}",
            {"tenant": tenant, "lo": first, "hi": first + n},
        )
        if int(stored) < n:  # a Distributed table's insert not visible yet: the next pass resumes
            log.warning(
                "ledger of %s: leaves %d.. not visible yet; signing next pass", tenant, first
            )
            return False
        if int(stored) > n:
            log.error(
                "ledger of %s forked: %d leaves at indices %d..%d, this appender wrote %d; "
                "signing nothing",
                tenant,
                stored,
                first,
                first + n - 1,
                n,
            )
            return False
        return True

    def _sign(self, store: Store, tenant: str, compact: CompactRange) -> None:
        """Sign, store and witness a checkpoint of ``compact`` unless one of its size exists."""
        stored = latest_checkpoint(store, tenant)
        if compact.size == 0 or (stored is not None and stored.tree_size >= compact.size):
            return
        root = compact.root()
        note = sign_note(Checkpoint(origin(tenant), compact.size, root).text(), [self.signer])
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
