"""The span side of ``ledger verify``, asked of the engine: only the problems come back.

A log holds millions of span leaves. Fetching each page's rows into Python to rebuild their
leaves cost ~100 µs a span and hundreds of megabytes of objects; the engine rebuilds a span's leaf
hash itself (``tlog_leaves``), joins leaves to rows and returns the rows that disagree, so Python
holds the disagreements, never the log. Memory: the joins run in slices of the span ids
(``buckets``: about ``BUCKET_ROWS`` rows a side, however large the log; each slice reads the id
columns again, which costs time, not memory), and every join and aggregation also runs with the
engine's spilling algorithms under a fixed budget (``BUDGET``).
Rows the SQL expression does not cover come back as disagreements with an empty hash and are
rebuilt by ``schemas.ledger`` (the definition) before anything is reported.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any, Final

from agentledger.pipeline.derive.tlog_leaves import span_content_hashes, span_leaf_hash
from agentledger.pipeline.derive.tlog_store import LEAVES_TABLE
from agentledger.pipeline.store import Store

__all__ = [
    "BUCKET_ROWS",
    "BUDGET",
    "CAP",
    "SpanMismatch",
    "buckets",
    "missing_contents",
    "span_mismatches",
    "unlogged_spans",
]

BUDGET: Final = 64_000_000
"""Bytes a join or aggregation of the checks may hold before the engine spills to disk."""
BUCKET_ROWS: Final = 500_000
"""Rows of each side of one join at most (about 100 MB of ids and hashes in the engine)."""
CAP: Final = 100_000
"""Disagreeing rows fetched at most per check (each is a problem; beyond it they are counted)."""

_SETTINGS: Final = (
    f" SETTINGS join_algorithm = 'grace_hash', max_bytes_in_join = {BUDGET}, "
    f"grace_hash_join_initial_buckets = 8, max_bytes_before_external_group_by = {BUDGET}, "
    f"max_bytes_before_external_sort = {BUDGET}, max_block_size = 8192"
)


@dataclasses.dataclass(frozen=True)
class SpanMismatch:
    """A span leaf whose row is gone (``found`` false), hashes otherwise (``again``), or is one
    the SQL expression leaves to ``schemas.ledger`` (``again`` empty)."""

    index: int
    record_id: str
    record_key: str
    leaf_hash: str
    found: bool
    again: str


def buckets(size: int) -> int:
    """How many slices (by a hash of the span id) the joins of a log of ``size`` leaves run in,
    so that each side of one join holds about ``BUCKET_ROWS`` rows whatever the log's size."""
    return max(1, -(-size // BUCKET_ROWS))


def span_mismatches(store: Store, tenant: str, size: int) -> tuple[list[SpanMismatch], int]:
    """The span leaves below ``size`` whose stored row does not give their hash (first ``CAP``
    by index), and how many there are in all."""
    n = buckets(size)
    body = (
        "FROM (SELECT leaf_index, record_id, record_key, leaf_hash FROM "
        f"{LEAVES_TABLE} WHERE tenant = {{t:String}} AND kind = 'span' AND leaf_index < {{n:UInt64}}"
        " AND cityHash64(record_id) % {m:UInt64} = {b:UInt64}) AS l LEFT JOIN (SELECT s.span_id "
        f"AS span_id, s.trace_id AS trace_id, ifNull({span_leaf_hash('s')}, '') AS again, "
        "1 AS found FROM spans AS s FINAL WHERE s.tenant = {t:String} "
        "AND cityHash64(s.span_id) % {m:UInt64} = {b:UInt64}) AS r "
        "ON l.record_id = r.span_id AND l.record_key = r.trace_id "
        "WHERE r.found = 0 OR r.again != l.leaf_hash"
    )
    rows: list[dict[str, Any]] = []
    total = 0
    for b in range(n):
        params = {"t": tenant, "n": size, "m": n, "b": b}
        found = store.query_rows(
            "SELECT l.leaf_index AS i, l.record_id AS id, l.record_key AS k, l.leaf_hash AS h, "
            f"r.found AS found, r.again AS again {body} ORDER BY i LIMIT {CAP}{_SETTINGS}",
            params,
        )
        rows += found
        total += (
            int(store.query_scalar(f"SELECT count() {body}{_SETTINGS}", params))
            if len(found) == CAP
            else len(found)
        )
    rows = sorted(rows, key=lambda r: int(r["i"]))[:CAP]
    return [
        SpanMismatch(int(r["i"]), r["id"], r["k"], r["h"], bool(r["found"]), r["again"] or "")
        for r in rows
    ], total


def unlogged_spans(store: Store, tenant: str, head_us: int, size: int) -> Iterator[dict[str, Any]]:
    """Per slice and ``late`` (stored after the log's head), the count and five ids of the stored
    spans that are no leaf; ``size``: the log's leaves (how many slices)."""
    n = buckets(size)
    for b in range(n):
        yield from store.query_rows(
            "SELECT s.ingest_time > fromUnixTimestamp64Micro({h:Int64}) AS late, count() AS n, "
            "groupArray(5)(s.span_id) AS ids FROM (SELECT span_id, trace_id, ingest_time "
            "FROM spans FINAL WHERE tenant = {t:String} AND cityHash64(span_id) % {m:UInt64} = "
            "{b:UInt64}) AS s LEFT JOIN (SELECT record_id, record_key, 1 AS found FROM "
            f"{LEAVES_TABLE} WHERE tenant = {{t:String}} AND kind = 'span' "
            "AND cityHash64(record_id) % {m:UInt64} = {b:UInt64}) AS l "
            "ON s.span_id = l.record_id AND s.trace_id = l.record_key WHERE l.found = 0 "
            "GROUP BY late" + _SETTINGS,
            {"t": tenant, "h": head_us, "m": n, "b": b},
        )


def missing_contents(store: Store, tenant: str, head_us: int) -> list[dict[str, Any]]:
    """Content hashes referenced by spans stored up to the log's head whose content record is
    missing (``found`` 0) or no longer hashes to its name, with one span referencing each
    (first ``CAP``)."""
    return store.query_rows(
        f"SELECT r.h AS h, r.span_id AS span_id, c.found AS found FROM (SELECT h, any(s.span_id) "
        f"AS span_id FROM spans AS s FINAL ARRAY JOIN {span_content_hashes('s')} AS h "
        "WHERE s.tenant = {t:String} AND s.ingest_time <= fromUnixTimestamp64Micro({h:Int64}) "
        "GROUP BY h) AS r LEFT JOIN (SELECT hash, lower(hex(SHA256(any(content)))) AS digest, "
        "1 AS found FROM contents WHERE tenant = {t:String} GROUP BY hash) AS c ON r.h = c.hash "
        f"WHERE c.found = 0 OR c.digest != r.h ORDER BY h LIMIT {CAP}" + _SETTINGS,
        {"t": tenant, "h": head_us},
    )
