"""The tamper-evident ledger: row hashes, Merkle roots, hash-chained checkpoints, verification.

Row hash: SHA-256 of the JSON rendering (ClickHouse ``toJSONString``) of the
stored row's columns in table order, all but the delivery bookkeeping (ingest
time and source position, so that a span delivered twice hashes the same). The
canonical-call columns added later (``CALL_COLUMN_NAMES``, migration 0007) follow
the others, and only when one of them is set: a row stored before them (read with
them empty) keeps the hash its checkpoint holds. It
is computed by ClickHouse right after the insert: on a server over the stored
rows of the batch's offset range, in the embedded store over the inserted batch
itself cast to the stored column types (the same values, without reading the
table back), and recomputed over the stored rows by ``verify`` (the same SQL on
either store; keep the engine version compatible, or re-anchor after an upgrade). It
covers the row's content hashes, and ``verify`` also checks every content
record against its hash, so changing a stored prompt or document is caught too.

Checkpoints are appended per tenant and stream (Kafka topic/partition, or the
embedded sequence), in stream order, by the one writer that owns the stream.
Re-delivered rows (at-least-once) hash the same as the originals, so
duplicates never break verification; a re-read batch simply gets another
checkpoint covering the same offsets.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from agentledger.pipeline.normalize.native import (
    compiled as _native,  # Merkle roots without the GIL
)
from agentledger.pipeline.store import Store
from agentledger.schemas import CALL_COLUMN_NAMES, SPAN_ARROW_SCHEMA, SPAN_COLUMNS

if TYPE_CHECKING:
    from agentledger.pipeline.derive.ledger_verify import VerifyReport

__all__ = ["ROW_HASH_SQL", "VERIFY_CHUNK", "merkle_root", "Ledger", "verify", "LEDGER_TABLE"]

log = logging.getLogger(__name__)

LEDGER_TABLE = "ledger_checkpoints"
_GENESIS = "0" * 64
_DELIVERY = ("ingest_time", "source_topic", "source_partition", "source_offset")
_ADDED = [n for n in SPAN_ARROW_SCHEMA.names if n in CALL_COLUMN_NAMES]
_BASE = [n for n in SPAN_ARROW_SCHEMA.names if n not in _DELIVERY and n not in _ADDED]
_HASHED = [*_BASE, *_ADDED]


def _row_hash_sql(column: Callable[[str], str]) -> str:
    """The row hash over the columns as ``column`` spells each: over the base columns while the
    added ones are empty (so a row stored before them hashes as it did), else over all."""

    def over(names: list[str]) -> str:
        return "lower(hex(SHA256(toJSONString(tuple({})))))".format(
            ", ".join(column(c) for c in names)
        )

    unset = " AND ".join(f"empty({column(c)})" for c in _ADDED)
    return f"if({unset}, {over(_BASE)}, {over(_HASHED)})"


ROW_HASH_SQL = _row_hash_sql(lambda c: f"`{c}`")
"""SQL expression of a span row's hash."""

_TYPES = {c.name: c.ch_type for c in SPAN_COLUMNS}
_INPUT_ROW_HASH_SQL = _row_hash_sql(lambda c: f"CAST(`{c}` AS {_TYPES[c]})")
"""The same hash over an in-memory batch, its columns cast to the stored types."""


def _batch_hashes(store: Store, spans: pa.Table) -> pa.Table | None:
    """Row hash (``h``), trace_id, span_id, tenant, source_topic, source_partition of every row
    of the batch, hashed over the batch itself; None when the store cannot read an in-memory table."""
    return store.query_arrow_over(
        f"SELECT {_INPUT_ROW_HASH_SQL} AS h, trace_id, span_id, tenant, source_topic, source_partition FROM {{input}}",
        spans.select([*_HASHED, "source_topic", "source_partition"]),
    )


def _range_hashes(store: Store, tenant: str, stream: str, first: int, last: int) -> pa.Table:
    """Row hash (``h``), trace_id, span_id of the tenant's rows at ``stream`` offsets first..last."""
    topic, _, partition = stream.rpartition("/")
    return store.query_arrow(
        f"SELECT {ROW_HASH_SQL} AS h, trace_id, span_id FROM spans WHERE tenant = {{tenant:String}} "
        "AND source_topic = {topic:String} AND source_partition = {partition:Int32} "
        "AND source_offset BETWEEN {first:Int64} AND {last:Int64}",
        {
            "tenant": tenant,
            "topic": topic,
            "partition": int(partition),
            "first": first,
            "last": last,
        },
    )


def _in_stream(hashed: pa.Table, tenant: str, topic: str, partition: int) -> pa.Table:
    """The rows of one (tenant, stream) among a batch's hashed rows."""
    mask = pc.and_(
        pc.and_(
            pc.equal(hashed.column("tenant"), tenant),
            pc.equal(hashed.column("source_topic"), topic),
        ),
        pc.equal(hashed.column("source_partition"), partition),
    )
    return hashed.filter(mask)


def _leaves(hashed: pa.Table) -> tuple[pa.Array, pa.Array]:
    """The distinct row hashes in order, and the "trace_id/span_id" of each: a checkpoint's leaves.

    Rows delivered twice hash the same (the hash covers trace and span ids), so one leaf stands for both.
    """
    if hashed.num_rows == 0:
        return pa.array([], pa.string()), pa.array([], pa.string())
    hashed = hashed.sort_by("h")
    h = hashed.column("h").combine_chunks().cast(pa.string())
    ids = pc.binary_join_element_wise(
        hashed.column("trace_id").cast(pa.string()), hashed.column("span_id").cast(pa.string()), "/"
    ).combine_chunks()
    if len(h) > 1:
        keep = pa.concat_arrays(
            [pa.array([True]), pc.not_equal(h.slice(1), h.slice(0, len(h) - 1))]
        )
        if not pc.all(keep).as_py():
            h, ids = h.filter(keep), ids.filter(keep)
    return h, ids


def _hash_map(hashed: pa.Table) -> dict[str, str]:
    """row hash -> "trace_id/span_id"."""
    hashes, ids = _leaves(hashed)
    return dict(zip(hashes.to_pylist(), ids.to_pylist()))


def _list_column(parts: list[pa.Array]) -> pa.Array:
    """One list per checkpoint row, from each row's array of strings."""
    offsets = [0]
    for part in parts:
        offsets.append(offsets[-1] + len(part))
    values = pa.concat_arrays(parts) if parts else pa.array([], pa.string())
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), values)


def merkle_root(leaves: list[str]) -> str:
    """RFC 6962-style Merkle tree hash over hex leaves (0x00 leaf prefix, 0x01 node prefix); computed
    by the compiled normalizer's module when installed (same function, tested equal)."""
    if _native is not None:
        root: str = _native.merkle_root(leaves)
        return root
    return merkle_root_python(leaves)


def merkle_root_python(leaves: list[str]) -> str:
    """``merkle_root`` in Python (the reference)."""
    if not leaves:
        return hashlib.sha256(b"").hexdigest()
    level = [hashlib.sha256(b"\x00" + bytes.fromhex(h)).digest() for h in leaves]
    while len(level) > 1:
        nxt = []
        for i in range(0, len(level) - 1, 2):
            nxt.append(hashlib.sha256(b"\x01" + level[i] + level[i + 1]).digest())
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0].hex()


def checkpoint_hash(
    tenant: str, stream: str, seq: int, first: int, last: int, root: str, prev: str
) -> str:
    material = f"{tenant}\n{stream}\n{seq}\n{first}\n{last}\n{root}\n{prev}".encode()
    return hashlib.sha256(material).hexdigest()


def _sign(key: bytes | None, digest: str) -> str:
    return hmac.new(key, digest.encode(), hashlib.sha256).hexdigest() if key else ""


def _stream(topic: str, partition: int) -> str:
    return f"{topic}/{partition}"


@dataclass
class Ledger:
    """Appends checkpoints for stored batches. One instance per writer; thread-safe."""

    store: Store
    key: bytes | None = None
    key_id: str = ""
    _heads: dict[tuple[str, str], tuple[int, str]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _head(self, tenant: str, stream: str) -> tuple[int, str]:
        key = (tenant, stream)
        if key not in self._heads:
            rows = self.store.query_rows(
                f"SELECT seq, checkpoint_hash FROM {LEDGER_TABLE} FINAL "
                "WHERE tenant = {tenant:String} AND stream = {stream:String} ORDER BY seq DESC LIMIT 1",
                {"tenant": tenant, "stream": stream},
            )
            self._heads[key] = (
                (rows[0]["seq"], rows[0]["checkpoint_hash"]) if rows else (0, _GENESIS)
            )
        return self._heads[key]

    def append(self, spans: pa.Table, dedup_token: str) -> int:
        """Checkpoint the rows of ``spans`` (just stored); returns how many checkpoints were written."""
        if spans.num_rows == 0:
            return 0
        groups = (
            spans.select(["tenant", "source_topic", "source_partition", "source_offset"])
            .group_by(["tenant", "source_topic", "source_partition"])
            .aggregate([("source_offset", "min"), ("source_offset", "max")])
            .to_pylist()
        )
        rows: list[dict[str, Any]] = []
        leaf_hashes: list[pa.Array] = []
        leaf_spans: list[pa.Array] = []
        in_batch = _batch_hashes(self.store, spans)
        with self._lock:
            heads = {}
            for g in sorted(
                groups, key=lambda g: (g["tenant"], g["source_topic"], g["source_partition"])
            ):
                tenant, stream = g["tenant"], _stream(g["source_topic"], g["source_partition"])
                first, last = g["source_offset_min"], g["source_offset_max"]
                if in_batch is not None:
                    hashed = _in_stream(in_batch, tenant, g["source_topic"], g["source_partition"])
                else:
                    hashed = _range_hashes(self.store, tenant, stream, first, last)
                hashes, ids = _leaves(hashed)
                seq, prev = self._head(tenant, stream)
                root = merkle_root(hashes.to_pylist())
                seq += 1
                digest = checkpoint_hash(tenant, stream, seq, first, last, root, prev)
                rows.append(
                    {
                        "tenant": tenant,
                        "stream": stream,
                        "seq": seq,
                        "first_offset": first,
                        "last_offset": last,
                        "merkle_root": root,
                        "prev_hash": prev,
                        "checkpoint_hash": digest,
                        "signature": _sign(self.key, digest),
                        "key_id": self.key_id if self.key else "",
                        "created_at": time.time_ns() // 1_000_000,
                    }
                )
                leaf_hashes.append(hashes)
                leaf_spans.append(ids)
                heads[(tenant, stream)] = (seq, digest)
            lists = {"leaves": _list_column(leaf_hashes), "leaf_spans": _list_column(leaf_spans)}
            table = pa.Table.from_arrays(
                [
                    lists[f.name]
                    if f.name in lists
                    else pa.array([r[f.name] for r in rows], f.type)
                    for f in _CHECKPOINT_SCHEMA
                ],
                schema=_CHECKPOINT_SCHEMA,
            )
            try:
                self.store.insert_arrow(LEDGER_TABLE, table, dedup_token=f"{dedup_token}/ledger")
            except Exception:
                # the heads are unknown now: re-read them from the store next time
                for key in heads:
                    self._heads.pop(key, None)
                raise
            self._heads.update(heads)
        return len(rows)


_CHECKPOINT_SCHEMA = pa.schema(
    [
        ("tenant", pa.string()),
        ("stream", pa.string()),
        ("seq", pa.uint64()),
        ("first_offset", pa.int64()),
        ("last_offset", pa.int64()),
        ("leaves", pa.list_(pa.string())),
        ("leaf_spans", pa.list_(pa.string())),
        ("merkle_root", pa.string()),
        ("prev_hash", pa.string()),
        ("checkpoint_hash", pa.string()),
        ("signature", pa.string()),
        ("key_id", pa.string()),
        ("created_at", pa.timestamp("ms", tz="UTC")),
    ]
)


# -- verification (``ledger_verify``) ----------------------------------------------------------

VERIFY_CHUNK = 256
"""Checkpoints (each with its leaves) ``verify`` holds in memory at once."""


def verify(
    store: Store,
    tenant: str,
    *,
    key: bytes | None = None,
    since: str | None = None,
    chunk_size: int = VERIFY_CHUNK,
) -> VerifyReport:
    """Recompute the tenant's ledger, streaming its checkpoints ``chunk_size`` at a time in
    chain order (see :func:`agentledger.pipeline.derive.ledger_verify.verify`)."""
    from agentledger.pipeline.derive.ledger_verify import verify as run

    return run(store, tenant, key=key, since=since, chunk_size=chunk_size)
