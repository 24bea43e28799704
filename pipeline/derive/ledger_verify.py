"""Verification of the tamper-evident ledger, streamed: memory bounded by a chunk, not a tenant.

A tenant's checkpoints carry every row hash (their leaves), so reading them all at once, or
every stored span's position, holds the whole tenant in memory: one ``verify`` of a large
tenant could take the server down. Here the checkpoints are read in chain order, ``chunk_size``
at a time (keyset pages over the table's ``(tenant, stream, seq)`` order), and each is checked
against the rows of its own offset range. The two checks that look across checkpoints run in
the store instead of in Python:

* a row in a checkpoint's range that its leaves lack may be a redelivery another checkpoint
  accounts for: the other checkpoints' leaves are searched for just those hashes;
* rows outside every checkpoint (forged, or a truncated ledger tail) are found by an ASOF
  join of the spans' positions against the checkpoints' ranges, answering a count and a
  sample per stream.

The answer is the same as checking the whole chain at once (tests compare the two chunk sizes).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from typing import Any

from agentledger.pipeline.derive.ledger import (
    _GENESIS,
    LEDGER_TABLE,
    ROW_HASH_SQL,
    VERIFY_CHUNK,
    _hash_map,
    _range_hashes,
    _sign,
    checkpoint_hash,
    merkle_root,
)
from agentledger.pipeline.store import Store

__all__ = ["Problem", "VerifyReport", "verify"]

_SAMPLE = 50
"""Spans named per problem of rows outside every checkpoint (the first in id order, so the
report is the same on every run)."""


@dataclass
class Problem:
    kind: str
    stream: str
    seq: int
    detail: str
    spans: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "stream": self.stream,
            "seq": self.seq,
            "detail": self.detail,
            "spans": self.spans,
        }


@dataclass
class VerifyReport:
    tenant: str
    checkpoints: int = 0
    rows: int = 0
    contents: int = 0
    heads: dict[str, str] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant,
            "ok": self.ok,
            "checkpoints": self.checkpoints,
            "rows": self.rows,
            "contents_checked": self.contents,
            "heads": self.heads,
            "problems": [p.as_dict() for p in self.problems],
        }


_PAGE = f"""
SELECT * FROM {LEDGER_TABLE} FINAL
WHERE tenant = {{tenant:String}} AND (stream, seq) > ({{stream:String}}, {{seq:UInt64}})
ORDER BY stream, seq
LIMIT {{n:UInt32}}
"""


def checkpoints(store: Store, tenant: str, chunk_size: int = VERIFY_CHUNK) -> Any:
    """The tenant's checkpoints in chain order (by stream, then seq), read ``chunk_size`` at a
    time: a generator of row dicts that never holds more than one page."""
    if chunk_size < 1:
        raise ValueError("chunk_size must be at least 1")
    stream, seq = "", 0
    while True:
        page = store.query_rows(
            _PAGE, {"tenant": tenant, "stream": stream, "seq": seq, "n": chunk_size}
        )
        yield from page
        if len(page) < chunk_size:
            return
        stream, seq = page[-1]["stream"], page[-1]["seq"]


@dataclass
class _Chain:
    """Where the walk of one stream's chain stands."""

    prev: str = _GENESIS
    expected: int = 1
    broken_at: int | None = None
    """The seq that is missing: checkpoints from there on are not checked (nor cover rows)."""


def verify(
    store: Store,
    tenant: str,
    *,
    key: bytes | None = None,
    since: str | None = None,
    chunk_size: int = VERIFY_CHUNK,
) -> VerifyReport:
    """Recompute the tenant's ledger; every problem names the checkpoint and the spans involved.

    ``since`` (``YYYY-MM-DD HH:MM:SS``) limits the row checks to checkpoints created since
    then; the chain itself is always checked from its start. ``chunk_size``: checkpoints
    read (and held) at once.
    """
    report = VerifyReport(tenant)
    chains: dict[str, _Chain] = {}
    for cp in checkpoints(store, tenant, chunk_size):
        stream = cp["stream"]
        chain = chains.setdefault(stream, _Chain())
        if chain.broken_at is not None:
            continue
        report.checkpoints += 1
        if cp["seq"] != chain.expected:
            chain.broken_at = chain.expected
            report.problems.append(
                Problem(
                    "missing_checkpoint",
                    stream,
                    chain.expected,
                    f"checkpoint {chain.expected} is missing (next found: {cp['seq']})",
                )
            )
            continue
        _check_checkpoint(cp, chain.prev, tenant, key, report)
        chain.prev, chain.expected = cp["checkpoint_hash"], chain.expected + 1
        if since is None or str(cp["created_at"]) >= since:
            _check_rows(store, tenant, cp, report)
    for stream, chain in chains.items():
        report.heads[stream] = chain.prev
    _uncovered(store, tenant, chains, report)
    _contents(store, tenant, report)
    return report


def _check_checkpoint(
    cp: dict[str, Any], prev: str, tenant: str, key: bytes | None, report: VerifyReport
) -> None:
    """The checkpoint's own fields: its link to the previous one, its hash, root and signature."""
    stream, seq = cp["stream"], cp["seq"]
    if cp["prev_hash"] != prev:
        report.problems.append(
            Problem("broken_chain", stream, seq, "prev_hash does not match the previous checkpoint")
        )
    digest = checkpoint_hash(
        tenant,
        stream,
        seq,
        cp["first_offset"],
        cp["last_offset"],
        cp["merkle_root"],
        cp["prev_hash"],
    )
    if digest != cp["checkpoint_hash"]:
        report.problems.append(
            Problem("checkpoint_altered", stream, seq, "checkpoint hash does not match its fields")
        )
    if merkle_root(list(cp["leaves"])) != cp["merkle_root"]:
        report.problems.append(
            Problem("checkpoint_altered", stream, seq, "leaves do not give the Merkle root")
        )
    if key is not None and not hmac.compare_digest(
        _sign(key, cp["checkpoint_hash"]), cp["signature"]
    ):
        report.problems.append(
            Problem("bad_signature", stream, seq, "signature does not verify with the ledger key")
        )


def _check_rows(store: Store, tenant: str, cp: dict[str, Any], report: VerifyReport) -> None:
    """The stored rows of the checkpoint's range against its leaves."""
    stream, seq = cp["stream"], cp["seq"]
    found = _hash_map(_range_hashes(store, tenant, stream, cp["first_offset"], cp["last_offset"]))
    report.rows += len(found)
    leaves = dict(zip(cp["leaves"], cp["leaf_spans"]))
    missing = _still_missing(
        store, tenant, {h: span for h, span in leaves.items() if h not in found}
    )
    unknown = {h: span for h, span in found.items() if h not in leaves}
    # rows in range that no checkpoint of this range accounts for (a later re-read may)
    elsewhere = _in_other_checkpoints(store, tenant, stream, seq, list(unknown))
    extra = [span for h, span in unknown.items() if h not in elsewhere]
    if missing:
        report.problems.append(
            Problem(
                "rows_changed_or_deleted",
                stream,
                seq,
                f"{len(missing)} recorded row(s) no longer hash as checkpointed",
                missing,
            )
        )
    if extra:
        report.problems.append(
            Problem(
                "rows_not_checkpointed",
                stream,
                seq,
                f"{len(extra)} row(s) in the checkpoint's range were never checkpointed",
                extra,
            )
        )


def _still_missing(store: Store, tenant: str, missing: dict[str, str]) -> list[str]:
    """Leaves not found in their range: a duplicate delivery merged away leaves the same row
    (same hash) under another position, which is fine; anything else is changed or deleted."""
    if not missing:
        return []
    spans = sorted({v.split("/")[1] for v in missing.values()})
    rows = store.query_rows(
        f"SELECT DISTINCT {ROW_HASH_SQL} AS h FROM spans WHERE tenant = {{tenant:String}} "
        "AND span_id IN {ids:Array(String)}",
        {"tenant": tenant, "ids": spans},
    )
    present = {r["h"] for r in rows}
    return [span for h, span in missing.items() if h not in present]


def _in_other_checkpoints(
    store: Store, tenant: str, stream: str, seq: int, hashes: list[str]
) -> set[str]:
    """Which of ``hashes`` a checkpoint of the stream other than ``seq`` holds as a leaf."""
    if not hashes:
        return set()
    rows = store.query_rows(
        "SELECT DISTINCT arrayJoin(arrayIntersect(leaves, {h:Array(String)})) AS h "
        f"FROM {LEDGER_TABLE} FINAL WHERE tenant = {{tenant:String}} AND stream = {{stream:String}} "
        "AND seq != {seq:UInt64} AND hasAny(leaves, {h:Array(String)})",
        {"tenant": tenant, "stream": stream, "seq": seq, "h": hashes},
    )
    return {r["h"] for r in rows}


_UNCOVERED = f"""
SELECT s.stream AS stream, count() AS n,
       groupArraySorted({_SAMPLE})(concat(s.trace_id, '/', s.span_id)) AS sample
FROM (
    SELECT concat(source_topic, '/', toString(source_partition)) AS stream, source_offset,
           trace_id, span_id
    FROM spans WHERE tenant = {{tenant:String}}
) AS s
ASOF LEFT JOIN (
    SELECT stream, first_offset, toUInt8(1) AS hit,
           max(top) OVER (PARTITION BY stream ORDER BY first_offset
                          ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS reach
    FROM (
        SELECT stream, first_offset, max(last_offset) AS top
        FROM {LEDGER_TABLE} FINAL
        WHERE tenant = {{tenant:String}}
          AND seq < if(has({{cut_streams:Array(String)}}, stream),
                       {{cut_seqs:Array(UInt64)}}[indexOf({{cut_streams:Array(String)}}, stream)],
                       18446744073709551615)
        GROUP BY stream, first_offset
    )
) AS c
ON s.stream = c.stream AND s.source_offset >= c.first_offset
WHERE c.hit = 0 OR s.source_offset > c.reach
GROUP BY stream
ORDER BY stream
"""
"""Per stream, the spans outside every checkpoint's range that counts (a stream whose chain
breaks counts the checkpoints before the break only). The checkpoint with the greatest first
offset at or below a span's offset (ASOF) carries ``reach``, the furthest last offset of every
checkpoint starting there or before: the span is covered exactly when it lies within reach."""


def _uncovered(store: Store, tenant: str, chains: dict[str, _Chain], report: VerifyReport) -> None:
    """Rows outside every checkpoint: forged rows, or a truncated ledger tail."""
    cut = {s: c.broken_at for s, c in chains.items() if c.broken_at is not None}
    rows = store.query_rows(
        _UNCOVERED,
        {"tenant": tenant, "cut_streams": list(cut), "cut_seqs": list(cut.values())},
    )
    for r in rows:
        stream = r["stream"]
        chain = chains.get(stream)
        checked = (chain.expected if chain else 1) - 1
        report.problems.append(
            Problem(
                "rows_not_checkpointed",
                stream,
                checked + 1,
                f"{r['n']} stored row(s) are covered by no checkpoint "
                "(forged rows, or the ledger tail was truncated)",
                list(r["sample"]),
            )
        )


def _contents(store: Store, tenant: str, report: VerifyReport) -> None:
    """Every content record still hashes to its key."""
    report.contents = int(
        store.query_scalar(
            "SELECT count() FROM contents WHERE tenant = {tenant:String}", {"tenant": tenant}
        )
        or 0
    )
    bad = store.query_rows(
        "SELECT hash FROM contents WHERE tenant = {tenant:String} "
        "AND lower(hex(SHA256(content))) != hash",
        {"tenant": tenant},
    )
    if not bad:
        return
    hashes = [r["hash"] for r in bad]
    users = store.query_rows(
        "SELECT trace_id, span_id FROM spans WHERE tenant = {tenant:String} AND ("
        "has({h:Array(String)}, input_hash) OR has({h:Array(String)}, output_hash) OR "
        "has({h:Array(String)}, system_prompt_hash) OR hasAny({h:Array(String)}, documents.content_hash) OR "
        "hasAny({h:Array(String)}, tool_calls.arguments_hash) OR hasAny({h:Array(String)}, mapValues(attribute_refs)))",
        {"tenant": tenant, "h": hashes},
    )
    report.problems.append(
        Problem(
            "content_changed",
            "contents",
            0,
            f"{len(hashes)} content record(s) no longer match their SHA-256: {hashes[:5]}",
            [f"{u['trace_id']}/{u['span_id']}" for u in users],
        )
    )
