"""``append_records``: the one way records reach the ``records`` table (migration 0008).

Every writer of intents, outcomes, controls, feedback, dataset manifests and drift reports
builds ``Record`` s (``agentledger.schemas.records.make_record``) and appends them here; nothing
else inserts into ``records`` and nothing updates or deletes what is there.

Rows go in as ``INSERT ... FORMAT JSONEachRow`` with the rows inline: for the one-row inserts of
governed tool calls that is about three times faster in embedded ClickHouse than reading an Arrow
batch through the ``Python()`` table function, and the JSON encoder (not string splicing) is what
quotes the values. Every insert carries a deduplication token: the caller's (a Kafka batch's
offsets), else one derived from the records themselves, so that appending the same records again
inside the table's deduplication window stores nothing new (readers count a repeat once anyway).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Sequence

import orjson

from agentledger.pipeline.store.base import Store, StoreRejected
from agentledger.schemas.records import RECORDS_TABLE, Record

__all__ = ["append_records", "records_token"]

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


def _utc(ns: int) -> str:
    return (_EPOCH + dt.timedelta(microseconds=ns // 1000)).strftime("%Y-%m-%d %H:%M:%S.%f")


def records_token(records: Sequence[Record]) -> str:
    """A deduplication token naming exactly these records (kind, tenant, id and body hash, in order):
    the same records appended again get the same token, any other records another one."""
    digest = hashlib.sha256()
    for r in records:
        digest.update(
            f"{r.kind.value}\x1f{r.tenant}\x1f{r.record_id}\x1f{r.body_sha256}\n".encode()
        )
    return f"records-{digest.hexdigest()[:40]}"


def _line(record: Record) -> bytes:
    row = {
        "tenant": record.tenant,
        "kind": record.kind.value,
        "recorded_at": _utc(record.recorded_at_ns),
        "record_id": record.record_id,
        "actor": record.actor,
        "body": record.body,
        "body_sha256": record.body_sha256,
    }
    try:
        return orjson.dumps(row)
    except TypeError:  # a lone surrogate in an id or actor (valid in a Python str, not in UTF-8)
        return json.dumps(row, ensure_ascii=False).encode("utf-8", "replace")


def append_records(
    store: Store, records: Sequence[Record], *, dedup_token: str | None = None
) -> None:
    """Append ``records`` to the ``records`` table in one insert, synchronously.

    Safe to repeat: a second append of the same records (same token) inside the deduplication
    window is dropped. ``dedup_token`` must name exactly these records (a Kafka batch's offsets
    do); by default the token is derived from them. Raises StoreError.
    """
    if not records:
        return
    token = dedup_token or records_token(records)
    if "'" in token or "\\" in token:
        raise StoreRejected(f"invalid deduplication token {token!r}")
    data = b"\n".join(_line(r) for r in records).decode("utf-8")
    store.command(
        f"INSERT INTO {RECORDS_TABLE} SETTINGS async_insert=0, insert_deduplicate=1, "
        f"insert_deduplication_token='{token}' FORMAT JSONEachRow\n{data}"
    )
