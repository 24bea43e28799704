"""Lineage: which production spans are in a dataset, and which datasets contain a span.

Every export writes ``manifest.json`` and ``members.jsonl`` next to its files
and records both in the store: one ``datasets`` row (the manifest) and one
``dataset_members`` row per (span, example). The two questions are then SQL:

Which production spans are in dataset ``ds-...``::

    SELECT s.*
    FROM spans AS s FINAL
    WHERE s.tenant = 'default'
      AND s.span_id IN (SELECT span_id FROM dataset_members FINAL
                        WHERE tenant = 'default' AND dataset_id = 'ds-...');

Which datasets contain span ``<span-id>``::

    SELECT d.dataset_id, d.name, d.created_at, m.split, m.role
    FROM dataset_members AS m FINAL
    JOIN datasets AS d FINAL ON d.tenant = m.tenant AND d.dataset_id = m.dataset_id
    WHERE m.tenant = 'default' AND m.span_id = '<span-id>';

Members are inserted before the ``datasets`` row, so a dataset whose recording
was interrupted has no ``datasets`` row and is not reported by the second query.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import orjson
import pyarrow as pa

from agentledger.pipeline.store import Store

__all__ = [
    "DATASETS_OF_SPAN_SQL",
    "DATASETS_TABLE",
    "MEMBERS_TABLE",
    "MEMBER_SPANS_SQL",
    "dataset_spans",
    "datasets_of_span",
    "get_dataset",
    "list_datasets",
    "record_dataset",
]

DATASETS_TABLE: Final = "datasets"
MEMBERS_TABLE: Final = "dataset_members"

MEMBER_SPANS_SQL: Final = """
SELECT s.* FROM spans AS s FINAL
WHERE s.tenant = {tenant:String}
  AND s.span_id IN (SELECT span_id FROM dataset_members FINAL
                    WHERE tenant = {tenant:String} AND dataset_id = {dataset_id:String})
"""
"""The production spans of a dataset (parameters ``tenant``, ``dataset_id``)."""

DATASETS_OF_SPAN_SQL: Final = """
SELECT d.dataset_id AS dataset_id, d.name AS name, d.format AS format, d.created_at AS created_at,
       d.creator AS creator, d.path AS path, m.split AS split, m.role AS role, m.example_hash AS example_hash
FROM dataset_members AS m FINAL
INNER JOIN (SELECT * FROM datasets FINAL WHERE tenant = {tenant:String}) AS d ON d.dataset_id = m.dataset_id
WHERE m.tenant = {tenant:String} AND m.span_id = {span_id:String}
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
) -> None:
    """Record a finished export: its members (read back from ``members.jsonl`` a block at a time),
    then its ``datasets`` row. Safe to repeat (deduplicating tables, deterministic insert tokens)."""
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
    row = pa.Table.from_pydict(
        {
            "tenant": [tenant],
            "dataset_id": [dataset_id],
            "name": [manifest.get("name", "")],
            "format": [manifest["format"]],
            "created_at": [created],
            "creator": [manifest.get("creator", "")],
            "path": [str(Path(out_dir).resolve())],
            "examples": [counts["examples"]],
            "train_examples": [splits.get("train", 0)],
            "validation_examples": [splits.get("validation", 0)],
            "source_spans": [counts["source_spans"]],
            "content_digest": [manifest["content_digest"]],
            "redaction_policy": [manifest["hygiene"]["redaction_policy"]],
            "filters": [orjson.dumps(manifest["filters"]).decode()],
            "manifest": [orjson.dumps(manifest).decode()],
        },
        schema=pa.schema(
            [
                pa.field("tenant", pa.string()),
                pa.field("dataset_id", pa.string()),
                pa.field("name", pa.string()),
                pa.field("format", pa.string()),
                pa.field("created_at", pa.timestamp("ms", tz="UTC")),
                pa.field("creator", pa.string()),
                pa.field("path", pa.string()),
                pa.field("examples", pa.uint64()),
                pa.field("train_examples", pa.uint64()),
                pa.field("validation_examples", pa.uint64()),
                pa.field("source_spans", pa.uint64()),
                pa.field("content_digest", pa.string()),
                pa.field("redaction_policy", pa.string()),
                pa.field("filters", pa.string()),
                pa.field("manifest", pa.string()),
            ]
        ),
    )
    store.insert_arrow(DATASETS_TABLE, row, dedup_token=f"{dataset_id}-dataset")


def get_dataset(store: Store, tenant: str, dataset_id: str) -> dict[str, Any] | None:
    """The manifest of a recorded dataset, with ``recorded`` facts from the store (path, member
    rows, distinct spans); None when unknown."""
    rows = store.query_rows(
        f"SELECT path, manifest FROM {DATASETS_TABLE} FINAL WHERE tenant = {{tenant:String}} "
        "AND dataset_id = {dataset_id:String}",
        {"tenant": tenant, "dataset_id": dataset_id},
    )
    if not rows:
        return None
    manifest: dict[str, Any] = orjson.loads(rows[0]["manifest"])
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
            FROM {DATASETS_TABLE} FINAL WHERE tenant = {{tenant:String}}
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
