"""``agentledger ledger verify``: the store against its own signed log and the witness.

Streamed in bounded memory, whatever the log's size: the leaf hashes are read ``PAGE`` at a time in
index order into a compact range (O(log n) hashes); the record log's leaves ``VERIFY_PAGE`` at a
time with their stored records; the span leaves, the spans that are no leaf and the contents the
spans reference are checked by the engine, which rebuilds each span's leaf hash itself and returns
only the disagreements (``tlog_checks``: spilling joins under a fixed budget). What is checked,
and the problem kind each failure reports:

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

from agentledger.pipeline.derive.retention import LedgerExemptions
from agentledger.pipeline.derive.tlog_checks import (
    missing_contents,
    span_mismatches,
    unlogged_spans,
)
from agentledger.pipeline.derive.tlog_store import (
    LEAVES_TABLE,
    PAGE,
    latest_checkpoint,
    log_head,
    recompute,
    record_leaf,
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
    """index -> canonical record of the page's record-log leaves, from the stored records that
    still exist (span leaves are checked by the engine: ``tlog_checks``)."""
    out: dict[int, bytes] = {}
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


def _contents(
    store: Store, tenant: str, report: LogReport, wanted: dict[str, int], exempt: LedgerExemptions
) -> None:
    """Each referenced content record exists (or an erasure record lists it) and its text hashes
    to its name."""
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
            if exempt.erased(h):
                continue  # erased on record (retention.LedgerExemptions)
            report.add("content_missing", index, f"content {h} referenced by leaf {index}")
        elif seen[h] != h:
            report.add("content_changed", index, f"content {h} no longer hashes to its name")


def _tree(
    store: Store,
    tenant: str,
    following: int,
    sizes: dict[int, tuple[str, bytes]],
    report: LogReport,
    page: int,
) -> tuple[CompactRange, dict[int, str]]:
    """The leaf hashes in index order, ``page`` at a time, into the compact range: gaps,
    duplicates, the roots at the signed sizes. Returns the range and, for each index stored twice,
    the copy that counts (the first by hash, as the appender's readers order them)."""
    compact = CompactRange()
    firsts: dict[int, str] = {}
    expected, last = 0, ""
    for lo in range(0, following, page):
        table = store.query_arrow(
            f"SELECT leaf_index, leaf_hash FROM {LEAVES_TABLE} WHERE tenant = {{t:String}} "
            "AND leaf_index >= {lo:UInt64} AND leaf_index < {hi:UInt64} ORDER BY leaf_index, leaf_hash",
            {"t": tenant, "lo": lo, "hi": min(following, lo + page)},
        )
        for i, h in zip(table.column(0).to_pylist(), table.column(1).to_pylist()):
            if i < expected:
                report.add("duplicate", i, f"leaf index {i} is stored twice (a fork)")
                firsts.setdefault(i, last)
                continue
            while expected < i:
                report.add("gap", expected, f"leaf index {expected} is missing")
                expected += 1
            expected, last = i + 1, h
            compact.append(bytes.fromhex(h))
            if compact.size in sizes:
                what, signed_root = sizes[compact.size]
                if compact.root() != signed_root:
                    report.add("root_mismatch", compact.size, f"leaves 0..{i} do not give {what}")
    return compact, firsts


def _changed(
    store: Store, tenant: str, report: LogReport, changed: list[tuple[int, str, str]]
) -> None:
    """(index, what, recomputed hash) of leaves whose row hashes otherwise: ``reordered`` when the
    row is another leaf's, else ``updated``."""
    for lo in range(0, len(changed), VERIFY_PAGE):
        chunk = changed[lo : lo + VERIFY_PAGE]
        found = store.query_rows(
            f"SELECT leaf_hash, min(leaf_index) AS i FROM {LEAVES_TABLE} WHERE tenant = {{t:String}} "
            "AND leaf_hash IN {hs:Array(String)} GROUP BY leaf_hash",
            {"t": tenant, "hs": list({again for _, _, again in chunk})},
        )
        by_hash = {r["leaf_hash"]: int(r["i"]) for r in found}
        for i, where, again in chunk:
            other = by_hash.get(again)
            if other is not None and other != i:
                report.add("reordered", i, f"{where} is the record of leaf {other}")
            else:
                report.add("updated", i, f"{where} was changed after it was appended")


def _records(
    store: Store,
    tenant: str,
    report: LogReport,
    exempt: LedgerExemptions,
    firsts: dict[int, str],
    page: int,
) -> None:
    """The leaves of the record log, ``page`` at a time: each recomputed from its stored record,
    and the contents it references."""
    after = -1
    while True:
        rows = store.query_rows(
            f"SELECT leaf_index, kind, record_id, record_key, leaf_hash FROM {LEAVES_TABLE} "
            "WHERE tenant = {t:String} AND kind != 'span' AND leaf_index > {after:Int64} "
            "ORDER BY leaf_index, leaf_hash LIMIT {n:UInt64}",
            {"t": tenant, "after": after, "n": page},
        )
        if not rows:
            return
        after = int(rows[-1]["leaf_index"])
        rows = [r for r in rows if firsts.get(r["leaf_index"], r["leaf_hash"]) == r["leaf_hash"]]
        records = _recomputed(store, tenant, rows)
        contents: dict[str, int] = {}
        changed = []
        for r in rows:
            i = int(r["leaf_index"])
            where = f"{r['kind']} {r['record_id']} (leaf {i})"
            record = records.get(i)
            if record is None:
                report.add("deleted", i, f"{where} is no longer stored")
                continue
            again = leaf_hash(record).hex()
            if again != r["leaf_hash"]:
                changed.append((i, where, again))
            for h in parse_canonical_record(record).content_sha256:
                contents.setdefault(h, i)
        _changed(store, tenant, report, changed)
        _contents(store, tenant, report, contents, exempt)
        if len(rows) < page:
            return


def _spans(
    store: Store,
    tenant: str,
    following: int,
    report: LogReport,
    exempt: LedgerExemptions,
    firsts: dict[int, str],
) -> None:
    """The span leaves, checked by the engine (``tlog_checks``); the rows it leaves to
    ``schemas.ledger`` are rebuilt here."""
    mismatches, total = span_mismatches(store, tenant, following)
    changed = []
    for m in mismatches:
        if firsts.get(m.index, m.leaf_hash) != m.leaf_hash:
            continue  # the second copy of an index: reported as a duplicate
        where = f"span {m.record_id} (leaf {m.index})"
        again = m.again
        if m.found and not again:
            record = recompute(store, tenant, "span", m.record_id, m.record_key)
            again = leaf_hash(record).hex() if record is not None else ""
            if again == m.leaf_hash:
                continue
        if not m.found or not again:
            if not exempt.pruned(m.index):
                report.add("deleted", m.index, f"{where} is no longer stored")
            continue
        changed.append((m.index, where, again))
    _changed(store, tenant, report, changed)
    if total > len(mismatches):  # beyond what was fetched: counted, not classified
        report.counts["updated"] = report.counts.get("updated", 0) + total - len(mismatches)


def _span_contents(
    store: Store, tenant: str, head_us: int, report: LogReport, exempt: LedgerExemptions
) -> None:
    """Contents referenced by the logged spans that are missing or changed (found by the
    engine), reported through ``_contents`` with the first leaf of a span referencing each."""
    found = missing_contents(store, tenant, head_us)
    if not found:
        return
    leaves = store.query_rows(
        f"SELECT record_id, min(leaf_index) AS i FROM {LEAVES_TABLE} WHERE tenant = {{t:String}} "
        "AND kind = 'span' AND record_id IN {ids:Array(String)} GROUP BY record_id",
        {"t": tenant, "ids": list({r["span_id"] for r in found})},
    )
    index = {r["record_id"]: int(r["i"]) for r in leaves}
    _contents(store, tenant, report, {r["h"]: index.get(r["span_id"], -1) for r in found}, exempt)


def _unlogged(store: Store, tenant: str, head_us: int, size: int, report: LogReport) -> None:
    """Stored spans and records that are no leaf: ``inserted`` up to the head, else pending."""
    record_sql = (
        "SELECT min(recorded_at) > fromUnixTimestamp64Micro({h:Int64}) AS late, kind, record_id "
        "FROM records WHERE tenant = {t:String} GROUP BY kind, record_id, body_sha256 "
        f"HAVING (kind, record_id, body_sha256) NOT IN (SELECT kind, record_id, record_key FROM "
        f"{LEAVES_TABLE} WHERE tenant = {{t:String}} AND kind != 'span')"
    )
    params = {"t": tenant, "h": head_us}
    for row in unlogged_spans(store, tenant, head_us, size):
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
    exempt = LedgerExemptions(store, tenant)  # erased contents, pruned spans: on record
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
    compact, firsts = _tree(store, tenant, following, sizes, report, PAGE)
    _records(store, tenant, report, exempt, firsts, page)
    _spans(store, tenant, following, report, exempt, firsts)
    _span_contents(store, tenant, head_us, report, exempt)
    for size, (what, _) in sorted(sizes.items()):
        if size > compact.size:
            report.add(
                "truncated",
                compact.size,
                f"{what} covers {size} leaves, the log holds {compact.size}",
            )
    _unlogged(store, tenant, head_us, following, report)
    return report
