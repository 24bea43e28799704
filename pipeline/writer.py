"""Writes normalized batches into a store, contents first, idempotently.

Contents go in before the spans that reference them, so a visible span never
points at a missing content record. Both inserts carry the caller's
deduplication token: repeating a write after a failure (at-least-once) stores
nothing twice. Content hashes already stored by this process are skipped
(bounded LRU), which is what makes a repeated system prompt cost nothing.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import TYPE_CHECKING

import pyarrow as pa

from agentledger.pipeline.normalize import NormalizedBatch
from agentledger.pipeline.stores import Store
from agentledger.schemas import CONTENTS_TABLE, SPANS_TABLE

if TYPE_CHECKING:
    from agentledger.pipeline.ledger import Ledger

__all__ = ["StoreWriter"]


class StoreWriter:
    """Inserts ``NormalizedBatch``es and checkpoints them in the ledger; thread-safe.

    Order: contents, spans, then the ledger checkpoint, all under the caller's
    token, so a retried write repeats nothing and a checkpoint only ever covers
    rows that are stored.
    """

    def __init__(self, store: Store, seen_capacity: int = 200_000, ledger: "Ledger | None" = None) -> None:
        from agentledger.pipeline.ledger import Ledger

        self.store = store
        self.ledger = ledger if ledger is not None else Ledger(store)
        self._seen: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._capacity = seen_capacity
        self._lock = threading.Lock()

    def write(self, batch: NormalizedBatch, dedup_token: str) -> None:
        contents = batch.contents
        if contents.num_rows:
            tenants = contents.column("tenant").to_pylist()
            hashes = contents.column("hash").to_pylist()
            with self._lock:
                keep = [(t, h) not in self._seen for t, h in zip(tenants, hashes)]
            if not all(keep):
                contents = contents.filter(pa.array(keep))
            self.store.insert_arrow(CONTENTS_TABLE, contents, dedup_token=f"{dedup_token}/contents")
        self.store.insert_arrow(SPANS_TABLE, batch.spans, dedup_token=f"{dedup_token}/spans")
        self.ledger.append(batch.spans, dedup_token)
        if contents.num_rows:
            with self._lock:
                for key in zip(contents.column("tenant").to_pylist(), contents.column("hash").to_pylist()):
                    self._seen[key] = None
                    self._seen.move_to_end(key)
                while len(self._seen) > self._capacity:
                    self._seen.popitem(last=False)

