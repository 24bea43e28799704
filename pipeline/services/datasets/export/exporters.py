"""The per-format exporters: chat and Parquet examples, preference pairs, trajectories."""

from __future__ import annotations

from typing import Any, Final

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from agentledger.pipeline.services.datasets.export.request import ExportRequest, Progress
from agentledger.pipeline.services.datasets.export.sink import _Sink
from agentledger.pipeline.services.datasets.feedback import feedback_from_spans
from agentledger.pipeline.services.datasets.formats import (
    Unusable,
    assistant_message,
    finish_problem,
    to_openai_messages,
    tool_definitions,
)
from agentledger.pipeline.services.datasets.hygiene import DatasetRedactor
from agentledger.pipeline.services.datasets.selection import (
    Page,
    PreferencePages,
    SpanPages,
    TracePages,
)
from agentledger.pipeline.services.datasets.trajectories import build_trajectory
from agentledger.pipeline.store import Store

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
