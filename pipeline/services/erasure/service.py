"""Erasing a data subject (GDPR art. 17) without breaking the ledger.

Physical deletion, not crypto-shredding: content is stored once by hash and read by every audit,
replay and export as plain columns, so per-subject data keys would put a decryption step (and a
key lookup) in every one of those reads; an erasure is rare and may take seconds. Every statement
is a ClickHouse mutation awaited with ``mutations_sync = 2`` (the parts are rewritten before the
call returns, on chDB and on a server alike), so when ``erase`` returns no table holds the text.

What is removed, for the subject's spans (found by the column the subject key names):

* the content records only they reference (``contents``): a content another subject's span
  references too (a shared system prompt) is not the subject's and stays (``shared_kept``);
* their examples in the dataset files exported on this machine (``.datasets``);
* every copy of text on the span rows: previews, status message, events and attribute values
  (keys kept). None of these is in a span's ledger leaf, which lists contents by hash only,
  so the spans still verify;
* conflicting re-sends of those spans (``span_conflicts``) and their OTLP log records (``logs``:
  the prompt and completion events).

Then an ``erasure`` record is appended (who: the caller's key name; when; why; the subject's value
keyed with the tenant's erasure key, HMAC-SHA256, so a leaf does not confirm a guessed id; the
erased hashes), which the ledger appends as a leaf: ``verify`` reads it to
tell an erased content from a deleted one (``pipeline.derive.retention.LedgerExemptions``). The
record is written first, so an erasure interrupted half-way leaves a record and text to be erased
by running it again, never missing text that no record explains.

Not erased: the subject's id in the span columns (a leaf field: it is what the erasure is
recorded against, by hash), governance records (intents' arguments, outcomes' results, feedback
comments are ledger leaves whose body is their text; a change would read as tampering), and
Kafka topics (bounded by the topic's retention).
"""

from __future__ import annotations

import datetime as _dt
import logging
import secrets
import time
from collections.abc import Iterable
from typing import Any, Final

import pyarrow as pa

from agentledger.pipeline.normalize.logs import genai_messages
from agentledger.pipeline.services.erasure.datasets import scrub_datasets
from agentledger.pipeline.services.erasure.subject import Subject
from agentledger.pipeline.services.span_logs import log_events, span_logs
from agentledger.pipeline.store import Store
from agentledger.pipeline.store.records import append_records
from agentledger.schemas.canonical import canonical_json, content_hash
from agentledger.schemas.read.erasures import ErasureResult
from agentledger.schemas.records import VIEWS, RecordKind, make_record, rfc3339

__all__ = ["REFERENCED_SQL", "erase", "erasure_key"]

log = logging.getLogger(__name__)

REFERENCED_SQL: Final = (
    "arrayFilter(x -> x != '', arrayConcat([input_hash, output_hash, system_prompt_hash, "
    "tools_hash, raw_request_hash], arrayMap(c -> tupleElement(c, 'arguments_hash'), tool_calls), "
    "arrayMap(d -> tupleElement(d, 'content_hash'), documents), mapValues(attribute_refs)))"
)
"""Every content hash a span row references (what its ledger leaf lists)."""
_SYNC: Final = " SETTINGS mutations_sync = 2"
_ERASURES: Final = VIEWS[RecordKind.ERASURE]
_KEY_SCHEMA: Final = pa.schema(
    [
        ("tenant", pa.string()),
        ("key_hex", pa.string()),
        ("created_at", pa.timestamp("us", tz="UTC")),
    ]
)


def _where(subject: Subject) -> str:
    # the column comes from SUBJECT_KEYS (a fixed set), the value is a bound parameter
    return f"tenant = {{t:String}} AND `{subject.column}` = {{v:String}}"


def erasure_key(store: Store, tenant: str) -> bytes:
    """The tenant's erasure key (migration 0019), made on first use; the first row wins, so two
    processes making one at once end up using the same."""
    sql = (
        "SELECT key_hex FROM erasure_keys WHERE tenant = {t:String} "
        "ORDER BY created_at, key_hex LIMIT 1"
    )
    found = store.query_scalar(sql, {"t": tenant})
    if found is None:
        row = {
            "tenant": [tenant],
            "key_hex": [secrets.token_hex(32)],
            "created_at": [time.time_ns() // 1000],
        }
        store.insert_arrow("erasure_keys", pa.table(row, schema=_KEY_SCHEMA))
        found = store.query_scalar(sql, {"t": tenant})
    return bytes.fromhex(str(found))


def _referenced(store: Store, tenant: str, subject: Subject) -> tuple[int, int, list[str]]:
    """(the subject's spans, the contents they and their logs reference, of those the ones no
    other span references): one pass over the tenant's references, no hash lists sent along (a
    long array parameter costs the engine more than linearly)."""
    params: dict[str, Any] = {"t": tenant, "v": subject.value}
    spans = int(
        store.query_scalar(f"SELECT count() FROM spans FINAL WHERE {_where(subject)}", params)
    )
    params["built"] = sorted(_log_messages(store, tenant, subject))  # a few per span with logs
    rows = store.query_rows(
        f"SELECT h, min(mine) AS only FROM (SELECT arrayJoin({REFERENCED_SQL}) AS h, "
        f"`{subject.column}` = {{v:String}} AS mine FROM spans WHERE tenant = {{t:String}} "
        "UNION ALL SELECT arrayJoin(arrayFilter(x -> x != '', arrayConcat([body_hash], "
        "mapValues(attribute_refs)))) AS h, 1 AS mine FROM logs "
        "WHERE tenant = {t:String} AND (trace_id, span_id) IN (SELECT trace_id, span_id FROM "
        f"spans WHERE {_where(subject)}) UNION ALL SELECT arrayJoin({{built:Array(String)}}) "
        "AS h, 1 AS mine) GROUP BY h HAVING max(mine) = 1",
        params,
    )
    return spans, len(rows), sorted(str(r["h"]) for r in rows if r["only"])


def _log_messages(store: Store, tenant: str, subject: Subject) -> set[str]:
    """The message contents built from the GenAI log events of the subject's spans (the logs
    normalizer stores them so that the read side's hashes resolve): recomputed as the read side
    computes them, since no row references them."""
    spans = store.query_rows(
        f"SELECT DISTINCT trace_id, span_id FROM spans WHERE {_where(subject)} AND (trace_id, "
        "span_id) IN (SELECT trace_id, span_id FROM logs WHERE tenant = {t:String})",
        {"t": tenant, "v": subject.value},
    )
    if not spans:
        return set()
    logs = span_logs(store, tenant, [r["trace_id"] for r in spans], [r["span_id"] for r in spans])

    def fetch(hashes: Iterable[str]) -> dict[str, dict[str, Any]]:
        rows = store.query_rows(
            "SELECT hash, kind, content FROM contents WHERE tenant = {t:String} "
            "AND hash IN {hs:Array(String)}",
            {"t": tenant, "hs": sorted(set(hashes))},
        )
        return {str(r["hash"]): r for r in rows}

    found: set[str] = set()
    for rows in logs.values():
        for messages in genai_messages(log_events(rows, fetch)):
            if messages is not None:
                found.add(content_hash(canonical_json(messages)))
    return found


def erase(store: Store, tenant: str, subject: Subject, reason: str, *, actor: str) -> ErasureResult:
    """Erase the subject's content (module docstring) and record it as ``actor`` (the caller's
    key name). Raises ValueError for an empty reason; StoreError from the store."""
    reason = reason.strip()
    if not reason:
        raise ValueError("an erasure needs a reason: it is kept in the ledger")
    spans, referenced, erased = _referenced(store, tenant, subject)
    params: dict[str, Any] = {"t": tenant, "v": subject.value}
    files = scrub_datasets(
        store, tenant, f"SELECT span_id FROM spans WHERE {_where(subject)}", params
    )
    erasure_id = secrets.token_hex(16)
    subject_hash = subject.keyed_sha256(erasure_key(store, tenant))
    record = make_record(
        RecordKind.ERASURE,
        tenant,
        {
            "erasure_id": erasure_id,
            "subject_attribute": subject.key,
            "subject_sha256": subject_hash,
            "reason": reason,
            "contents": len(erased),
            "content_sha256": erased,
        },
        actor=actor,
    )
    append_records(store, [record])
    logs = int(
        store.query_scalar(
            "SELECT count() FROM logs WHERE tenant = {t:String} AND (trace_id, span_id) IN "
            f"(SELECT trace_id, span_id FROM spans WHERE {_where(subject)})",
            params,
        )
        or 0
    )
    if logs:
        store.command(
            "ALTER TABLE logs DELETE WHERE tenant = {t:String} AND (trace_id, span_id) IN "
            f"(SELECT trace_id, span_id FROM spans WHERE {_where(subject)})" + _SYNC,
            params,
        )
    if erased:  # exactly the hashes the record lists, read back from it
        store.command(
            "ALTER TABLE contents DELETE WHERE tenant = {t:String} AND hash IN (SELECT "
            f"arrayJoin(content_sha256) FROM {_ERASURES} WHERE tenant = {{t:String}} AND "
            "erasure_id = {id:String})" + _SYNC,
            {"t": tenant, "id": erasure_id},
        )
    store.command(f"ALTER TABLE span_conflicts DELETE WHERE {_where(subject)}" + _SYNC, params)
    if spans:
        store.command(
            "ALTER TABLE spans UPDATE input_preview = '', output_preview = '', "
            "status_message = '', events = '', attributes = mapApply((k, x) -> (k, ''), "
            f"attributes) WHERE {_where(subject)}" + _SYNC,
            params,
        )
    removed = [done for done in (f.apply() for f in files) if done is not None]
    log.info(
        "erasure %s of %s (tenant %s) by %s: %d contents, %d spans, %d logs, %d files",
        erasure_id,
        subject.key,
        tenant,
        actor,
        len(erased),
        spans,
        logs,
        len(removed),
    )
    at = _dt.datetime.fromtimestamp(record.recorded_at_ns / 1e9, _dt.timezone.utc)
    return ErasureResult(
        erasure_id=erasure_id,
        tenant=tenant,
        subject_attribute=subject.key,
        subject_sha256=subject_hash,
        reason=reason,
        erased_by=actor,
        erased_at=rfc3339(at),
        spans=spans,
        contents=len(erased),
        content_sha256=erased,
        shared_kept=referenced - len(erased),
        logs=logs,
        dataset_files=removed,
    )
