"""Insert-only span history: sort a batch into new spans, unchanged re-sends and conflicts.

A span is identified by (tenant, trace_id, span_id). Nothing a client sends may replace a stored
span (ARCHITECTURE.md, decision 9), and ``spans`` is a ReplacingMergeTree whose merges (and
``FINAL``) would keep the *last* row inserted for a key. So the store writer never inserts a key
that is already stored; before each insert it asks :func:`sort_spans` what the batch holds:

* **new** spans (key not stored, first of its key in the batch): inserted;
* **unchanged re-sends** (same content as the stored or earlier in-batch row): dropped, so even
  ``count()`` without ``FINAL`` sees the span once. One exception: a row at the *same delivery
  position* as the stored one is the writer retrying its own write (a Kafka batch re-read after a
  crash, a retry after the ledger insert failed); it is not inserted again but still handed to
  the ledger, so a crash between the spans insert and the checkpoint cannot leave rows that no
  checkpoint covers;
* **conflicts** (same key, different content): go to ``span_conflicts`` in full; the stored (or
  earlier in-batch) version stays what every read returns.

"Same content" is the ledger's notion: every column but the delivery bookkeeping (ingest time and
source position). It is compared in Python on the rows themselves, which runs on any store (a
server cannot read an in-memory batch); only rows whose key is already taken are compared, so
the common case costs one key lookup per batch.

The lookup is one query over the batch's tenants and trace ids on ``span_keys`` (migration 0012),
sorted by exactly that, so it is a primary-key lookup whatever the size of ``spans`` (on
``spans`` itself, sorted by tenant, date, trace, span, a changed re-send may carry another date, so
only the bloom filter index could narrow it: 14 ms per 500-span batch against 950 k rows and
growing). The writer inserts a batch's new keys before its spans; a key whose span a crash kept
out is matched to no stored row and counts as free. The caller
serializes the lookup and the insert (``StoreWriter`` holds a lock), so two writes of one writer
cannot both find a key free. Different writers own different traces: Kafka records are keyed by
trace id, so one partition (one consumer) holds a whole trace, and an embedded store belongs to
one process with one writer thread.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from agentledger.pipeline.store.base import Store
from agentledger.pipeline.store.pair_filter import PairFilter
from agentledger.schemas.spans import SENT_BY

__all__ = [
    "SortedSpans",
    "sort_spans",
    "span_keys",
    "KnownTraces",
    "backfill_span_keys",
    "DELIVERY_COLUMNS",
    "CONFLICTS_TABLE",
    "KEYS_TABLE",
]

CONFLICTS_TABLE = "span_conflicts"
KEYS_TABLE = "span_keys"
"""The keys of the stored spans (migration 0012), inserted before the spans they name."""
DELIVERY_COLUMNS = ("ingest_time", "source_topic", "source_partition", "source_offset", SENT_BY)
"""Delivery bookkeeping (and the key that sent it): not content, so a re-delivery with other
values is still unchanged."""
_POSITION = ("source_topic", "source_partition", "source_offset")
_KEY = ("tenant", "trace_id", "span_id")
_SEP = "\x1f"  # between the parts of a key (none contains it)


@dataclass
class SortedSpans:
    """What to do with each row of a batch of spans."""

    insert: pa.Table
    """New spans, to insert into ``spans``."""
    checkpoint: pa.Table
    """Rows the ledger checkpoints: ``insert`` plus re-deliveries at their stored position."""
    conflicts: pa.Table
    """Changed re-sends, to keep in ``span_conflicts`` (columns of ``spans``)."""
    unchanged: int
    """Unchanged re-sends dropped (idempotent)."""

    @property
    def conflict_ids(self) -> list[str]:
        """``trace_id/span_id`` of each conflict, in batch order."""
        return [
            f"{t}/{s}"
            for t, s in zip(
                self.conflicts.column("trace_id").to_pylist(),
                self.conflicts.column("span_id").to_pylist(),
            )
        ]


class KnownTraces:
    """The (tenant, trace) pairs a store may hold, for a writer that is the store's only one (the
    embedded server): a batch whose traces are all new needs no key lookup at all.

    A ``PairFilter`` loaded from ``span_keys`` on first use; every trace written since is added. A
    writer that shares its store (Kafka consumers, whose partitions move) must not use it: another
    writer's traces would look new.
    """

    def __init__(self) -> None:
        self._filter: PairFilter | None = None

    def new_only(self, store: Store, spans: pa.Table) -> bool:
        """Whether every trace of ``spans`` is certainly not in the store."""
        if self._filter is None:
            self._filter = PairFilter.load(
                store, f"SELECT DISTINCT tenant, trace_id FROM {KEYS_TABLE}"
            )
        return not any(self._filter.may_hold(t, r) for t, r in _traces(spans))

    def add(self, spans: pa.Table) -> None:
        """Note the traces of ``spans`` as written."""
        if self._filter is not None:
            self._filter.add(_traces(spans))


def _traces(spans: pa.Table) -> list[tuple[str, str]]:
    """The distinct (tenant, trace id) pairs of ``spans``."""
    joined = pc.binary_join_element_wise(spans.column("tenant"), spans.column("trace_id"), _SEP)
    return [tuple(p.split(_SEP, 1)) for p in pc.unique(joined).to_pylist()]


def sort_spans(store: Store, spans: pa.Table, known: KnownTraces | None = None) -> SortedSpans:
    """Sort ``spans`` against what ``store`` holds and against each other (first wins).
    ``known``: the traces of a store this writer alone writes (no lookup for new traces)."""
    if spans.num_rows == 0:
        return SortedSpans(spans, spans, spans.slice(0, 0), 0)
    keys = _keys(spans)
    if known is not None and known.new_only(store, spans):
        stored: set[str] = set()
    else:
        stored = _stored(store, spans, keys)
    repeated = pc.count_distinct(keys).as_py() < spans.num_rows
    if not stored and not repeated:  # the common case: every span is new
        return SortedSpans(spans, spans, spans.slice(0, 0), 0)
    content = [n for n in spans.column_names if n not in DELIVERY_COLUMNS]
    stored_rows = _stored_rows(store, stored, spans.schema) if stored else {}
    key_list = keys.to_pylist()
    candidates = {i for i, k in enumerate(key_list) if k in stored} if stored else set()
    if repeated:
        counts = pc.value_counts(keys)
        twice = {
            v.as_py()
            for v, n in zip(counts.field("values"), counts.field("counts"))
            if n.as_py() > 1
        }
        candidates |= {i for i, k in enumerate(key_list) if k in twice}
    rows = spans.take(pa.array(sorted(candidates), pa.int64())).to_pylist()
    first: dict[str, dict[str, Any]] = dict(stored_rows)
    insert = [True] * spans.num_rows
    checkpoint = [True] * spans.num_rows
    conflict: list[int] = []
    unchanged = 0
    for i, row in zip(sorted(candidates), rows):
        key = key_list[i]
        earlier = first.get(key)
        if earlier is None:  # first of its key in the batch, not stored: new
            first[key] = row
            continue
        insert[i] = False
        if not _same_content(row, earlier, content):
            conflict.append(i)
            checkpoint[i] = False
        elif all(row[c] == earlier[c] for c in _POSITION) and key in stored_rows:
            pass  # the writer's own retry: stored already, checkpointed again
        else:
            unchanged += 1
            checkpoint[i] = False
    return SortedSpans(
        spans.filter(pa.array(insert)),
        spans.filter(pa.array(checkpoint)),
        spans.take(pa.array(conflict, pa.int64())),
        unchanged,
    )


def backfill_span_keys(store: Store) -> None:
    """Migration 0012's data step: the keys of the spans stored before it (safe to run twice:
    the table keeps one row per key)."""
    store.command(
        f"INSERT INTO {KEYS_TABLE} SELECT DISTINCT tenant, trace_id, span_id FROM spans "
        "SETTINGS async_insert = 0"
    )


def span_keys(spans: pa.Table) -> pa.Table:
    """The ``span_keys`` rows of ``spans``."""
    return spans.select(list(_KEY))


def stored_hashes(store: Store, conflicts: pa.Table) -> list[str]:
    """Row hash of the stored span each conflict collides with (called after the insert, so a
    span first seen earlier in the same batch is found too)."""
    from agentledger.pipeline.derive.ledger import ROW_HASH_SQL  # the ledger imports the store

    found = {
        _SEP.join((r["tenant"], r["trace_id"], r["span_id"])): r["h"]
        for r in _by_keys(store, conflicts, f"{ROW_HASH_SQL} AS h").to_pylist()
    }
    return [found.get(k, "") for k in _keys(conflicts).to_pylist()]


def _keys(spans: pa.Table) -> pa.Array:
    return pc.binary_join_element_wise(*(spans.column(c) for c in _KEY), _SEP).combine_chunks()


def _stored(store: Store, spans: pa.Table, keys: pa.Array) -> set[str]:
    """The batch's keys that are taken, from ``span_keys`` (migration 0012: a primary-key lookup by
    tenant and trace id, whatever the size of ``spans``); the ids go as parameters and the exact
    keys are matched on the answer."""
    found = store.query_arrow(
        f"SELECT tenant, trace_id, span_id FROM {KEYS_TABLE} "
        "WHERE tenant IN {tenants:Array(String)} AND trace_id IN {traces:Array(String)}",
        {
            "tenants": pc.unique(spans.column("tenant")).to_pylist(),
            "traces": pc.unique(spans.column("trace_id")).to_pylist(),
        },
    )
    if found.num_rows == 0:
        return set()
    found_keys = _keys(found)
    return set(found_keys.filter(pc.is_in(found_keys, value_set=keys)).to_pylist())


def _by_keys(store: Store, spans: pa.Table, what: str) -> pa.Table:
    """``tenant, trace_id, span_id`` and ``what`` of the stored rows whose trace and span ids are
    among those of ``spans`` (a superset of the exact keys; callers match them)."""
    return store.query_arrow(
        f"SELECT tenant, trace_id, span_id, {what} FROM spans "
        "WHERE tenant IN {tenants:Array(String)} AND trace_id IN {traces:Array(String)} "
        "AND span_id IN {spans:Array(String)} LIMIT 1 BY tenant, trace_id, span_id",
        {
            "tenants": pc.unique(spans.column("tenant")).to_pylist(),
            "traces": pc.unique(spans.column("trace_id")).to_pylist(),
            "spans": pc.unique(spans.column("span_id")).to_pylist(),
        },
    )


def _stored_rows(store: Store, stored: set[str], schema: pa.Schema) -> dict[str, dict[str, Any]]:
    """The stored row of each key as Python values, read back as the batch's types (ClickHouse
    answers LowCardinality as dictionaries), so that a row equals what was inserted."""
    parts = [k.split(_SEP) for k in stored]
    keys = pa.table({c: [p[i] for p in parts] for i, c in enumerate(_KEY)})
    cols = [c for c in schema.names if c not in _KEY and c != "ingest_time"]
    table = _by_keys(store, keys, ", ".join(f"`{c}`" for c in cols))
    table = table.select([*_KEY, *cols]).cast(pa.schema([schema.field(c) for c in [*_KEY, *cols]]))
    rows = {}
    for row in table.to_pylist():
        key = _SEP.join(row[c] for c in _KEY)
        if key in stored:
            rows[key] = row
    return rows


def _same_content(a: dict[str, Any], b: dict[str, Any], columns: list[str]) -> bool:
    return all(_same(a[c], b[c]) for c in columns)


def _same(a: Any, b: Any) -> bool:
    """Equal as stored values: NaN equals NaN (a document without a score), and a map read back
    as key/value pairs equals the same pairs (Arrow maps are lists of tuples either way)."""
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return bool(a == b)
