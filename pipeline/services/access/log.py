"""The access log: one record per read of content, chained per writer.

Every read of traces, spans, contents, audit reports, dataset exports and the key list appends an
``access`` record before its answer leaves (a read whose entry cannot be stored fails: a read
nobody can see is what this log exists to prevent). Each writer (a collector process, or the CLI
reading a store directly) chains its entries per tenant: an entry's ``prev_sha256`` is the
``body_sha256`` of the writer's previous entry for that tenant, so an entry removed or edited in the
store breaks the chain that ``read_access_log`` checks on every read of the log.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Sequence
from typing import Any

from agentledger.pipeline.store import Store
from agentledger.pipeline.store.records import append_records
from agentledger.schemas.canonical import loads
from agentledger.schemas.read import AccessEntry, AccessLog
from agentledger.schemas.records import RecordKind, body_sha256, make_record

__all__ = ["AccessRecorder", "GENESIS", "read_access_log"]

GENESIS = "0" * 64
"""The ``prev_sha256`` of a writer's first entry for a tenant."""

_MAX_IDS = 1000


class AccessRecorder:
    """Appends access entries for one process; thread-safe (the chain is appended in order)."""

    def __init__(self, store: Store, *, writer: str | None = None) -> None:
        self._store = store
        self.writer = writer or f"w-{uuid.uuid4().hex[:16]}"
        self._heads: dict[str, str] = {}
        self._lock = threading.Lock()

    def record(
        self,
        tenant: str,
        *,
        key_name: str,
        role: str,
        method: str,
        route: str,
        object_ids: Sequence[str] = (),
        rows: int = 0,
    ) -> None:
        """Append one entry; raises StoreError when it cannot be stored (the read then fails)."""
        with self._lock:
            fields = {
                "access_id": uuid.uuid4().hex,
                "accessed_at": time.time_ns(),
                "key_name": key_name,
                "role": role,
                "method": method,
                "route": route,
                "object_ids": [str(i) for i in list(object_ids)[:_MAX_IDS]],
                "rows": max(0, int(rows)),
                "prev_sha256": self._heads.get(tenant, GENESIS),
                "writer": self.writer,
            }
            record = make_record(RecordKind.ACCESS, tenant, fields, actor=key_name)
            append_records(self._store, [record])
            self._heads[tenant] = record.body_sha256


def read_access_log(
    store: Store, tenant: str, *, limit: int, key_name: str | None = None
) -> AccessLog:
    """The newest ``limit`` entries of ``tenant`` (of one key when given), with every chain of the
    tenant checked: each writer's entries must link from ``GENESIS`` one to the next with bodies
    that match their hashes; a changed, removed or inserted entry is named in ``problems``."""
    rows = store.query_rows(
        "SELECT DISTINCT record_id, body, body_sha256 FROM records "
        "WHERE kind = 'access' AND tenant = {t:String} ORDER BY recorded_at, record_id",
        {"t": tenant},
    )
    problems: list[str] = []
    by_writer: dict[str, dict[str, dict[str, Any]]] = {}
    entries: list[AccessEntry] = []
    for row in rows:
        body = loads(row["body"])
        if body_sha256(row["body"]) != row["body_sha256"]:
            problems.append(f"access entry {row['record_id']}: body does not match its hash")
        links = by_writer.setdefault(str(body.get("writer", "")), {})
        if body.get("prev_sha256") in links:
            problems.append(f"access entry {row['record_id']}: a second entry claims its place")
        links[str(body.get("prev_sha256"))] = row
        if key_name is None or body.get("key_name") == key_name:
            entries.append(AccessEntry(**body, body_sha256=row["body_sha256"]))
    for writer, links in by_writer.items():
        head, walked = GENESIS, 0
        while head in links:
            head, walked = links[head]["body_sha256"], walked + 1
        if walked != len(links):
            problems.append(
                f"writer {writer}: {len(links) - walked} of {len(links)} entries are off its "
                "chain (an entry before them is missing or was changed)"
            )
    entries.reverse()
    return AccessLog(entries=entries[:limit], intact=not problems, problems=problems)
