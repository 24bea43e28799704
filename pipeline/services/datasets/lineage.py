"""Lineage: which production spans are in a dataset, and which datasets contain a span.

Every export writes ``manifest.json`` and ``members.jsonl`` next to its files
and records both in the store: a ``dataset`` record in the record log (the
manifest; typed view ``datasets_v``) and one ``dataset_members`` row per (span,
example). The two questions are then SQL:

Which production spans are in dataset ``ds-...``::

    SELECT s.*
    FROM spans AS s FINAL
    WHERE s.tenant = 'default'
      AND s.span_id IN (SELECT span_id FROM dataset_members FINAL
                        WHERE tenant = 'default' AND dataset_id = 'ds-...');

Which datasets contain span ``<span-id>``::

    SELECT d.dataset_id, d.name, d.created_at, m.split, m.role
    FROM dataset_members AS m FINAL
    JOIN (SELECT * FROM datasets_v WHERE tenant = 'default' LIMIT 1 BY dataset_id) AS d
      ON d.dataset_id = m.dataset_id
    WHERE m.tenant = 'default' AND m.span_id = '<span-id>';

Members are inserted before the dataset record, so a dataset whose recording
was interrupted has no record and is not reported by the second query. A
dataset recorded twice (a repeated recording) is the same record; readers take
one (``LIMIT 1 BY dataset_id``, the latest).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import orjson
import pyarrow as pa

from agentledger.pipeline.store import Store
from agentledger.pipeline.store.records import append_records
from agentledger.schemas.records import VIEWS, Actor, RecordKind, make_record

__all__ = [
    "DATASETS_OF_SPAN_SQL",
    "DATASETS_VIEW",
    "MEMBERS_TABLE",
    "MEMBER_SPANS_SQL",
    "dataset_spans",
    "datasets_of_span",
    "get_dataset",
    "list_datasets",
    "record_dataset",
]

DATASETS_VIEW: Final = VIEWS[RecordKind.DATASET]
"""Typed view of the dataset records (their manifests), one row per stored record."""
MEMBERS_TABLE: Final = "dataset_members"
"""One row per (span, example) of a dataset: its lineage."""

_LATEST_DATASETS: Final = f"""
SELECT dataset_id, name, format, created_at, creator, path, examples, train_examples,
       validation_examples, source_spans, content_digest, redaction_policy
FROM {DATASETS_VIEW} WHERE tenant = {{tenant:String}}
ORDER BY recorded_at DESC, body_sha256 DESC LIMIT 1 BY dataset_id
"""
"""The recorded datasets of a tenant, each once (the latest record of its id), without manifests."""

MEMBER_SPANS_SQL: Final = """
SELECT s.* FROM spans AS s FINAL
WHERE s.tenant = {tenant:String}
  AND s.span_id IN (SELECT span_id FROM dataset_members FINAL
                    WHERE tenant = {tenant:String} AND dataset_id = {dataset_id:String})
"""
"""The production spans of a dataset (parameters ``tenant``, ``dataset_id``)."""

DATASETS_OF_SPAN_SQL: Final = f"""
SELECT d.dataset_id AS dataset_id, d.name AS name, d.format AS format, d.created_at AS created_at,
       d.creator AS creator, d.path AS path, m.split AS split, m.role AS role, m.example_hash AS example_hash
FROM dataset_members AS m FINAL
INNER JOIN ({_LATEST_DATASETS}) AS d ON d.dataset_id = m.dataset_id
WHERE m.tenant = {{tenant:String}} AND m.span_id = {{span_id:String}}
ORDER BY d.created_at DESC, d.dataset_id
"""
"""The datasets holding a span (parameters ``tenant``, ``span_id``)."""

_MEMBERS_SCHEMA: Final = pa.schema(
    [
        pa.field("tenant", pa.string()),
        pa.field("dataset_id", pa.string()),
        pa.field("span_id", pa.string()),
        pa.field("trace_id", pa.string()),
        pa.field("example_hash", pa.string()),
        pa.field("split", pa.string()),
        pa.field("role", pa.string()),
        pa.field("created_at", pa.timestamp("ms", tz="UTC")),
    ]
)


def _members_batches(path: Path, block_size: int) -> Iterator[pa.RecordBatch]:
    """``members.jsonl`` as Arrow record batches, parsed by Arrow's C++ JSON reader."""
    from pyarrow import json as pa_json

    schema = pa.schema(
        [pa.field(n, pa.string()) for n in ("span_id", "trace_id", "example_hash", "split", "role")]
    )
    reader = pa_json.open_json(
        path,
        read_options=pa_json.ReadOptions(block_size=block_size),
        parse_options=pa_json.ParseOptions(explicit_schema=schema),
    )
    yield from reader


def record_dataset(
    store: Store,
    tenant: str,
    manifest: dict[str, Any],
    out_dir: str | Path,
    *,
    block_size: int = 8 << 20,
    actor: str = Actor.API,
) -> None:
    """Record a finished export: its members (read back from ``members.jsonl`` a block at a time),
    then its dataset record (the manifest). Safe to repeat (deterministic insert tokens; a repeated
    record counts once)."""
    dataset_id = manifest["id"]
    created = datetime.fromisoformat(manifest["created_at"])
    path = Path(out_dir) / manifest["members"]["file"]
    if manifest["members"]["rows"]:
        for n, batch in enumerate(_members_batches(path, block_size)):
            k = batch.num_rows
            table = pa.Table.from_arrays(
                [
                    pa.array([tenant] * k, pa.string()),
                    pa.array([dataset_id] * k, pa.string()),
                    batch.column("span_id"),
                    batch.column("trace_id"),
                    batch.column("example_hash"),
                    batch.column("split"),
                    batch.column("role"),
                    pa.array([created] * k, pa.timestamp("ms", tz="UTC")),
                ],
                schema=_MEMBERS_SCHEMA,
            )
            store.insert_arrow(MEMBERS_TABLE, table, dedup_token=f"{dataset_id}-members-{n}")
    counts = manifest["counts"]
    splits = counts.get("splits", {})
    record = make_record(
        RecordKind.DATASET,
        tenant,
        {
            "dataset_id": dataset_id,
            "name": manifest.get("name", ""),
            "format": manifest["format"],
            "created_at": created,
            "creator": manifest.get("creator", ""),
            "path": str(Path(out_dir).resolve()),
            "examples": counts["examples"],
            "train_examples": splits.get("train", 0),
            "validation_examples": splits.get("validation", 0),
            "source_spans": counts["source_spans"],
            "content_digest": manifest["content_digest"],
            "redaction_policy": manifest["hygiene"]["redaction_policy"],
            "filters": manifest["filters"],
            "manifest": manifest,
        },
        actor=actor,
    )
    append_records(store, [record])


def get_dataset(store: Store, tenant: str, dataset_id: str) -> dict[str, Any] | None:
    """The manifest of a recorded dataset, with ``recorded`` facts from the store (path, member
    rows, distinct spans); None when unknown."""
    rows = store.query_rows(
        f"SELECT path, body FROM {DATASETS_VIEW} WHERE tenant = {{tenant:String}} "
        "AND dataset_id = {dataset_id:String} ORDER BY recorded_at DESC, body_sha256 DESC LIMIT 1",
        {"tenant": tenant, "dataset_id": dataset_id},
    )
    if not rows:
        return None
    manifest: dict[str, Any] = orjson.loads(rows[0]["body"])["manifest"]
    stats = store.query_rows(
        f"SELECT count() AS member_rows, uniqExact(span_id) AS spans, uniqExact(trace_id) AS traces "
        f"FROM {MEMBERS_TABLE} FINAL WHERE tenant = {{tenant:String}} AND dataset_id = {{dataset_id:String}}",
        {"tenant": tenant, "dataset_id": dataset_id},
    )[0]
    manifest["recorded"] = {"path": rows[0]["path"], **stats}
    return manifest


def list_datasets(store: Store, tenant: str, limit: int = 50) -> list[dict[str, Any]]:
    """Recorded datasets, newest first."""
    rows = store.query_rows(
        f"""SELECT dataset_id, name, format, created_at, creator, path, examples, train_examples,
                   validation_examples, source_spans, content_digest, redaction_policy
            FROM ({_LATEST_DATASETS})
            ORDER BY created_at DESC, dataset_id LIMIT {{limit:UInt32}}""",
        {"tenant": tenant, "limit": int(limit)},
    )
    for r in rows:
        r["created_at"] = r["created_at"].isoformat()
    return rows


def datasets_of_span(store: Store, tenant: str, span_id: str) -> list[dict[str, Any]]:
    """The recorded datasets that contain ``span_id``, newest first, with its split and role."""
    rows = store.query_rows(DATASETS_OF_SPAN_SQL, {"tenant": tenant, "span_id": span_id.lower()})
    for r in rows:
        r["created_at"] = r["created_at"].isoformat()
    return rows


def dataset_spans(
    store: Store, tenant: str, dataset_id: str, *, limit: int = 1000
) -> list[dict[str, Any]]:
    """The production spans of a dataset (id, trace, kind, name, model, start), through
    :data:`MEMBER_SPANS_SQL`."""
    rows = store.query_rows(
        f"SELECT span_id, trace_id, kind, name, response_model, start_time FROM ({MEMBER_SPANS_SQL}) "
        "ORDER BY start_time, span_id LIMIT {limit:UInt32}",
        {"tenant": tenant, "dataset_id": dataset_id, "limit": int(limit)},
    )
    for r in rows:
        r["start_time"] = str(r["start_time"])
    return rows
