"""``agentledger ledger verify``: the store against its own signed log and the witness.

Streamed, ``PAGE`` leaves at a time in index order (memory: one page of leaves and their stored
rows, O(log n) hashes of the root); the two questions that look across the whole log (stored rows
that are no leaf, and each leaf's rows) are asked of the store per page or as one anti-join
answered with a count and a sample. What is checked, and the problem kind each failure reports:

* ``gap`` / ``duplicate``: the leaf indices are not 0..n-1 each once (a fork, a deleted leaf row);
* ``updated``: a stored span or record no longer hashes to its leaf (changed after it was
  appended); ``deleted``: a leaf's span or record is gone; ``reordered``: the row at one index is
  the leaf of another (the leaf rows' ids swapped, the hashes left in place);
* ``inserted``: a span or record older than the log's head that is no leaf (added behind the
  appender's back, or arrived later than ``tlog_job.LATE_S``); newer ones are ``pending``, not a
  problem (the next pass appends them);
* ``content_missing`` / ``content_changed``: a content record a span leaf references is not stored,
  or its text no longer hashes to its name;
* ``unknown_key`` / ``bad_signature``: the latest checkpoint (or the witnessed one) is not signed by
  a trusted key: a log rebuilt and re-signed with a fresh key fails here;
* ``root_mismatch``: the stored leaf hashes do not give the signed root at the signed size
  (leaves rewritten); ``truncated``: the log holds fewer leaves than a signed or witnessed
  checkpoint covers; ``witness_mismatch``: the store's log is not the witnessed one (restored from
  an older backup, or rebuilt).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any, Final

from agentledger.pipeline.derive.tlog_store import (
    LEAVES_TABLE,
    SPAN_SELECT,
    latest_checkpoint,
    log_head,
    record_leaf,
    span_leaf,
)
from agentledger.pipeline.derive.tlog_witness import note_checkpoint
from agentledger.pipeline.store import Store
from agentledger.pipeline.tlog import CompactRange, NoteError, Verifier, leaf_hash, open_note
from agentledger.schemas.ledger import canonical_record, parse_canonical_record

__all__ = ["VERIFY_PAGE", "LogProblem", "LogReport", "verify_log"]

SAMPLE: Final = 20
"""Problems listed per kind (all are counted)."""
VERIFY_PAGE: Final = 5_000
"""Leaves checked per step: their rows are fetched by id lists passed as query parameters, which
cost more than linearly in their length (a page of 100,000 took minutes where 20 of 5,000 take
seconds)."""


@dataclasses.dataclass
class LogProblem:
    """One finding: its kind (module docstring), the leaf index (or -1) and what is wrong."""

    kind: str
    index: int
    detail: str


@dataclasses.dataclass
class LogReport:
    """What ``verify_log`` found."""

    tenant: str
    leaves: int = 0
    checkpoint_size: int = 0
    witnessed_size: int | None = None
    pending: int = 0
    counts: dict[str, int] = dataclasses.field(default_factory=dict)
    problems: list[LogProblem] = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        """No problem of any kind."""
        return not self.counts

    def add(self, kind: str, index: int, detail: str) -> None:
        """Count a problem; keep the first ``SAMPLE`` of its kind."""
        self.counts[kind] = self.counts.get(kind, 0) + 1
        if self.counts[kind] <= SAMPLE:
            self.problems.append(LogProblem(kind, index, detail))

    def as_dict(self) -> dict[str, Any]:
        """JSON-able."""
        return {**dataclasses.asdict(self), "ok": self.ok}


def _open(report: LogReport, note: str, what: str, keys: list[Verifier]) -> bool:
    try:
        open_note(note, keys)
    except NoteError as exc:
        kind = "bad_signature" if "invalid signature" in str(exc) else "unknown_key"
        signers = ", ".join(
            line.split(" ")[1] for line in note.splitlines() if line.startswith("\u2014 ")
        )
        report.add(kind, -1, f"{what} (signed by {signers}): {exc}")
        return False
    return True


def _recomputed(store: Store, tenant: str, rows: list[dict[str, Any]]) -> dict[int, bytes]:
    """index -> canonical record of the page's leaves, from the stored rows that still exist."""
    out: dict[int, bytes] = {}
    spans = [r for r in rows if r["kind"] == "span"]
    if spans:
        found = store.query_rows(
            f"SELECT {SPAN_SELECT}, trace_id AS k FROM spans FINAL WHERE tenant = {{t:String}} "
            "AND span_id IN {ids:Array(String)} AND trace_id IN {keys:Array(String)}",
            {
                "t": tenant,
                "ids": [r["record_id"] for r in spans],
                "keys": list({r["record_key"] for r in spans}),
            },
        )
        by_key = {(f["span_id"], f["k"]): f for f in found}
        for r in spans:
            row = by_key.get((r["record_id"], r["record_key"]))
            if row is not None:
                out[r["leaf_index"]] = canonical_record(span_leaf(tenant, row))
    others = [r for r in rows if r["kind"] != "span"]
    if others:
        found = store.query_rows(
            "SELECT kind, record_id, body_sha256, min(toUnixTimestamp64Micro(recorded_at)) AS t_us,"
            " argMin(actor, recorded_at) AS actor, any(body) AS body FROM records "
            "WHERE tenant = {t:String} AND record_id IN {ids:Array(String)} "
            "GROUP BY kind, record_id, body_sha256",
            {"t": tenant, "ids": list({r["record_id"] for r in others})},
        )
        by_id = {(f["kind"], f["record_id"], f["body_sha256"]): f for f in found}
        for r in others:
            row = by_id.get((r["kind"], r["record_id"], r["record_key"]))
            if row is not None:
                try:
                    out[r["leaf_index"]] = canonical_record(record_leaf(tenant, row))
                except ValueError:
                    pass  # no longer a valid record: reported as updated
    return out


def _contents(store: Store, tenant: str, report: LogReport, wanted: dict[str, int]) -> None:
    """Each referenced content record exists and its text hashes to its name."""
    if not wanted:
        return
    found = store.query_rows(
        "SELECT hash, lower(hex(SHA256(any(content)))) AS digest FROM contents "
        "WHERE tenant = {t:String} AND hash IN {hs:Array(String)} GROUP BY hash",
        {"t": tenant, "hs": list(wanted)},
    )
    seen = {f["hash"]: f["digest"] for f in found}
    for h, index in sorted(wanted.items(), key=lambda x: x[1]):
        if h not in seen:
            report.add("content_missing", index, f"content {h} referenced by leaf {index}")
        elif seen[h] != h:
            report.add("content_changed", index, f"content {h} no longer hashes to its name")


def _page(
    store: Store, tenant: str, lo: int, hi: int
) -> list[dict[str, Any]]:  # one page of leaf rows
    return store.query_rows(
        f"SELECT leaf_index, kind, record_id, record_key, leaf_hash FROM {LEAVES_TABLE} "
        "WHERE tenant = {t:String} AND leaf_index >= {lo:UInt64} AND leaf_index < {hi:UInt64} "
        "ORDER BY leaf_index, leaf_hash",
        {"t": tenant, "lo": lo, "hi": hi},
    )


def _unlogged(store: Store, tenant: str, head_us: int, report: LogReport) -> None:
    """Stored spans and records that are no leaf: ``inserted`` up to the head, else pending."""
    span_sql = (
        "SELECT ingest_time > fromUnixTimestamp64Micro({h:Int64}) AS late, count() AS n, "
        "groupArray(5)(span_id) AS ids FROM spans FINAL WHERE tenant = {t:String} AND "
        f"(trace_id, span_id) NOT IN (SELECT record_key, record_id FROM {LEAVES_TABLE} "
        "WHERE tenant = {t:String} AND kind = 'span') GROUP BY late"
    )
    record_sql = (
        "SELECT min(recorded_at) > fromUnixTimestamp64Micro({h:Int64}) AS late, kind, record_id "
        "FROM records WHERE tenant = {t:String} GROUP BY kind, record_id, body_sha256 "
        f"HAVING (kind, record_id, body_sha256) NOT IN (SELECT kind, record_id, record_key FROM "
        f"{LEAVES_TABLE} WHERE tenant = {{t:String}} AND kind != 'span')"
    )
    params = {"t": tenant, "h": head_us}
    for row in store.query_rows(span_sql, params):
        if row["late"]:
            report.pending += int(row["n"])
        else:
            for span_id in row["ids"]:
                report.add("inserted", -1, f"span {span_id} is stored but no leaf")
            report.counts["inserted"] += int(row["n"]) - len(row["ids"])
    for row in store.query_rows(
        f"SELECT late, kind, record_id FROM ({record_sql}) ORDER BY kind, record_id", params
    ):
        if row["late"]:
            report.pending += 1
        else:
            report.add("inserted", -1, f"{row['kind']} {row['record_id']} is stored but no leaf")


def verify_log(
    store: Store,
    tenant: str,
    verifiers: Iterable[Verifier],
    witnessed: str | None = None,
    *,
    page: int = VERIFY_PAGE,
) -> LogReport:
    """Check the tenant's log (module docstring) with the trusted ``verifiers`` (the current
    and retired public keys) and the ``witnessed`` signed note, when there is one."""
    keys = list(verifiers)
    report = LogReport(tenant)
    stored = latest_checkpoint(store, tenant)
    sizes: dict[int, tuple[str, bytes]] = {}
    if stored is not None:
        report.checkpoint_size = stored.tree_size
        if _open(report, stored.note, "the latest checkpoint", keys):
            signed = note_checkpoint(stored.note)
            sizes[signed.size] = ("the latest signed checkpoint", signed.root_hash)
    if witnessed is not None:
        seen = note_checkpoint(witnessed)
        report.witnessed_size = seen.size
        if _open(report, witnessed, "the witnessed checkpoint", keys):
            if seen.size in sizes and sizes[seen.size][1] != seen.root_hash:
                report.add("witness_mismatch", -1, f"two roots at size {seen.size}")
            sizes.setdefault(seen.size, ("the witnessed checkpoint", seen.root_hash))
        if stored is None or stored.tree_size < seen.size:
            report.add(
                "witness_mismatch",
                -1,
                f"the witness saw size {seen.size}, the store signs {report.checkpoint_size}",
            )
    count, following, head_us = log_head(store, tenant)
    report.leaves = count
    compact = CompactRange()
    expected = 0
    for lo in range(0, following, page):
        rows = _page(store, tenant, lo, min(following, lo + page))
        firsts: list[dict[str, Any]] = []
        for r in rows:
            i = int(r["leaf_index"])
            if i < expected:
                report.add("duplicate", i, f"leaf index {i} is stored twice (a fork)")
                continue
            while expected < i:
                report.add("gap", expected, f"leaf index {expected} is missing")
                expected += 1
            firsts.append(r)
            expected += 1
        records = _recomputed(store, tenant, firsts)
        by_hash = {r["leaf_hash"]: int(r["leaf_index"]) for r in firsts}
        contents: dict[str, int] = {}
        for r in firsts:
            i, stored_hash = int(r["leaf_index"]), r["leaf_hash"]
            compact.append(bytes.fromhex(stored_hash))
            if compact.size in sizes:
                what, signed_root = sizes[compact.size]
                if compact.root() != signed_root:
                    report.add("root_mismatch", compact.size, f"leaves 0..{i} do not give {what}")
            record = records.get(i)
            where = f"{r['kind']} {r['record_id']} (leaf {i})"
            if record is None:
                report.add("deleted", i, f"{where} is no longer stored")
                continue
            again = leaf_hash(record).hex()
            if again != stored_hash:
                other = by_hash.get(again)
                if other is not None:
                    report.add("reordered", i, f"{where} is the record of leaf {other}")
                else:
                    report.add("updated", i, f"{where} was changed after it was appended")
            for h in parse_canonical_record(record).content_sha256:
                contents.setdefault(h, i)
        _contents(store, tenant, report, contents)
    for size, (what, _) in sorted(sizes.items()):
        if size > compact.size:
            report.add(
                "truncated",
                compact.size,
                f"{what} covers {size} leaves, the log holds {compact.size}",
            )
    _unlogged(store, tenant, head_us, report)
    return report
