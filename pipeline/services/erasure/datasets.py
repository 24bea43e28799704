"""Erasing a subject from the dataset files an export left on this machine.

A dataset's members (``dataset_members``) name, per source span, the example it fed and the split
file the example went to. A JSON Lines example is named by the SHA-256 of its line, so the lines
of the subject's examples are dropped and the rest of the file kept (rewritten beside it, then
moved over it). Where that cannot be done exactly (Parquet, trajectories named by their content,
a file where fewer lines match than the members say) the whole file is deleted: an erasure must
not leave text behind to keep a training set whole. The dataset's record (hashes, no text) stays;
its ``content_digest`` no longer matches the files, which the erasure record explains.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
from pathlib import Path
from typing import Any

from agentledger.pipeline.store import Store
from agentledger.schemas.canonical import loads

__all__ = ["DatasetScrub", "scrub_datasets"]

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class DatasetScrub:
    """One file and the example hashes (SHA-256 of their lines) to take out of it."""

    path: Path
    drop: frozenset[str]

    def apply(self) -> str | None:
        """Rewrite the file without those lines, or delete it when they are not all found line by
        line; returns what happened (for the result), None when nothing could be done."""
        try:
            if self.path.suffix == ".jsonl" and self.drop:
                with self.path.open("rb") as f:
                    lines = f.readlines()
                kept = [ln for ln in lines if hashlib.sha256(ln).hexdigest() not in self.drop]
                if len(lines) - len(kept) == len(self.drop):
                    temp = self.path.with_name(self.path.name + ".erasing")
                    temp.write_bytes(b"".join(kept))
                    os.replace(temp, self.path)
                    return f"{self.path} ({len(self.drop)} examples removed)"
            self.path.unlink()
            return f"{self.path} (deleted)"
        except OSError as exc:  # reported, not fatal: the store is erased already
            log.error("erasure: cannot scrub dataset file %s: %s", self.path, exc)
            return None


def scrub_datasets(
    store: Store, tenant: str, spans_sql: str, params: dict[str, Any]
) -> list[DatasetScrub]:
    """The files to scrub of every dataset exported from the spans ``spans_sql`` selects (a
    subquery giving ``span_id``), from the datasets' manifests and members."""
    members = store.query_rows(
        "SELECT dataset_id, split, groupUniqArray(example_hash) AS ex FROM dataset_members "
        f"WHERE tenant = {{t:String}} AND span_id IN ({spans_sql}) GROUP BY dataset_id, split",
        params,
    )
    if not members:
        return []
    drops: dict[tuple[str, str], frozenset[str]] = {
        (str(r["dataset_id"]), str(r["split"])): frozenset(r["ex"]) for r in members
    }
    manifests = store.query_rows(
        "SELECT record_id, argMax(path, recorded_at) AS path, argMax(manifest, recorded_at) AS m "
        "FROM datasets_v WHERE tenant = {t:String} AND record_id IN {ids:Array(String)} "
        "GROUP BY record_id",
        {"t": params["t"], "ids": sorted({d for d, _ in drops})},
    )
    found: list[DatasetScrub] = []
    for r in manifests:
        root = Path(str(r["path"])).resolve()
        try:
            manifest: Any = loads(str(r["m"]))
        except ValueError:
            continue
        members_file = (manifest.get("members") or {}).get("file")
        for entry in manifest.get("files") or []:
            name = entry.get("path") if isinstance(entry, dict) else None
            if not isinstance(name, str) or name == members_file:
                continue  # the members file lists span ids and hashes, no text
            path = (root / name).resolve()
            if root not in path.parents or not path.is_file():
                continue
            key = (str(r["record_id"]), str(entry.get("split", "")))
            if key[1] and key not in drops:
                continue  # a split none of the subject's examples went to
            found.append(DatasetScrub(path, drops.get(key, frozenset())))
    return found
