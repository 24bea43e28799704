"""Where built examples go: duplicate check, split, files, members, digest."""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from hashlib import sha256 as _sha256
from pathlib import Path
from typing import Any, Final

import orjson

from agentledger.pipeline.services.datasets.export.request import INLINE_LIMIT, ExportRequest
from agentledger.pipeline.services.datasets.hygiene import (
    Deduplicator,
    fingerprint,
    normalized_text,
    split_of,
)
from agentledger.pipeline.services.datasets.writers import MembersFile, ParquetFiles, SplitFiles


@dataclass
class _Stats:
    candidates: int = 0
    examples: int = 0
    splits: Counter[str] = field(default_factory=Counter)
    dropped: Counter[str] = field(default_factory=Counter)
    source_spans: int = 0


_Candidate = tuple[bytes, str, int, int, str, list[tuple[str, str, str]], dict[str, Any] | None]
"""(JSON line, content hash, exact key, near key, split group, sources (span, trace, role), example)."""


class _Sink:
    """Where built examples go: duplicate check (a batch at a time), split, file, members, digest."""

    FLUSH_AT: Final = 5_000

    def __init__(self, out: Path, request: ExportRequest, stats: _Stats) -> None:
        self.request = request
        self.stats = stats
        self.files: SplitFiles | ParquetFiles = (
            ParquetFiles(out) if request.format == "parquet" else SplitFiles(out)
        )
        self.members = MembersFile(out)
        self.dedup = Deduplicator(exact=request.dedup, near=request.near_dedup)
        self.digest = hashlib.sha256()
        self.seed = request.split_seed if request.split_seed is not None else request.filters.seed
        self.inline_spans: list[str] = []
        self.inline_hashes: list[str] = []
        self._pending: list[_Candidate] = []
        self._keep_examples = isinstance(self.files, ParquetFiles)

    def add(
        self,
        example: dict[str, Any],
        near_text: str,
        group: str,
        sources: list[tuple[str, str, str]],
        *,
        content_hash: str | None = None,
    ) -> None:
        """Queue an example; ``content_hash`` (default: SHA-256 of its JSON line) identifies it."""
        line = orjson.dumps(example, option=orjson.OPT_APPEND_NEWLINE)
        digest = _sha256(line).digest() if content_hash is None else bytes.fromhex(content_hash)
        self._pending.append(
            (
                line,
                content_hash or digest.hex(),
                int.from_bytes(digest[:8], "little"),
                fingerprint(normalized_text(near_text)),
                group,
                sources,
                example if self._keep_examples else None,
            )
        )
        if len(self._pending) >= self.FLUSH_AT:
            self.flush()

    def flush(self) -> None:
        pending, self._pending = self._pending, []
        reasons = self.dedup.filter([c[2] for c in pending], [c[3] for c in pending])
        by_example = self.request.split_by == "example"
        fraction, seed = self.request.validation_fraction, self.seed
        files, members, digest, stats = self.files, self.members, self.digest, self.stats
        splits: dict[str, str] = {}
        kept = 0
        for (line, example_hash, _, _, group, sources, example), reason in zip(pending, reasons):
            if reason is not None:
                stats.dropped[reason] += 1
                continue
            key = example_hash if by_example else group
            split = splits.get(key)
            if split is None:
                split = splits[key] = split_of(key, fraction, seed)
            if isinstance(files, ParquetFiles):
                span_id, trace_id, _ = sources[0]
                assert example is not None
                files.write(split, example_hash, example, span_id, trace_id)
            else:
                files.write(split, line)
            for span_id, trace_id, role in sources:
                members.write(span_id, trace_id, example_hash, split, role)
            if len(self.inline_spans) < INLINE_LIMIT:
                self.inline_spans.extend(s[0] for s in sources)
                self.inline_hashes.append(example_hash)
            stats.source_spans += len(sources)
            digest.update(example_hash.encode() + b"\n")
            stats.splits[split] += 1
            kept += 1
        stats.examples += kept

    def abort(self) -> None:
        self.files.abort()
        self.members.abort()
