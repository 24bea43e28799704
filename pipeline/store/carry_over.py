"""Migration 0008's data step: the rows of the per-kind tables copied into the record log.

Before 0008 each record kind had a table of its own (0002: ``intents``, ``intent_outcomes``,
``controls``; 0004: ``feedback``, ``datasets``; 0006: ``replay_runs`` with its ``replays``).
Every row stored there becomes a record (``actor`` = ``migration``), its body made of the row's
columns as ``BODY_FIELDS`` names them, ``recorded_at`` the time the collector received or recorded
the row. Every stored row is copied, not only the one ``FINAL`` would have shown (an earlier ask of
a parked intent, an older version of a feedback): those are history, and readers of the record log
compute the current state from it as the old tables' merges did. A replay run's calls (``replays``)
go into its drift report's ``calls``.

Safe to run twice: the same rows make the same records, appended with tokens derived from them,
and readers count a repeated record once. The old tables are left as they were.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterator
from typing import Any, Final

from agentledger.pipeline.store.base import Store
from agentledger.pipeline.store.records import append_records
from agentledger.schemas.records import (
    BODY_FIELDS,
    DRIFT_CALL_FIELDS,
    LATER_FIELDS,
    Actor,
    Record,
    RecordKind,
    make_record,
    rfc3339,
)

__all__ = ["LEGACY_TABLES", "carry_over_records"]

log = logging.getLogger(__name__)

_PAGE: Final = 5000


def _json(text: Any) -> Any:
    """A JSON-text column as its value (text that is not JSON stays text)."""
    if not text:
        return None
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return text


class _Legacy:
    """How one per-kind table's rows become records."""

    def __init__(
        self,
        kind: RecordKind,
        table: str,
        order: str,
        recorded_at: str,
        *,
        renamed: dict[str, str] | None = None,
        json_text: frozenset[str] = frozenset(),
    ) -> None:
        self.kind, self.table, self.order, self.recorded_at = kind, table, order, recorded_at
        self.renamed = renamed or {}  # body field -> legacy column
        self.json_text = json_text
        self.times = {c.name for c in BODY_FIELDS[kind] if c.ch_type.startswith("DateTime64")}

    def select(self) -> str:
        cols = []
        for c in BODY_FIELDS[self.kind]:
            if self.kind is RecordKind.DRIFT_REPORT and c.name == "calls":
                continue
            if c.name in LATER_FIELDS.get(self.kind, {}):
                continue  # not in the per-kind table: make_record gives the earlier value
            source = self.renamed.get(c.name, c.name)
            expr = f"toUnixTimestamp64Nano({source})" if c.name in self.times else f"`{source}`"
            cols.append(f"{expr} AS `{c.name}`")
        return f"SELECT tenant, {', '.join(cols)} FROM {self.table} ORDER BY {self.order}"

    def record(self, row: dict[str, Any]) -> Record:
        tenant = row.pop("tenant")
        for name in self.json_text:
            row[name] = _json(row[name])
        if "metadata" in row:
            row["metadata"] = dict(row["metadata"] or ())
        return make_record(
            self.kind, tenant, row, actor=Actor.MIGRATION, recorded_at_ns=row[self.recorded_at]
        )


LEGACY_TABLES: Final[tuple[_Legacy, ...]] = (
    _Legacy(
        RecordKind.INTENT,
        "intents",
        "tenant, requested_at, intent_id, attempt, received_at",
        "received_at",
    ),
    _Legacy(
        RecordKind.OUTCOME,
        "intent_outcomes",
        "tenant, finished_at, intent_id, received_at",
        "received_at",
    ),
    _Legacy(RecordKind.CONTROL, "controls", "tenant, created_at, control_id", "created_at"),
    _Legacy(
        RecordKind.FEEDBACK,
        "feedback",
        "tenant, trace_id, span_id, name, feedback_id, created_at",
        "created_at",
    ),
    _Legacy(
        RecordKind.DATASET,
        "datasets",
        "tenant, dataset_id, created_at",
        "created_at",
        json_text=frozenset({"filters", "manifest"}),
    ),
    _Legacy(
        RecordKind.DRIFT_REPORT,
        "replay_runs",
        "tenant, created_at, run_id",
        "created_at",
        renamed={"summary": "report"},
        json_text=frozenset({"filter", "summary"}),
    ),
)
"""The per-kind tables of migrations 0002, 0004 and 0006, in the order they are carried over."""


def _pages(store: Store, sql: str) -> Iterator[list[dict[str, Any]]]:
    offset = 0
    while True:
        rows = store.query_rows(f"{sql} LIMIT {_PAGE} OFFSET {offset}")
        if rows:
            yield rows
        if len(rows) < _PAGE:
            return
        offset += _PAGE


def _calls(store: Store, runs: list[dict[str, Any]]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """The stored calls of these replay runs, each once, in the order ``get_report`` listed them."""
    names = [c.name for c in DRIFT_CALL_FIELDS]
    cols = ", ".join(
        "toUnixTimestamp64Nano(source_start_time) AS source_start_time"
        if n == "source_start_time"
        else f"`{n}`"
        for n in names
    )
    rows = store.query_rows(
        f"SELECT tenant, run_id, {cols} FROM replays "
        "WHERE tenant IN {tenants:Array(String)} AND run_id IN {runs:Array(String)} "
        "ORDER BY tenant, run_id, text_similarity, span_id LIMIT 1 BY tenant, run_id, span_id",
        {
            "tenants": sorted({r["tenant"] for r in runs}),
            "runs": sorted({r["run_id"] for r in runs}),
        },
    )
    out: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:
        key = (row.pop("tenant"), row.pop("run_id"))
        row["source_start_time"] = rfc3339(int(row["source_start_time"]), nanos=True)
        row["replayed_answer"] = _json(row["replayed_answer"])
        for name in ("text_similarity", "token_jaccard"):
            if isinstance(row[name], float) and math.isnan(row[name]):
                row[name] = None
        out.setdefault(key, []).append(row)
    return out


def _existing(store: Store) -> set[str]:
    rows = store.query_rows(
        "SELECT name FROM system.tables WHERE database = currentDatabase() "
        "AND name IN {names:Array(String)}",
        {"names": [t.table for t in LEGACY_TABLES] + ["replays"]},
    )
    return {r["name"] for r in rows}


def carry_over_records(store: Store) -> int:
    """Copy every row of the per-kind tables into ``records``; return how many records were made."""
    existing = _existing(store)
    made = 0
    for legacy in LEGACY_TABLES:
        if legacy.table not in existing:
            continue
        for page in _pages(store, legacy.select()):
            if legacy.kind is RecordKind.DRIFT_REPORT:
                calls = _calls(store, page) if "replays" in existing else {}
                for row in page:
                    row["calls"] = calls.get((row["tenant"], row["run_id"]), [])
            records = [legacy.record(row) for row in page]
            append_records(store, records)
            made += len(records)
    if made:
        log.info("carried %d records over from the per-kind tables into the record log", made)
    return made
