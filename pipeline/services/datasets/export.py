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
import hashlib
import logging
import secrets
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from hashlib import sha256 as _sha256
from pathlib import Path
from typing import Any, Final

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from agentledger.pipeline.services.datasets.feedback import feedback_from_spans
from agentledger.pipeline.services.datasets.formats import (
    Unusable,
    assistant_message,
    finish_problem,
    to_openai_messages,
    tool_definitions,
)
from agentledger.pipeline.services.datasets.hygiene import (
    DatasetRedactor,
    Deduplicator,
    fingerprint,
    normalized_text,
    split_of,
)
from agentledger.pipeline.services.datasets.selection import (
    ExportFilters,
    Page,
    PreferencePages,
    SpanPages,
    TracePages,
)
from agentledger.pipeline.services.datasets.trajectories import build_trajectory
from agentledger.pipeline.services.datasets.writers import MembersFile, ParquetFiles, SplitFiles
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
]

log = logging.getLogger(__name__)

FORMATS: Final = ("chat", "parquet", "preference", "openai-dpo", "trajectory")
"""Export formats."""
MANIFEST_NAME: Final = "manifest.json"
INLINE_LIMIT: Final = 1_000
"""Up to this many members, the manifest lists source span ids and content hashes itself
(``members.jsonl`` always lists them)."""
_CHAT_KINDS: Final = ("LLM", "AGENT", "CHAIN")

Progress = Callable[[int, int | None], None]
"""``progress(done, total)``: candidates processed so far, and how many there are."""


class ExportError(ValueError):
    """The export request cannot be carried out as given."""


@dataclass(frozen=True)
class ExportRequest:
    """What to export and how to clean it."""

    format: str = "chat"
    filters: ExportFilters = field(default_factory=ExportFilters)
    name: str = ""
    creator: str = ""
    redact: str = "all"
    """``all``, ``none`` or comma-separated presets (secret, iban, card, email, phone)."""
    dedup: bool = True
    near_dedup: bool = True
    quality: bool = True
    """Drop empty, truncated and content-filtered outputs (errored calls: ``filters.successful_only``)."""
    validation_fraction: float = 0.1
    split_by: str = "trace"
    """``trace``, ``session`` or ``example``: what stays together on one side of the split."""
    split_seed: str | None = None
    """Default: the filters' seed."""
    preference_feedback: str | None = None
    """Feedback name that ranks answers for preference pairs (default: every name)."""
    preference_margin: float = 0.0
    """A scored pair needs best - worst > margin."""
    page_size: int = 50_000
    """Spans read per page: memory holds two pages of examples; each page costs one pass over the
    contents the store holds, so larger pages make large exports faster."""
    record: bool = True
    """Record the dataset and its members in the store."""

    def to_json(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "filters"}
        out["filters"] = self.filters.to_json()
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ExportRequest:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__ and k != "filters"}
        return cls(filters=ExportFilters.from_json(data.get("filters") or {}), **known)

    def check(self) -> None:
        if self.format not in FORMATS:
            raise ExportError(f"unknown format {self.format!r}; one of {', '.join(FORMATS)}")
        if not 0 <= self.validation_fraction < 1:
            raise ExportError("validation_fraction must be in [0, 1)")
        if self.split_by not in ("trace", "session", "example"):
            raise ExportError("split_by must be trace, session or example")
        if self.page_size < 1:
            raise ExportError("page_size must be positive")
        if self.format != "trajectory":
            bad = [k for k in self.filters.kinds if k not in _CHAT_KINDS]
            if bad:
                raise ExportError(
                    f"{self.format} examples come from {', '.join(_CHAT_KINDS)} spans, not {bad}"
                )
        try:
            DatasetRedactor.parse(self.redact)
        except ValueError as exc:
            raise ExportError(str(exc)) from exc


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


_REPEATING: Final = frozenset({"tools_hash", "kind", "session_id"})
"""Columns whose few distinct values repeat on most rows: read as references to one string each."""


def _columns(page: Page, names: tuple[str, ...]) -> dict[str, list[Any]]:
    """The page's columns as Python lists; then the Arrow rows are let go."""
    out: dict[str, list[Any]] = {}
    for name in names:
        column = page.rows.column(name)
        if name in _REPEATING and pa.types.is_string(column.type) and len(column):
            encoded = pc.dictionary_encode(column).combine_chunks()
            values = encoded.dictionary.to_pylist()
            out[name] = [values[i] for i in encoded.indices.to_pylist()]
        else:
            out[name] = column.to_pylist()
    page.rows = page.rows.slice(0, 0)
    return out


class _Tools:
    """Tool definitions by the content hash of a call's canonical tool list (``tools_hash``): the
    same few lists repeat across millions of calls, so each is parsed once."""

    def __init__(self) -> None:
        self._cache: dict[str, list[dict[str, Any]]] = {}

    def get(self, tools_hash: str, contents: dict[str, tuple[str, int]]) -> list[dict[str, Any]]:
        if not tools_hash:
            return []
        found = self._cache.get(tools_hash)
        if found is None:
            stored = contents.get(tools_hash)
            tools = orjson.loads(stored[0]) if stored is not None else None
            found = tool_definitions(tools) if isinstance(tools, list) else []
            if len(self._cache) > 4096:
                self._cache.clear()
            self._cache[tools_hash] = found
        return found


def _messages(kind: str, content: tuple[str, int] | None, role: str) -> Any:
    if content is None:
        raise Unusable("missing_content")
    text = content[0]
    if kind == "LLM":
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise Unusable("missing_content") from exc
        if not isinstance(value, list):
            raise Unusable("missing_content")
        return value
    return [{"role": role, "content": text}]


class _ChatBuilder:
    """One chat example per LLM span (or question -> answer per AGENT/CHAIN span)."""

    def __init__(self, request: ExportRequest, redactor: DatasetRedactor) -> None:
        self.request = request
        self.redactor = redactor
        self.want_tools = request.filters.has_tool_calls
        self.tools = _Tools()

    def example(
        self,
        kind: str,
        input_hash: str,
        output_hash: str,
        tools_hash: str,
        contents: dict[str, tuple[str, int]],
    ) -> tuple[dict[str, Any], str]:
        if not output_hash:
            raise Unusable("empty_output")
        inp, out = contents.get(input_hash), contents.get(output_hash)
        near: list[str] = []
        history = _messages(kind, inp, "user")
        answer_raw = _messages(kind, out, "assistant")
        messages = to_openai_messages(
            history, self.redactor.for_mask(inp[1]) if inp else None, near
        )
        for m in messages:
            if m["role"] == "user":
                break
        else:
            raise Unusable("no_user_message")
        answer = assistant_message(
            answer_raw, self.redactor.for_mask(out[1]) if out else None, near
        )
        messages.append(answer)
        example: dict[str, Any] = {"messages": messages}
        tools = self.tools.get(tools_hash, contents) if kind == "LLM" else []
        if tools:
            declared = {t["function"]["name"] for t in tools}
            for m in messages:
                for call in m.get("tool_calls") or ():
                    if call["function"]["name"] not in declared:
                        raise Unusable("undeclared_tool")
            example["tools"] = tools
        if self.want_tools is not None:
            uses = any("tool_calls" in m or m["role"] == "tool" for m in messages)
            if uses != self.want_tools:
                raise Unusable("tool_use_filter")
        return example, "\n".join(near)


_CHAT_COLUMNS: Final = (
    "day",
    "trace_id",
    "span_id",
    "session_id",
    "kind",
    "input_hash",
    "output_hash",
    "tools_hash",
    "finish_reasons",
    "truncated",
)


def _export_chat(
    store: Store,
    tenant: str,
    request: ExportRequest,
    redactor: DatasetRedactor,
    sink: _Sink,
    progress: Progress | None,
) -> None:
    kinds = request.filters.kinds or ("LLM",)
    pages = SpanPages(
        store, tenant, request.filters, kinds, page_size=request.page_size, gates=redactor.gates
    )
    total = pages.count() if progress else None
    builder = _ChatBuilder(request, redactor)
    stats = sink.stats
    by_session = request.split_by == "session"
    quality = request.quality
    for page in pages:
        c = _columns(page, _CHAT_COLUMNS)
        contents = page.contents
        prev: tuple[Any, str, str] | None = None
        for (
            day,
            trace_id,
            span_id,
            session_id,
            kind,
            input_hash,
            output_hash,
            tools_hash,
            finish_reasons,
            truncated,
        ) in zip(*(c[name] for name in _CHAT_COLUMNS)):
            key = (day, trace_id, span_id)
            if key == prev:  # a stored copy of a re-delivered span
                continue
            prev = key
            stats.candidates += 1
            try:
                if quality and (finish_reasons or truncated):
                    problem = finish_problem(finish_reasons, truncated)
                    if problem:
                        raise Unusable(problem)
                example, near = builder.example(kind, input_hash, output_hash, tools_hash, contents)
            except Unusable as exc:
                stats.dropped[exc.reason] += 1
                continue
            sink.add(
                example,
                near,
                (session_id or trace_id) if by_session else trace_id,
                [(span_id, trace_id, "example")],
            )
        sink.flush()
        if progress:
            progress(stats.candidates, total)


_PREF_COLUMNS: Final = (
    "input_hash",
    "span_id",
    "trace_id",
    "session_id",
    "kind",
    "output_hash",
    "tools_hash",
    "finish_reasons",
    "truncated",
    "score",
    "scored",
    "corrections",
)


def _export_preference(
    store: Store,
    tenant: str,
    request: ExportRequest,
    redactor: DatasetRedactor,
    sink: _Sink,
    progress: Progress | None,
) -> None:
    feedback_from_spans(store, tenant=tenant)  # evaluations carried on spans count as feedback too
    kinds = request.filters.kinds or ("LLM",)
    pages = PreferencePages(
        store,
        tenant,
        request.filters,
        kinds,
        feedback_name=request.preference_feedback,
        page_size=max(1, request.page_size // 5),
        gates=redactor.gates,
    )
    total = pages.count() if progress else None
    stats = sink.stats
    tools = _Tools()
    for page in pages:
        c = _columns(page, _PREF_COLUMNS)
        contents = page.contents
        groups: dict[str, list[int]] = {}
        seen: set[str] = set()
        for i in range(len(c["span_id"])):
            if c["span_id"][i] in seen:
                continue
            seen.add(c["span_id"][i])
            if request.quality and finish_problem(c["finish_reasons"][i], c["truncated"][i]):
                stats.candidates += 1
                stats.dropped["truncated_or_filtered"] += 1
                continue
            groups.setdefault(c["input_hash"][i], []).append(i)
        for input_hash, rows in groups.items():
            stats.candidates += len(rows)
            for pair in _pairs(request, rows, c):
                _emit_pair(request, redactor, sink, tools, c, contents, input_hash, *pair)
        sink.flush()
        if progress:
            progress(stats.candidates, total)


def _pairs(
    request: ExportRequest, rows: list[int], c: dict[str, list[Any]]
) -> list[tuple[int, int | None, str | None]]:
    """(rejected row, chosen row or None, correction text or None) for one prompt's answers."""
    pairs: list[tuple[int, int | None, str | None]] = []
    scored = sorted(
        (r for r in rows if c["scored"][r]), key=lambda r: (c["score"][r], c["span_id"][r])
    )
    if len(scored) >= 2:
        worst, best = scored[0], scored[-1]
        if (
            c["score"][best] - c["score"][worst] > request.preference_margin
            and c["output_hash"][best] != c["output_hash"][worst]
        ):
            pairs.append((worst, best, None))
    for r in rows:
        for correction in (c["corrections"][r] or [])[
            :1
        ]:  # one per answer: the first, in text order
            pairs.append((r, None, correction))
    return pairs


def _emit_pair(
    request: ExportRequest,
    redactor: DatasetRedactor,
    sink: _Sink,
    tools_cache: _Tools,
    c: dict[str, list[Any]],
    contents: dict[str, tuple[str, int]],
    input_hash: str,
    rejected: int,
    chosen: int | None,
    correction: str | None,
) -> None:
    stats = sink.stats
    try:
        inp = contents.get(input_hash)
        kind = c["kind"][rejected]
        near: list[str] = []
        prompt = to_openai_messages(
            _messages(kind, inp, "user"), redactor.for_mask(inp[1]) if inp else None, near
        )
        if not prompt or prompt[-1]["role"] not in ("user", "tool"):
            raise Unusable("prompt_not_ending_with_user")
        bad = contents.get(c["output_hash"][rejected])
        rejected_msg = assistant_message(
            _messages(kind, bad, "assistant"), redactor.for_mask(bad[1]) if bad else None, near
        )
        if chosen is not None:
            good = contents.get(c["output_hash"][chosen])
            chosen_msg = assistant_message(
                _messages(kind, good, "assistant"),
                redactor.for_mask(good[1]) if good else None,
                near,
            )
        else:
            chosen_msg = assistant_message(
                [{"role": "assistant", "content": correction}], redactor.value, near
            )
        if chosen_msg == rejected_msg:
            raise Unusable("identical_answers")
        tools = tools_cache.get(c["tools_hash"][rejected], contents) if kind == "LLM" else []
    except Unusable as exc:
        stats.dropped[exc.reason] += 1
        return
    if request.format == "openai-dpo":
        inp_block: dict[str, Any] = {"messages": prompt}
        if tools:
            inp_block["tools"] = tools
        example: dict[str, Any] = {
            "input": inp_block,
            "preferred_output": [chosen_msg],
            "non_preferred_output": [rejected_msg],
        }
    else:
        example = {"prompt": prompt, "chosen": [chosen_msg], "rejected": [rejected_msg]}
    sources = [(c["span_id"][rejected], c["trace_id"][rejected], "rejected")]
    if chosen is not None:
        sources.insert(0, (c["span_id"][chosen], c["trace_id"][chosen], "chosen"))
    trace_id = c["trace_id"][rejected]
    group = (c["session_id"][rejected] or trace_id) if request.split_by == "session" else input_hash
    sink.add(example, "\n".join(near), group, sources)


_TRACE_COLUMNS: Final = (
    "trace_id",
    "span_id",
    "parent_span_id",
    "start_time",
    "kind",
    "name",
    "status_code",
    "status_message",
    "agent_name",
    "principal_id",
    "session_id",
    "request_model",
    "response_model",
    "input_hash",
    "output_hash",
    "document_hashes",
    "document_ids",
    "document_scores",
    "tool_name",
    "tool_call_id",
)


def _export_trajectories(
    store: Store,
    tenant: str,
    request: ExportRequest,
    redactor: DatasetRedactor,
    sink: _Sink,
    progress: Progress | None,
) -> None:
    pages = TracePages(
        store,
        tenant,
        request.filters,
        page_size=max(1, request.page_size // 10),
        gates=redactor.gates,
    )
    total = pages.count() if progress else None
    stats = sink.stats
    for page in pages:
        c = _columns(page, _TRACE_COLUMNS)
        n = len(c["trace_id"])
        start = 0
        while start < n:
            end = start
            trace_id = c["trace_id"][start]
            while end < n and c["trace_id"][end] == trace_id:
                end += 1
            spans: list[dict[str, Any]] = []
            seen: set[str] = set()
            for i in range(start, end):
                if c["span_id"][i] not in seen:
                    seen.add(c["span_id"][i])
                    spans.append({k: c[k][i] for k in _TRACE_COLUMNS})
            start = end
            stats.candidates += 1
            try:
                example, example_hash, near = build_trajectory(spans, page.contents, redactor)
            except Unusable as exc:
                stats.dropped[exc.reason] += 1
                continue
            if request.quality and not example["steps"]:
                stats.dropped["no_steps"] += 1
                continue
            group = (
                (spans[0]["session_id"] or trace_id) if request.split_by == "session" else trace_id
            )
            sink.add(
                example,
                near,
                group,
                [(s["span_id"], trace_id, "step") for s in spans],
                content_hash=example_hash,
            )
        sink.flush()
        if progress:
            progress(stats.candidates, total)


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


def with_filters(request: ExportRequest, **changes: Any) -> ExportRequest:
    """``request`` with some filters changed."""
    return replace(request, filters=replace(request.filters, **changes))
