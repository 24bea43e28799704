"""Retention: pruning each tenant's spans past its retention, except what a legal hold keeps, and
what ``ledger verify`` excuses because a record says it was erased or pruned.

Why a job and not a ClickHouse TTL on ``spans`` and ``contents``: a TTL deletes inside background
merges, whenever they run. It cannot skip the rows of a held trace, session or principal (its
``DELETE WHERE`` sees the row only, not the holds, which change at run time), it leaves no record
of what it removed (so ``verify`` would report every pruned leaf as deleted), and it cannot keep a
content that a younger span still references. So the job decides and records, and ClickHouse does
the deleting with mutations awaited like an erasure's (``mutations_sync = 2``). Each pass, per
tenant with a retention of N > 0 days (migration 0018, the latest setting):

1. cutoff = now - N days; the spans to prune are those ingested before it that no active hold
   covers (by trace id, session id or principal id);
2. the contents to prune are those every referencing span of which is pruned;
3. a ``retention_expiry`` record (cutoff, N, counts) is appended first, then the spans, their log
   records and conflicts and those contents are deleted. A pass that finds nothing writes nothing,
   so a second run converges (the ``Job`` contract).

A span's ledger leaf keeps its hash in ``ledger_leaves``; ``LedgerExemptions.pruned`` tells
``verify`` that a span leaf whose row is gone was pruned when a retention_expiry record's cutoff
is after the leaf's source time (the span's ingest time), unless a trace hold placed before the
last pass still covers it (retention kept that span, so its absence is a deletion; a session or
principal hold cannot be checked so, as those ids are in the deleted row only). The contents of a pruned span are not
checked (its leaf is not recomputed); an erased content is excused when an erasure record lists
its hash (``LedgerExemptions.erased``).
"""

from __future__ import annotations

import logging
import secrets
import time
from datetime import datetime, timedelta, timezone
from typing import Any, Final

from agentledger.pipeline.derive.base import Job, JobResult
from agentledger.pipeline.store import Store
from agentledger.pipeline.store.records import append_records
from agentledger.schemas.records import VIEWS, Actor, RecordKind, make_record, rfc3339

__all__ = [
    "EVERY_S",
    "HOLDS_TABLE",
    "POLICIES_TABLE",
    "LedgerExemptions",
    "RetentionJob",
    "active_holds_sql",
    "prune",
    "retention_days",
]

log = logging.getLogger(__name__)

POLICIES_TABLE: Final = "retention_policies"
"""Insert-only retention settings (migration 0018): the latest row of a tenant is in force."""
HOLDS_TABLE: Final = "legal_holds"
"""Insert-only legal holds (migration 0018): the latest row of a hold id is in force."""
HOLD_COLUMNS: Final = {"trace": "trace_id", "session": "session_id", "principal": "principal_id"}
"""A hold's scope -> the spans column its target is matched against."""
EVERY_S: Final = 3600.0
"""How often the background job prunes (the scheduler runs it each interval; it skips the rest)."""
BLOCK: Final = 5_000
"""Leaf indices whose pruned state ``LedgerExemptions`` asks the store about at once."""

_SYNC: Final = " SETTINGS mutations_sync = 2"
_REFS: Final = (
    "arrayFilter(x -> x != '', arrayConcat([input_hash, output_hash, system_prompt_hash, "
    "tools_hash, raw_request_hash], arrayMap(c -> tupleElement(c, 'arguments_hash'), tool_calls), "
    "arrayMap(d -> tupleElement(d, 'content_hash'), documents), mapValues(attribute_refs)))"
)


def active_holds_sql(scope: str) -> str:
    """The targets of the tenant's (``{t:String}``) active holds of one scope, as a subquery."""
    return (
        f"SELECT target FROM (SELECT argMax(scope, at) AS scope, argMax(target, at) AS target, "
        f"argMax(active, at) AS active FROM {HOLDS_TABLE} WHERE tenant = {{t:String}} "
        f"GROUP BY hold_id) WHERE active AND scope = '{scope}'"
    )


_HELD: Final = " OR ".join(
    f"`{column}` IN ({active_holds_sql(scope)})" for scope, column in HOLD_COLUMNS.items()
)
_EXPIRED: Final = "ingest_time < fromUnixTimestamp64Micro({c:Int64})"
_PRUNE: Final = f"tenant = {{t:String}} AND {_EXPIRED} AND NOT ({_HELD})"
_ONLY_PRUNED: Final = (
    f"SELECT h FROM spans ARRAY JOIN {_REFS} AS h WHERE tenant = {{t:String}} "
    f"GROUP BY h HAVING min({_EXPIRED} AND NOT ({_HELD})) = 1"
)
"""The contents every span that references them is to be pruned (a subquery, no hash list)."""


def retention_days(store: Store) -> dict[str, int]:
    """tenant -> the retention in force (days; 0 keeps forever), for every tenant that set one."""
    rows = store.query_rows(
        f"SELECT tenant, argMax(days, set_at) AS days FROM {POLICIES_TABLE} GROUP BY tenant"
    )
    return {str(r["tenant"]): int(r["days"]) for r in rows}


def prune(
    store: Store, tenant: str, days: int, now: datetime, *, actor: str = Actor.PIPELINE
) -> dict[str, Any]:
    """One pass over one tenant (module docstring); returns the counts (``RetentionPass``'s
    fields). ``days`` <= 0 prunes nothing."""
    answer: dict[str, Any] = {"tenant": tenant, "retention_days": days}
    if days <= 0:
        return answer
    cutoff = now - timedelta(days=days)
    cutoff_us = int(cutoff.timestamp() * 1_000_000)
    params = {"t": tenant, "c": cutoff_us}
    counts = store.query_rows(
        f"SELECT countIf(NOT ({_HELD})) AS pruned, countIf({_HELD}) AS held FROM spans FINAL "
        f"WHERE tenant = {{t:String}} AND {_EXPIRED}",
        params,
    )[0]
    answer.update(cutoff=rfc3339(cutoff), held_spans=int(counts["held"]))
    if not int(counts["pruned"]):
        return answer
    contents = int(store.query_scalar(f"SELECT count() FROM ({_ONLY_PRUNED})", params))
    expiry_id = secrets.token_hex(16)
    record = make_record(
        RecordKind.RETENTION_EXPIRY,
        tenant,
        {
            "expiry_id": expiry_id,
            "retention_days": days,
            "cutoff": cutoff,
            "spans": int(counts["pruned"]),
            "contents": contents,
        },
        actor=actor,
    )
    append_records(store, [record])
    store.command(
        "ALTER TABLE logs DELETE WHERE tenant = {t:String} AND (trace_id, span_id) IN "
        f"(SELECT trace_id, span_id FROM spans WHERE {_PRUNE})" + _SYNC,
        params,
    )
    store.command(
        "ALTER TABLE span_conflicts DELETE WHERE tenant = {t:String} AND (trace_id, span_id) IN "
        f"(SELECT trace_id, span_id FROM spans WHERE {_PRUNE})" + _SYNC,
        params,
    )
    if contents:  # before the spans: the subquery reads which spans reference what
        store.command(
            f"ALTER TABLE contents DELETE WHERE tenant = {{t:String}} AND hash IN ({_ONLY_PRUNED})"
            + _SYNC,
            params,
        )
    store.command(f"ALTER TABLE spans DELETE WHERE {_PRUNE}" + _SYNC, params)
    answer.update(spans=int(counts["pruned"]), contents=contents, expiry_id=expiry_id)
    log.info(
        "retention of %s (%d days): pruned %d spans and %d contents before %s; %d held",
        tenant,
        days,
        answer["spans"],
        answer["contents"],
        answer["cutoff"],
        answer["held_spans"],
    )
    return answer


class RetentionJob(Job):
    """Prunes every tenant that set a retention (``prune``), each pass of the scheduler."""

    name = "retention"

    def __init__(self, every_s: float = 0.0) -> None:
        self.every_s = every_s
        self._last: datetime | None = None

    def run(self, store: Store, now: datetime) -> JobResult:
        """One pass, unless the last pass of this job ran less than ``every_s`` ago: retention is
        counted in days, and each pass reads the tenant's old spans (``ingest_time`` is not in
        the table's key), so the scheduler's minute would be wasted work."""
        if self._last is not None and (now - self._last).total_seconds() < self.every_s:
            return JobResult(self.name, info={"skipped": True})
        self._last = now
        started = time.monotonic()
        passes = [prune(store, t, d, now) for t, d in sorted(retention_days(store).items())]
        return JobResult(
            self.name,
            rows_written=sum(1 for p in passes if p.get("expiry_id")),
            seconds=time.monotonic() - started,
            info={"pruned": {p["tenant"]: p.get("spans", 0) for p in passes}},
        )


class LedgerExemptions:
    """What ``ledger verify`` must not call tampering: a content an erasure record lists, and a
    span leaf pruned by retention. Asked only about what is missing, so a log with nothing erased
    or pruned costs one small query at most; memory: the erased hashes and one ``BLOCK`` of
    pruned indices."""

    def __init__(self, store: Store, tenant: str) -> None:
        self.store = store
        self.tenant = tenant
        self._erased: set[str] | None = None
        self._cutoff_us: int | None = None
        self._last_pass_us = 0
        self._block: tuple[int, set[int]] = (-1, set())

    def erased(self, content_hash: str) -> bool:
        """An erasure record of the tenant lists ``content_hash``."""
        if self._erased is None:
            rows = self.store.query_rows(
                f"SELECT DISTINCT h FROM {VIEWS[RecordKind.ERASURE]} "
                "ARRAY JOIN content_sha256 AS h WHERE tenant = {t:String}",
                {"t": self.tenant},
            )
            self._erased = {str(r["h"]) for r in rows}
        return content_hash in self._erased

    def pruned(self, leaf_index: int) -> bool:
        """The leaf is a span ingested before the cutoff of a retention_expiry record, and not
        of a trace held since before the last pass (retention kept that one: its absence is a
        deletion)."""
        if self._cutoff_us is None:
            row = self.store.query_rows(
                "SELECT toUnixTimestamp64Micro(max(cutoff)) AS c, "
                "toUnixTimestamp64Micro(max(recorded_at)) AS at FROM "
                f"{VIEWS[RecordKind.RETENTION_EXPIRY]} WHERE tenant = {{t:String}}",
                {"t": self.tenant},
            )[0]
            self._cutoff_us, self._last_pass_us = int(row["c"] or 0), int(row["at"] or 0)
        if not self._cutoff_us:
            return False
        block = leaf_index // BLOCK
        if self._block[0] != block:
            rows = self.store.query_rows(
                "SELECT leaf_index FROM ledger_leaves WHERE tenant = {t:String} AND kind = 'span' "
                "AND leaf_index >= {lo:UInt64} AND leaf_index < {hi:UInt64} "
                "AND source_time < fromUnixTimestamp64Micro({c:Int64}) AND record_key NOT IN ("
                f"SELECT target FROM (SELECT argMax(scope, at) AS scope, argMax(target, at) AS "
                f"target, argMax(active, at) AS active, min(at) AS placed FROM {HOLDS_TABLE} "
                "WHERE tenant = {t:String} GROUP BY hold_id) WHERE active AND scope = 'trace' "
                "AND placed < fromUnixTimestamp64Micro({p:Int64}))",
                {
                    "t": self.tenant,
                    "lo": block * BLOCK,
                    "hi": (block + 1) * BLOCK,
                    "c": self._cutoff_us,
                    "p": self._last_pass_us,
                },
            )
            self._block = (block, {int(r["leaf_index"]) for r in rows})
        return leaf_index in self._block[1]


def utc_now() -> datetime:
    """The clock a manual pass uses."""
    return datetime.now(timezone.utc)
