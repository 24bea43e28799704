"""Writes normalized batches into a store, contents first, idempotently.

Contents go in before the spans that reference them, so a visible span never
points at a missing content record. Both inserts carry the caller's
deduplication token: repeating a write after a failure (at-least-once) stores
nothing twice. Content hashes already stored by this process are skipped
(a bounded memory, see ``StoreWriter``), which is what makes a repeated system
prompt cost nothing.

History is insert-only: a span whose (tenant, trace, span) ids are already stored is never
inserted again. ``span_history.sort_spans`` sorts each batch first; an unchanged re-send is
dropped, a changed one is kept in ``span_conflicts`` and reported back in the ``WriteResult``
(the embedded sink answers it as OTLP partial success). The lookup and the spans insert run
under one lock, so two writes through one writer cannot both find a key free.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc

from agentledger.pipeline.normalize import NormalizedBatch
from agentledger.pipeline.store import Store
from agentledger.pipeline.store.span_history import (
    CONFLICTS_TABLE,
    KEYS_TABLE,
    KnownTraces,
    sort_spans,
    span_keys,
    stored_hashes,
)
from agentledger.schemas import CONTENTS_TABLE, SPANS_TABLE

if TYPE_CHECKING:
    from agentledger.pipeline.derive.ledger import Ledger

__all__ = ["StoreWriter", "WriteResult"]

_SEP = "\x1f"  # between tenant and hash in a remembered key (neither contains it)


@dataclass
class WriteResult:
    """What a write stored: spans inserted, unchanged re-sends dropped, changed re-sends kept as
    conflicts (their rows, columns of ``spans``, carrying their source positions)."""

    inserted: int = 0
    unchanged: int = 0
    conflicts: pa.Table | None = field(default=None, repr=False)
    conflict_ids: list[str] = field(default_factory=list)


class StoreWriter:
    """Inserts ``NormalizedBatch``es and checkpoints them in the ledger; thread-safe.

    Order: contents, spans, conflicts, then the ledger checkpoint, all under the caller's
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
        self,
        store: Store,
        seen_capacity: int = 200_000,
        ledger: Ledger | None = None,
        *,
        sole_writer: bool = False,
    ) -> None:
        """``sole_writer``: no other writer adds spans to this store (the embedded server, which
        holds the data directory's lock), so the traces it wrote can be remembered
        (``span_history.KnownTraces``) and a batch of new traces skips the key lookup."""
        from agentledger.pipeline.derive.ledger import Ledger

        self.store = store
        self.ledger = ledger if ledger is not None else Ledger(store)
        self._recent: set[str] = set()
        self._old: set[str] = set()
        self._generation = max(1, seen_capacity // 2)
        self._lock = threading.Lock()
        self._history = threading.Lock()  # the span-id lookup and the spans insert, as one step
        self._known = KnownTraces() if sole_writer else None

    def seen(self, tenant: str, content_hash: str) -> bool:
        """Whether this writer stored (and still remembers) the content record."""
        key = f"{tenant}{_SEP}{content_hash}"
        return key in self._recent or key in self._old

    def write(self, batch: NormalizedBatch, dedup_token: str) -> WriteResult:
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
        with self._history:
            spans = sort_spans(self.store, batch.spans, self._known)
            if spans.insert.num_rows:  # keys first: a crash between leaves a key, never a span
                self.store.insert_arrow(
                    KEYS_TABLE, span_keys(spans.insert), dedup_token=f"{dedup_token}/keys"
                )
            self.store.insert_arrow(SPANS_TABLE, spans.insert, dedup_token=f"{dedup_token}/spans")
            if self._known is not None:
                self._known.add(spans.insert)
        result = WriteResult(spans.insert.num_rows, spans.unchanged)
        if spans.conflicts.num_rows:
            conflicts = spans.conflicts.append_column(
                "stored_hash", pa.array(stored_hashes(self.store, spans.conflicts), pa.string())
            ).append_column(
                "detected_at",
                pa.array(
                    [time.time_ns() // 1_000_000] * spans.conflicts.num_rows,
                    pa.timestamp("ms", tz="UTC"),
                ),
            )
            self.store.insert_arrow(
                CONFLICTS_TABLE, conflicts, dedup_token=f"{dedup_token}/conflicts"
            )
            result.conflicts, result.conflict_ids = spans.conflicts, spans.conflict_ids
        # last: a checkpoint may not be written twice (a retry would move the ledger's head)
        self.ledger.append(spans.checkpoint, dedup_token)
        if fresh:
            with self._lock:
                self._recent.update(fresh)
                if len(self._recent) >= self._generation:
                    self._old, self._recent = self._recent, set()
        return result
