"""A whole trace as one training example: what the agent was asked, each step, what it answered.

Steps follow span start order: retrievals (query and ranked documents), model
calls (the answer each gave: text or tool calls), tool executions (arguments
and result), sub-agents and chains (input and output). ``messages`` adds the
conversation of the trace's last model call in OpenAI chat format - for
function-calling agents that is the whole tool loop, ready for fine-tuning.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from typing import Any

import orjson

from agentledger.pipeline.services.datasets.formats import (
    Unusable,
    assistant_message,
    to_openai_messages,
)
from agentledger.pipeline.services.datasets.hygiene import DatasetRedactor

__all__ = ["build_trajectory"]


def _parse(text: str) -> Any:
    if text[:1] in ("{", "["):
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            return text
    return text


class _Contents:
    """Content by hash, parsed, and redacted by the presets the store found could apply."""

    def __init__(self, contents: dict[str, tuple[str, int]], redactor: DatasetRedactor) -> None:
        self._contents = contents
        self._redactor = redactor
        self.missing = 0

    def raw(self, h: str) -> tuple[Any, Callable[[Any], Any]]:
        found = self._contents.get(h)
        if found is None:
            if h:
                self.missing += 1
            return None, _same
        text, mask = found
        return _parse(text), (self._redactor.for_mask(mask) or _same)

    def value(self, h: str) -> Any:
        value, redact = self.raw(h)
        return None if value is None else redact(value)


def _same(value: Any) -> Any:
    return value


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if (
        isinstance(value, list)
        and value
        and all(isinstance(m, dict) and "role" in m for m in value)
    ):
        users = [m for m in value if m.get("role") == "user"]
        last = (users or value)[-1].get("content")
        return last if isinstance(last, str) else orjson.dumps(last).decode()
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def _llm_output(c: _Contents, h: str) -> dict[str, Any] | None:
    value, redact = c.raw(h)
    if not isinstance(value, list):
        return None
    try:
        return assistant_message(value, redact)
    except Unusable:
        return None


def _step(span: dict[str, Any], c: _Contents) -> dict[str, Any]:
    kind = span["kind"]
    step: dict[str, Any] = {"span_id": span["span_id"], "name": span["name"]}
    if kind == "LLM":
        step.update(
            type="llm",
            model=span["response_model"] or span["request_model"],
            output=_llm_output(c, span["output_hash"]),
        )
    elif kind == "TOOL":
        step.update(
            type="tool",
            name=span["tool_name"] or span["name"],
            call_id=span["tool_call_id"],
            arguments=c.value(span["input_hash"]),
            result=c.value(span["output_hash"]),
        )
    elif kind in ("RETRIEVER", "RERANKER"):
        docs = []
        for did, h, score in zip(
            span["document_ids"], span["document_hashes"], span["document_scores"]
        ):
            docs.append(
                {
                    "id": did,
                    "score": None if math.isnan(score) else score,
                    "content": _text(c.value(h)),
                }
            )
        step.update(
            type="retrieval" if kind == "RETRIEVER" else "rerank",
            query=_text(c.value(span["input_hash"])),
            documents=docs,
        )
    else:
        step.update(
            type=kind.lower(),
            input=_text(c.value(span["input_hash"])),
            output=_text(c.value(span["output_hash"])),
        )
    if span["status_code"] == "ERROR":
        step["error"] = span["status_message"] or "error"
    return step


def build_trajectory(
    spans: list[dict[str, Any]], contents: dict[str, tuple[str, int]], redactor: DatasetRedactor
) -> tuple[dict[str, Any], str, str]:
    """(example, content SHA-256, text for near-duplicate detection) of one trace's spans.

    ``spans`` are the trace's rows in start order. Raises Unusable when the trace
    has no answer.
    """
    c = _Contents(contents, redactor)
    ids = {s["span_id"] for s in spans}
    roots = [s for s in spans if not s["parent_span_id"] or s["parent_span_id"] not in ids]
    root = roots[0] if roots else spans[0]
    steps = [_step(s, c) for s in spans if s is not root]
    question = _text(c.value(root["input_hash"]))
    answer = _text(c.value(root["output_hash"])) if root["kind"] != "LLM" else ""
    llm_steps = [s for s in steps if s["type"] == "llm" and s.get("output")]
    if root["kind"] == "LLM":
        out = _llm_output(c, root["output_hash"])
        answer = str((out or {}).get("content") or "")
    if not answer and llm_steps:
        answer = str(llm_steps[-1]["output"].get("content") or "")
    if not question:
        question = str(
            next(
                (
                    s.get("query") or s.get("input")
                    for s in steps
                    if s.get("query") or s.get("input")
                ),
                "",
            )
        )
    if not answer:
        raise Unusable("empty_output")
    example: dict[str, Any] = {
        "trace_id": root["trace_id"],
        "agent": root["agent_name"]
        or next((s["agent_name"] for s in spans if s["agent_name"]), ""),
        "session_id": root["session_id"],
        "principal_id": root["principal_id"],
        "input": question,
        "output": answer,
        "steps": steps,
    }
    last_llm = next((s for s in reversed(spans) if s["kind"] == "LLM" and s["input_hash"]), None)
    if last_llm is not None:
        history, redact = c.raw(last_llm["input_hash"])
        out = _llm_output(c, last_llm["output_hash"])
        if isinstance(history, list) and out is not None:
            try:
                example["messages"] = [*to_openai_messages(history, redact), out]
            except Unusable:
                pass
    if c.missing:
        raise Unusable("missing_content")
    content = {
        "input": question,
        "output": answer,
        "steps": [{k: v for k, v in s.items() if k != "span_id"} for s in steps],
    }
    canonical = orjson.dumps(content, option=orjson.OPT_SORT_KEYS)
    return example, hashlib.sha256(canonical).hexdigest(), canonical.decode()
