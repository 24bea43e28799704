"""Writes normalized batches into a store, contents first, idempotently.

Contents go in before the spans that reference them, so a visible span never
points at a missing content record. Both inserts carry the caller's
deduplication token: repeating a write after a failure (at-least-once) stores
nothing twice. Content hashes already stored by this process are skipped
(a bounded memory, see ``StoreWriter``), which is what makes a repeated system
prompt cost nothing.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc

from agentledger.pipeline.normalize import NormalizedBatch
from agentledger.pipeline.store import Store
from agentledger.schemas import CONTENTS_TABLE, SPANS_TABLE

if TYPE_CHECKING:
    from agentledger.pipeline.derive.ledger import Ledger

__all__ = ["StoreWriter"]

_SEP = "\x1f"  # between tenant and hash in a remembered key (neither contains it)


class StoreWriter:
    """Inserts ``NormalizedBatch``es and checkpoints them in the ledger; thread-safe.

    Order: contents, spans, then the ledger checkpoint, all under the caller's
    token, so a retried write repeats nothing and a checkpoint only ever covers
    rows that are stored.

    Content records already stored by this writer are remembered, up to
    ``seen_capacity`` of them, in two generations of plain string sets: when
    the recent one is full it becomes the old one and the oldest is dropped,
    and a record found in the old one moves back to the recent one (what stays
    in use stays remembered). Strings, not tuples: the garbage collector does
    not track them, so a large memory of hashes costs its collections nothing.
    """

    def __init__(
        self, store: Store, seen_capacity: int = 200_000, ledger: Ledger | None = None
    ) -> None:
        from agentledger.pipeline.derive.ledger import Ledger

        self.store = store
        self.ledger = ledger if ledger is not None else Ledger(store)
        self._recent: set[str] = set()
        self._old: set[str] = set()
        self._generation = max(1, seen_capacity // 2)
        self._lock = threading.Lock()

    def seen(self, tenant: str, content_hash: str) -> bool:
        """Whether this writer stored (and still remembers) the content record."""
        key = f"{tenant}{_SEP}{content_hash}"
        return key in self._recent or key in self._old

    def write(self, batch: NormalizedBatch, dedup_token: str) -> None:
        contents = batch.contents
        fresh: list[str] = []
        if contents.num_rows:
            keys = pc.binary_join_element_wise(
                contents.column("tenant"), contents.column("hash"), _SEP
            ).to_pylist()
            with self._lock:
                recent, old = self._recent, self._old
                keep = [k not in recent and k not in old for k in keys]
                recent.update(k for k, new in zip(keys, keep) if not new and k in old)
            if all(keep):
                fresh = keys
            else:
                contents = contents.filter(pa.array(keep))
                fresh = [k for k, new in zip(keys, keep) if new]
            if fresh:
                self.store.insert_arrow(
                    CONTENTS_TABLE, contents, dedup_token=f"{dedup_token}/contents"
                )
        self.store.insert_arrow(SPANS_TABLE, batch.spans, dedup_token=f"{dedup_token}/spans")
        self.ledger.append(batch.spans, dedup_token)
        if fresh:
            with self._lock:
                self._recent.update(fresh)
                if len(self._recent) >= self._generation:
                    self._old, self._recent = self._recent, set()
