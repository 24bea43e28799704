"""The entries of what an agent saw (LLM calls, documents, tool outputs, other steps), each
content record shown beside whether it still matches its SHA-256: an auditor must be able to
tell a recorded text from one changed since."""

from __future__ import annotations

import math
from typing import Any

from agentledger.pipeline.services.recorded import (
    Trace,
    iso,
    llm_parameters,
    offered_tools,
    system_fingerprint,
)
from agentledger.schemas.contents import content_hash


def _verified(trace: Trace, h: str) -> bool | None:
    record = trace.contents.get(h) if h else None
    if record is None or record["content"] is None or record.get("erased"):
        return None  # not captured, missing, or erased on record (its mark in place of the text)
    return content_hash(record["content"]) == h


def _tool_calls(trace: Trace, span: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "id": c["id"],
            "name": c["name"],
            "arguments": trace.content(c["arguments_hash"]),
            "arguments_hash": c["arguments_hash"],
        }
        for c in span["tool_calls"]
    ]


def _llm_entry(trace: Trace, span: dict[str, Any], *, with_output: bool = True) -> dict[str, Any]:
    entry = {
        "span_id": span["span_id"],
        "name": span["name"],
        "started_at": iso(span["start_ns"]),
        "ended_at": iso(span["end_ns"]),
        "provider": span["provider"],
        "convention": span["convention"],
        "requested_model": span["request_model"],
        "answered_model": span["response_model"],
        "system_fingerprint": system_fingerprint(trace, span),
        "parameters": llm_parameters(trace, span),
        "tools": offered_tools(trace, span),
        "tools_hash": span["tools_hash"],
        "request_hash": span["request_hash"],
        "messages": trace.content(span["input_hash"]),
        "input_hash": span["input_hash"],
        "input_verified": _verified(trace, span["input_hash"]),
        "input_tokens": span["input_tokens"],
        "output_tokens": span["output_tokens"],
    }
    if with_output:
        entry.update(
            output=trace.content(span["output_hash"]),
            output_hash=span["output_hash"],
            output_verified=_verified(trace, span["output_hash"]),
            tool_calls=_tool_calls(trace, span),
            finish_reason=", ".join(span["finish_reasons"]),
            finish_reasons=list(span["finish_reasons"]),
        )
    return entry


def _documents(trace: Trace, span: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "span_id": span["span_id"],
            "retriever": span["name"],
            "query": trace.content(span["input_hash"]),
            "rank": rank,
            "id": d["id"],
            "content_hash": d["content_hash"],
            "score": None if d["score"] is None or math.isnan(d["score"]) else d["score"],
            "retrieved_at": iso(span["end_ns"]),
            "content": trace.content(d["content_hash"]),
            "verified": _verified(trace, d["content_hash"]),
        }
        for rank, d in enumerate(span["documents"], 1)
    ]


def _tool_entry(trace: Trace, span: dict[str, Any], *, with_output: bool = True) -> dict[str, Any]:
    entry = {
        "span_id": span["span_id"],
        "tool_name": span["tool_name"] or span["name"],
        "tool_call_id": span["tool_call_id"],
        "started_at": iso(span["start_ns"]),
        "ended_at": iso(span["end_ns"]),
        "status": span["status_code"],
        "arguments": trace.content(span["input_hash"]),
        "arguments_hash": span["input_hash"],
    }
    if with_output:
        entry.update(
            output=trace.content(span["output_hash"]),
            output_hash=span["output_hash"],
            verified=_verified(trace, span["output_hash"]),
            error=span["status_message"] if span["status_code"] == "ERROR" else "",
        )
    return entry


def _step_entry(trace: Trace, span: dict[str, Any], *, with_output: bool = True) -> dict[str, Any]:
    entry = {
        "span_id": span["span_id"],
        "kind": span["kind"],
        "name": span["name"],
        "started_at": iso(span["start_ns"]),
        "input": trace.content(span["input_hash"]),
        "input_hash": span["input_hash"],
    }
    if with_output:
        entry.update(
            ended_at=iso(span["end_ns"]),
            output=trace.content(span["output_hash"]),
            output_hash=span["output_hash"],
            status=span["status_code"],
        )
    return entry


def _integrity(trace: Trace, spans: list[dict[str, Any]]) -> dict[str, Any]:
    hashes: set[str] = set()
    for s in spans:
        hashes.update(h for h in (s["input_hash"], s["output_hash"]) if h)
        hashes.update(d["content_hash"] for d in s["documents"])
        hashes.update(c["arguments_hash"] for c in s["tool_calls"])
    missing = sorted(h for h in hashes if trace.contents.get(h, {}).get("content") is None)
    erased = sorted(h for h in hashes if trace.contents.get(h, {}).get("erased"))
    changed = sorted(h for h in hashes if h not in missing and _verified(trace, h) is False)
    checked = len(hashes) - len(missing) - len(erased)
    return {
        "contents_checked": checked,
        "contents_verified": checked - len(changed),
        "missing": missing,
        "changed": changed,
        "erased": erased,
    }
