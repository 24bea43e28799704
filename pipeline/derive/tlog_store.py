"""The tenant logs in the store: which stored rows become leaves, in which order, and how the
leaf hashes and signed checkpoints are read back (migration 0015).

What is a leaf (``schemas.ledger``): every span (``span_record`` of its row) and every record of
the record log (``from_record``: intents, outcomes, controls, feedback, datasets, drift reports,
key events, access-log entries, anomaly labels). A record stored twice with the same kind, id and
body (a re-send) is one leaf, at its first ``recorded_at``. Content records are not leaves of
their own here: each span leaf lists the SHA-256 of every content record it references, and
``agentledger ledger verify`` checks that those records are stored and hash to their names.

The order, fixed by the one appender of a tenant (``tlog_job``): each append takes the stored rows
that are not leaves yet, sorted by (source time, kind, id, key), where the source time is the
span's ``ingest_time`` (milliseconds) or the record's ``recorded_at`` (microseconds), both as
microseconds; a row that arrives after later rows were appended goes into a later append. The
log's order is therefore the order of appends, and inside one append that sort; it is what the
signed checkpoints commit to, so a verifier reads it from ``ledger_leaves`` rather than
re-deriving it.

Everything here streams: leaf hashes are read ``PAGE`` at a time by index ranges (keyset pages over
the table's ``(tenant, leaf_index)`` order), never a whole log at once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Final

from agentledger.pipeline.derive.tlog_leaves import span_leaf_hash
from agentledger.pipeline.store import Store
from agentledger.pipeline.tlog import EMPTY_ROOT, CompactRange, ProofError, leaf_hash, node_hash
from agentledger.schemas.ledger import (
    SPAN_BODY_FIELDS,
    LedgerRecord,
    canonical_record,
    from_record,
    span_record,
)
from agentledger.schemas.records import Record, RecordKind, leaf_parts

__all__ = [
    "CHECKPOINTS_TABLE",
    "LEAVES_TABLE",
    "PAGE",
    "SPAN_SELECT",
    "LogGap",
    "StoredCheckpoint",
    "Candidate",
    "candidates",
    "checkpoint_ranges",
    "consistency_path",
    "inclusion_path",
    "recompute",
    "latest_checkpoint",
    "leaf_hashes",
    "log_head",
    "record_leaf",
    "span_leaf",
    "range_root",
    "stored_record",
]

LEAVES_TABLE: Final = "ledger_leaves"
"""One row per leaf: tenant, index, kind, id, key, source time, leaf hash (migration 0015)."""
CHECKPOINTS_TABLE: Final = "ledger_tree_checkpoints"
"""One row per signed checkpoint: size, root, compact range, the signed note."""
PAGE: Final = 100_000
"""Leaf hashes read per query while streaming a log (about 10 MB of hex)."""

_SPAN_FIELDS: Final = [
    f.name for f in SPAN_BODY_FIELDS if f.name not in ("start_time", "end_time")
] + ["sent_by"]
SPAN_SELECT: Final = ", ".join(f"`{c}`" for c in _SPAN_FIELDS) + (
    ", toUnixTimestamp64Nano(start_time) AS start_time"
    ", toUnixTimestamp64Nano(end_time) AS end_time"
    ", toUnixTimestamp64Micro(ingest_time) AS t_us"
)
"""The columns of a span row that ``span_leaf`` reads (times as Unix nanoseconds)."""
_TENANT: Final = "tenant = {tenant:String}"


class LogGap(ProofError):
    """The stored log is not leaves 0..n-1 each once: an index is missing or taken twice."""


@dataclasses.dataclass(frozen=True)
class Candidate:
    """A stored row to append: its sort key and its leaf hash."""

    t_us: int
    kind: str
    record_id: str
    record_key: str
    leaf: bytes

    @property
    def order(self) -> tuple[int, str, str, str]:
        """The append order: source time, kind, id, key."""
        return (self.t_us, self.kind, self.record_id, self.record_key)


@dataclasses.dataclass(frozen=True)
class StoredCheckpoint:
    """The latest signed checkpoint of a tenant as stored."""

    tree_size: int
    root_hash: bytes
    compact_range: tuple[bytes, ...]
    note: str
    key_name: str
    key_id: str


def log_head(store: Store, tenant: str) -> tuple[int, int, int]:
    """(leaves, max index + 1, latest source time in microseconds) of the tenant's log; the
    first two differ when an index is missing or taken twice."""
    row = store.query_rows(
        "SELECT count() AS n, if(n = 0, 0, max(leaf_index) + 1) AS next, "
        f"toUnixTimestamp64Micro(max(source_time)) AS t FROM {LEAVES_TABLE} WHERE {_TENANT}",
        {"tenant": tenant},
    )[0]
    return int(row["n"]), int(row["next"]), int(row["t"] or 0)


def span_leaf(tenant: str, row: dict[str, Any]) -> LedgerRecord:
    """The leaf record of a span row selected with ``SPAN_SELECT`` (times as nanoseconds)."""
    return span_record(tenant, row)


def record_leaf(tenant: str, row: dict[str, Any]) -> LedgerRecord:
    """The leaf record of a (kind, record_id, t_us, actor, body, body_sha256) row."""
    record = Record(
        kind=RecordKind(row["kind"]),
        tenant=tenant,
        record_id=str(row["record_id"]),
        recorded_at_ns=int(row["t_us"]) * 1000,
        actor=str(row["actor"]),
        body=str(row["body"]),
        body_sha256=str(row["body_sha256"]),
    )
    body, listed = leaf_parts(record)  # an erasure lists the hashes it erased
    return from_record(body, listed)


def _span_candidates(store: Store, tenant: str, low_us: int, limit: int) -> list[Candidate]:
    # the engine writes each leaf hash (tlog_leaves); a row it leaves NULL is built here
    table = store.query_arrow(
        "SELECT toUnixTimestamp64Micro(s.ingest_time) AS t_us, s.span_id AS span_id, "
        f"s.trace_id AS record_key, {span_leaf_hash('s')} AS leaf FROM spans AS s FINAL "
        "WHERE s.tenant = {tenant:String} "
        "AND s.ingest_time >= fromUnixTimestamp64Micro({low:Int64}) "
        "AND (s.trace_id, s.span_id) NOT IN (SELECT record_key, record_id FROM "
        f"{LEAVES_TABLE} WHERE {_TENANT} AND kind = 'span' AND record_id IN (SELECT span_id "
        f"FROM spans WHERE {_TENANT} AND ingest_time >= fromUnixTimestamp64Micro({{low:Int64}}))) "
        "ORDER BY t_us, span_id, record_key LIMIT {limit:UInt64}",
        {"tenant": tenant, "low": low_us, "limit": limit},
    )
    found = []
    for t_us, span_id, trace_id, leaf in zip(*(table.column(i).to_pylist() for i in range(4))):
        if leaf is None:
            record = recompute(store, tenant, "span", span_id, trace_id)
            if record is None:
                continue
            leaf = leaf_hash(record).hex()
        found.append(Candidate(t_us, "span", span_id, trace_id, bytes.fromhex(leaf)))
    return found


_RECORDS_SQL: Final = (
    "SELECT kind, record_id, body_sha256, min(toUnixTimestamp64Micro(recorded_at)) AS t_us, "
    "argMin(actor, recorded_at) AS actor, any(body) AS body FROM records "
    f"WHERE {_TENANT} <where> GROUP BY kind, record_id, body_sha256 "
)


def _record_candidates(
    store: Store, tenant: str, low_us: int, limit: int, on_error: Callable[[str], None]
) -> list[Candidate]:
    # a re-sent record may be stored long after its first copy: its identity, not its time,
    # says whether it is a leaf already (searched among leaves of the ids in the window only)
    window = "recorded_at >= fromUnixTimestamp64Micro({low:Int64})"
    rows = store.query_rows(
        _RECORDS_SQL.replace(
            "<where>",
            f"AND record_id IN (SELECT record_id FROM records WHERE {_TENANT} AND {window})",
        )
        + f"HAVING max(recorded_at) >= fromUnixTimestamp64Micro({{low:Int64}}) "
        "AND (kind, record_id, body_sha256) NOT IN (SELECT kind, record_id, record_key FROM "
        f"{LEAVES_TABLE} WHERE {_TENANT} AND kind != 'span' AND record_id IN (SELECT record_id "
        f"FROM records WHERE {_TENANT} AND {window})) "
        "ORDER BY t_us, kind, record_id, body_sha256 LIMIT {limit:UInt64}",
        {"tenant": tenant, "low": low_us, "limit": limit},
    )
    found = []
    for r in rows:
        try:
            record = canonical_record(record_leaf(tenant, r))
        except ValueError as exc:  # not canonical or unknown kind: never a leaf; verify says so
            on_error(f"{r['kind']} {r['record_id']}: {exc}")
            continue
        found.append(
            Candidate(
                int(r["t_us"]),
                str(r["kind"]),
                str(r["record_id"]),
                r["body_sha256"],
                leaf_hash(record),
            )
        )
    return found


def candidates(
    store: Store,
    tenant: str,
    low_us: int,
    limit: int,
    on_error: Callable[[str], None] = lambda _: None,
) -> list[Candidate]:
    """Up to ``limit`` stored rows not in the log yet, stored since ``low_us`` (microseconds),
    in append order. ``on_error``: told of a record that cannot be a leaf (skipped)."""
    merged = _span_candidates(store, tenant, low_us, limit) + _record_candidates(
        store, tenant, low_us, limit, on_error
    )
    merged.sort(key=lambda c: c.order)
    return merged[:limit]


def stored_record(store: Store, tenant: str, kind: str, record_id: str) -> list[tuple[int, bytes]]:
    """(leaf index, canonical record) of each leaf of that kind and id, recomputed from the stored
    row (the first leaf first); empty when there is none."""
    leaves = store.query_rows(
        f"SELECT leaf_index, record_key FROM {LEAVES_TABLE} WHERE {_TENANT} "
        "AND kind = {kind:String} AND record_id = {id:String} ORDER BY leaf_index",
        {"tenant": tenant, "kind": kind, "id": record_id},
    )
    found = []
    for leaf in leaves:
        record = recompute(store, tenant, kind, record_id, str(leaf["record_key"]))
        if record is not None:
            found.append((int(leaf["leaf_index"]), record))
    return found


def recompute(store: Store, tenant: str, kind: str, record_id: str, key: str) -> bytes | None:
    """The canonical record of a leaf recomputed from its stored row; None when it is gone."""
    params = {"tenant": tenant, "id": record_id, "key": key, "kind": kind}
    if kind == "span":
        rows = store.query_rows(
            f"SELECT {SPAN_SELECT} FROM spans FINAL WHERE {_TENANT} "
            "AND trace_id = {key:String} AND span_id = {id:String} LIMIT 1",
            params,
        )
        return canonical_record(span_leaf(tenant, rows[0])) if rows else None
    rows = store.query_rows(
        _RECORDS_SQL.replace(
            "<where>",
            "AND kind = {kind:String} AND record_id = {id:String} AND body_sha256 = {key:String}",
        ),
        params,
    )
    return canonical_record(record_leaf(tenant, rows[0])) if rows else None


def leaf_hashes(store: Store, tenant: str, lo: int, hi: int, page: int = PAGE) -> Iterator[bytes]:
    """The leaf hashes at indices lo..hi-1, in order, ``page`` per query; raises LogGap when an
    index in the range is missing or stored twice (a fork), as no proof could then be trusted."""
    at = lo
    while at < hi:
        end = min(hi, at + page)
        table = store.query_arrow(
            f"SELECT leaf_index, leaf_hash FROM {LEAVES_TABLE} WHERE {_TENANT} "
            "AND leaf_index >= {lo:UInt64} AND leaf_index < {hi:UInt64} ORDER BY leaf_index",
            {"tenant": tenant, "lo": at, "hi": end},
        )
        indices = table.column("leaf_index").to_pylist()
        if indices != list(range(at, end)):
            raise LogGap(_gap(indices, at, end))
        for h in table.column("leaf_hash").to_pylist():
            yield bytes.fromhex(h)
        at = end


def _gap(indices: list[int], lo: int, hi: int) -> str:
    seen: set[int] = set()
    for i in indices:
        if i in seen:
            return f"leaf index {i} is stored twice (a fork)"
        seen.add(i)
    missing = next(i for i in range(lo, hi) if i not in seen)
    return f"leaf index {missing} is missing"


def range_root(store: Store, tenant: str, lo: int, hi: int) -> bytes:
    """RFC 9162 root of the leaves lo..hi-1 (a subtree of a proof), streamed."""
    if hi <= lo:
        return EMPTY_ROOT
    compact = CompactRange()
    compact.extend(leaf_hashes(store, tenant, lo, hi))
    return compact.root()


def latest_checkpoint(store: Store, tenant: str) -> StoredCheckpoint | None:
    """The tenant's newest signed checkpoint (largest size, then latest signed); None before the
    first."""
    rows = store.query_rows(
        "SELECT tree_size, root_hash, compact_range, note, key_name, key_id FROM "
        f"{CHECKPOINTS_TABLE} WHERE {_TENANT} ORDER BY tree_size DESC, signed_at DESC LIMIT 1",
        {"tenant": tenant},
    )
    if not rows:
        return None
    r = rows[0]
    return StoredCheckpoint(
        tree_size=int(r["tree_size"]),
        root_hash=bytes.fromhex(r["root_hash"]),
        compact_range=tuple(bytes.fromhex(h) for h in r["compact_range"]),
        note=str(r["note"]),
        key_name=str(r["key_name"]),
        key_id=str(r["key_id"]),
    )


def _split(n: int) -> int:
    return 1 << ((n - 1).bit_length() - 1)


def inclusion_path(store: Store, tenant: str, index: int, size: int) -> list[bytes]:
    """RFC 9162 ``PATH(index, D[size])`` of the stored log, its subtrees streamed (each leaf
    read once: the subtrees are disjoint)."""
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is not in a tree of {size}")
    path: list[bytes] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = _split(hi - lo)
        if index - lo < k:
            path.append(range_root(store, tenant, lo + k, hi))
            hi = lo + k
        else:
            path.append(range_root(store, tenant, lo, lo + k))
            lo += k
    path.reverse()
    return path


def _tiles(size: int, hashes: Sequence[bytes]) -> list[tuple[int, int, bytes]]:
    """(start, end, root) of each perfect subtree of a compact range of ``size`` leaves."""
    if len(hashes) != bin(size).count("1"):
        return []
    tiles, start = [], 0
    for bit, h in zip((b for b in reversed(range(size.bit_length())) if size >> b & 1), hashes):
        tiles.append((start, start + (1 << bit), h))
        start += 1 << bit
    return tiles


def _tiled_root(tiles: list[tuple[int, int, bytes]], lo: int, hi: int) -> bytes | None:
    """The root of leaves lo..hi-1 when they are exactly some of ``tiles`` (RFC 9162 splits a
    run of decreasing perfect subtrees after its first: fold right to left); else None."""
    inside = [t for t in tiles if lo <= t[0] and t[1] <= hi]
    if not inside or inside[0][0] != lo or inside[-1][1] != hi:
        return None
    acc = inside[-1][2]
    for _, _, left in reversed(inside[:-1]):
        acc = node_hash(left, acc)
    return acc


def checkpoint_ranges(
    store: Store, tenant: str, size: int
) -> list[tuple[bytes, tuple[bytes, ...]]]:
    """(root, compact range) of the stored checkpoints of that size (one, unless forged)."""
    rows = store.query_rows(
        f"SELECT DISTINCT root_hash, compact_range FROM {CHECKPOINTS_TABLE} WHERE {_TENANT} "
        "AND tree_size = {n:UInt64}",
        {"tenant": tenant, "n": size},
    )
    return [
        (bytes.fromhex(r["root_hash"]), tuple(bytes.fromhex(h) for h in r["compact_range"]))
        for r in rows
    ]


def consistency_path(
    store: Store, tenant: str, first: int, second: int, first_range: Sequence[bytes] = ()
) -> list[bytes]:
    """RFC 9162 ``PROOF(first, D[second])`` of the stored log, its subtrees streamed; with the
    compact range of size ``first`` (a checkpoint's), the subtrees left of ``first`` come from it
    and only leaves first..second-1 are read (what keeps the witness's check cheap each pass)."""
    if not 0 <= first <= second:
        raise ValueError(f"size {first} is not in 0..{second}")
    if first in (0, second):
        return []
    tiles = _tiles(first, first_range)

    def subtree(lo: int, hi: int) -> bytes:
        known = _tiled_root(tiles, lo, hi) if hi <= first else None
        return known if known is not None else range_root(store, tenant, lo, hi)

    proof: list[bytes] = []
    lo, hi, m, whole = 0, second, first, True
    while m != hi - lo:
        k = _split(hi - lo)
        if m <= k:
            proof.append(subtree(lo + k, hi))
            hi = lo + k
        else:
            proof.append(subtree(lo, lo + k))
            lo, m, whole = lo + k, m - k, False
    if not whole:
        proof.append(subtree(lo, hi))
    proof.reverse()
    return proof
