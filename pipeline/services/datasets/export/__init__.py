"""``export_dataset``: production spans -> a training dataset on disk, with its manifest and lineage.

Formats:

* ``chat`` - OpenAI chat fine-tuning JSONL, one example per model call
  (``{"messages": [...], "tools": [...]}``); AGENT/CHAIN spans give
  question -> answer examples;
* ``parquet`` - the same examples as Parquet (``messages``, ``tools`` as JSON
  text, lineage columns), for ``datasets.load_dataset("parquet", ...)`` and TRL;
* ``preference`` - pairs ``{"prompt", "chosen", "rejected"}`` (TRL's
  conversational DPO format) built from feedback: for each prompt the best- and
  worst-scored answers, and each answer against the correction an annotator gave;
* ``openai-dpo`` - the same pairs in OpenAI's preference fine-tuning shape
  (``input``/``preferred_output``/``non_preferred_output``);
* ``trajectory`` - one whole trace per line (see :mod:`.trajectories`).

The export streams: spans are read page by page (the next page is fetched
while this one is written), every example goes through redaction, duplicate
removal, quality checks and the split, and is appended to its split's file.
Memory holds two pages and the duplicate fingerprints (16 bytes per example).
At the end the files are renamed into place, the manifest is written next to
them, and the dataset and its members are recorded in the store.
"""

from __future__ import annotations

import gc
import logging
import secrets
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import orjson

from agentledger.pipeline.services.datasets.export.exporters import (
    _export_chat,
    _export_preference,
    _export_trajectories,
)
from agentledger.pipeline.services.datasets.export.request import (
    FORMATS,
    INLINE_LIMIT,
    MANIFEST_NAME,
    ExportError,
    ExportRequest,
    Progress,
    with_filters,
)
from agentledger.pipeline.services.datasets.export.sink import _Sink, _Stats
from agentledger.pipeline.services.datasets.hygiene import DatasetRedactor
from agentledger.pipeline.store import Store
from agentledger.schemas.records import Actor

__all__ = [
    "FORMATS",
    "INLINE_LIMIT",
    "MANIFEST_NAME",
    "ExportError",
    "ExportRequest",
    "Progress",
    "demo_dataset",
    "export_dataset",
    "new_dataset_id",
    "with_filters",
]

log = logging.getLogger(__name__)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("agentledger")
    except PackageNotFoundError:
        return "0+unknown"


def new_dataset_id(now: datetime) -> str:
    """``ds-<UTC time>-<8 random hex digits>``: sortable by creation, unique."""
    return f"ds-{now.astimezone(timezone.utc):%Y%m%dT%H%M%SZ}-{secrets.token_hex(4)}"


def export_dataset(
    store: Store,
    tenant: str,
    out_dir: str | Path,
    request: ExportRequest | None = None,
    *,
    progress: Progress | None = None,
    actor: str | None = None,
) -> dict[str, Any]:
    """Export the spans ``request`` selects into ``out_dir``; return the manifest.
    ``actor``: who asked for it, recorded on the dataset record (default ``api``).

    ``out_dir`` is created if needed and must not hold a dataset already.
    Raises ExportError for a request that cannot be carried out, StoreError
    when the store fails (nothing is recorded then, and no file is left under
    its final name).
    """
    from agentledger.pipeline.services.datasets import lineage

    request = request or ExportRequest()
    request.check()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if (out / MANIFEST_NAME).exists():
        raise ExportError(
            f"{out} already holds a dataset ({MANIFEST_NAME}); choose another directory"
        )
    started = datetime.now(timezone.utc)
    redactor = DatasetRedactor.parse(request.redact)
    stats = _Stats()
    sink = _Sink(out, request, stats)
    run = {
        "chat": _export_chat,
        "parquet": _export_chat,
        "preference": _export_preference,
        "openai-dpo": _export_preference,
        "trajectory": _export_trajectories,
    }[request.format]
    # The export allocates millions of short-lived, acyclic containers (refcounting frees them);
    # the cyclic collector would only rescan the pages held in memory, over and over (~15 % of the
    # time), so it is paused for the export and restored after.
    collecting = gc.isenabled()
    gc.disable()
    try:
        run(store, tenant, request, redactor, sink, progress)
        sink.flush()
        files = sink.files.close()
        members = sink.members.close()
    except BaseException:
        sink.abort()
        raise
    finally:
        if collecting:
            gc.enable()
    finished = datetime.now(timezone.utc)
    manifest: dict[str, Any] = {
        "id": new_dataset_id(finished),
        "name": request.name or f"{request.format} export",
        "format": request.format,
        "tenant": tenant,
        "created_at": finished.isoformat(),
        "creator": request.creator,
        "agentledger_version": _version(),
        "source": {"database": store.database},
        "filters": request.filters.to_json(),
        "hygiene": {
            "redaction": redactor.policy,
            "redaction_policy": redactor.label,
            "dedup": sink.dedup.method,
            "quality_filters": (["errored_calls"] if request.filters.successful_only else [])
            + (
                ["empty_output", "truncated_output", "content_filtered", "malformed_tool_calls"]
                if request.quality
                else []
            ),
            "split": {
                "by": request.split_by,
                "validation_fraction": request.validation_fraction,
                "seed": sink.seed,
                "method": "blake2b-64 of seed and group key < fraction * 2^64 -> validation",
            },
        },
        "counts": {
            "candidates": stats.candidates,
            "examples": stats.examples,
            "splits": dict(stats.splits),
            "source_spans": stats.source_spans,
            "dropped": dict(stats.dropped),
        },
        "content_digest": sink.digest.hexdigest(),
        "content_digest_method": "sha256 over each example's content hash (hex) + newline, in file order",
        "files": files + [members],
        "members": {
            "file": members["path"],
            "rows": members["rows"],
            "sql": lineage.MEMBER_SPANS_SQL.strip(),
        },
        "elapsed_seconds": round((finished - started).total_seconds(), 3),
    }
    if members["rows"] <= INLINE_LIMIT:
        manifest["source_span_ids"] = sink.inline_spans
        manifest["content_hashes"] = sink.inline_hashes
    (out / MANIFEST_NAME).write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2) + b"\n")
    if request.record:
        lineage.record_dataset(store, tenant, manifest, out, actor=actor or Actor.API)
    log.info(
        "exported dataset %s: %d examples from %d candidates to %s",
        manifest["id"],
        stats.examples,
        stats.candidates,
        out,
    )
    return manifest


def demo_dataset(store: Store, out_dir: str | Path, *, tenant: str = "default") -> dict[str, Any]:
    """The product demo's dataset: every recorded model call as OpenAI chat fine-tuning JSONL,
    redacted and deduplicated, with its lineage recorded. Returns the manifest.

    When ``out_dir`` already holds a dataset (the demo ran before), the new one goes into the
    next free ``out_dir/run-N``.
    """
    target = Path(out_dir)
    n = 1
    while (target / MANIFEST_NAME).exists():
        n += 1
        target = Path(out_dir) / f"run-{n}"
    request = ExportRequest(
        format="chat",
        name="demo: finance-controls model calls",
        creator="agentledger demo",
        validation_fraction=0.0,
    )
    return export_dataset(store, tenant, target, request)
