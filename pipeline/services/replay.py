"""Replay of recorded model decisions: rebuild the request, send it again, diff the answers.

**Rebuilding.** An LLM span's request is rebuilt from what the store holds: the
canonical input messages (``contents`` under ``input_hash``), the tools offered,
the request parameters and the requested model (``agentledger.pipeline.services.audit``
reads them for every convention), in the provider's wire format (OpenAI chat
completions, or Anthropic messages). Where the instrumentation also recorded the
request itself (OpenInference's ``input.value``: the SDK call's arguments as JSON),
that recorded request is what replay sends, and the reconstruction is checked
against it; elsewhere the reconstruction is sent.

**Hashes** (``RebuiltRequest.checks``), all SHA-256 over the canonical form of
``agentledger.schemas.contents`` (sorted-key compact JSON):

* ``messages_sha256``: of the request's messages in the normalizer's canonical
  message shape. It must equal the span's ``input_hash``, which the pipeline
  recorded at ingest for every convention (and the ledger covers): this is *the
  hash recorded at call time* a replay is held to (``messages_match``).
* ``request_sha256``: of the whole request body sent (model, messages, tools,
  parameters), before replay's own overrides (``--model``, streaming off).
* ``recorded_request_sha256``: of OpenInference's recorded request, whose stored
  text is first re-hashed against the content hash it is stored under
  (``recorded_request_intact``); ``reconstruction_exact`` says whether the request
  rebuilt from messages, tools, parameters and model hashes the same.

**Diffing.** The new answer is compared with the recorded one (canonical output
messages): the same tools chosen in the same order, the same arguments (as JSON
values), and the text's similarity (``difflib`` ratio; token Jaccard as well). No
difference at all is zero drift. ``replay_many`` does this for many recorded calls
and sums it up as a drift report, stored (``replay_runs``, ``replays``) with links
to the source spans, so that switching models can be run as a regression test.
"""

from __future__ import annotations

import difflib
import json
import logging
import math
import os
import re
import statistics
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import pyarrow as pa

from agentledger.pipeline.normalize.fields import from_openai_messages, parse_arguments, parse_json
from agentledger.pipeline.services.audit import (
    Trace,
    _span_rows,
    iso,
    llm_parameters,
    offered_tools,
)
from agentledger.pipeline.store import Store
from agentledger.schemas.attributes import OpenInference as OI
from agentledger.schemas.contents import canonical_bytes, content_hash

__all__ = [
    "REPLAYS_TABLE",
    "REPLAY_RUNS_TABLE",
    "Answer",
    "Diff",
    "DriftReport",
    "RebuiltRequest",
    "ReplayError",
    "ReplayNotFound",
    "ReplayOutcome",
    "answer_of_response",
    "canonical_messages",
    "compare",
    "get_report",
    "list_reports",
    "rebuild_request",
    "rebuild_requests",
    "replay_many",
    "replay_request",
    "replay_span",
    "save_report",
    "select_calls",
    "send_request",
    "summarize",
]

log = logging.getLogger(__name__)

REPLAY_RUNS_TABLE = "replay_runs"
"""One row per batch replay: the drift report's summary."""
REPLAYS_TABLE = "replays"
"""One row per replayed LLM call, linked to its source span."""

OPENAI, ANTHROPIC = "openai", "anthropic"
_NOT_BODY = (
    "extra_headers",
    "extra_query",
    "timeout",
)  # SDK call options recorded with the arguments
_STREAM_KEYS = ("stream", "stream_options")
_DEFAULT_MAX_TOKENS = 1024  # Anthropic requires max_tokens; used only when translating a call to it


class ReplayError(Exception):
    """The span cannot be replayed (not an LLM call, no recorded input)."""


class ReplayNotFound(ReplayError, LookupError):
    """No span with that id for the tenant."""


def _sha(value: Any) -> str:
    return content_hash(canonical_bytes(value))


# -- answers and their difference ----------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """What a model answered, reduced to what decides: the text, and the tools it chose with arguments."""

    text: str
    tool_calls: list[tuple[str, Any]]
    model: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "tool_calls": [{"name": n, "arguments": a} for n, a in self.tool_calls],
            "model": self.model,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Answer:
        return cls(
            d.get("text", ""),
            [(c["name"], c.get("arguments")) for c in d.get("tool_calls", [])],
            d.get("model", ""),
        )

    @classmethod
    def from_messages(cls, messages: Any, model: str = "") -> Answer:
        """From canonical output messages (as the store holds them)."""
        texts: list[str] = []
        calls: list[tuple[str, Any]] = []
        for m in messages if isinstance(messages, list) else ():
            if not isinstance(m, dict):
                continue
            content = m.get("content")
            if isinstance(content, str):
                texts.append(content)
            elif isinstance(content, list):
                texts += [
                    p["text"]
                    for p in content
                    if isinstance(p, dict) and p.get("type") == "text" and p.get("text")
                ]
            calls += [
                (c.get("name", ""), parse_arguments(c.get("arguments")))
                for c in m.get("tool_calls") or ()
            ]
        return cls("\n".join(texts), calls, model)


@dataclass(frozen=True)
class Diff:
    """How a replayed answer differs from the recorded one."""

    same_tools: bool
    """The same tool names, in the same order (both empty counts as the same)."""
    same_arguments: bool
    """The same tools with equal arguments (JSON values compared, not text)."""
    text_similarity: float
    """``difflib.SequenceMatcher`` ratio of the two texts, 1.0 when both are empty."""
    token_jaccard: float
    """Jaccard index of the two texts' lower-case word sets, 1.0 when both are empty."""

    @property
    def drift(self) -> bool:
        return not (self.same_tools and self.same_arguments and self.text_similarity == 1.0)

    def as_dict(self) -> dict[str, Any]:
        return {
            "same_tools": self.same_tools,
            "same_arguments": self.same_arguments,
            "text_similarity": self.text_similarity,
            "token_jaccard": self.token_jaccard,
            "drift": self.drift,
        }


_WORD = re.compile(r"\w+")


def compare(recorded: Answer, replayed: Answer) -> Diff:
    """The difference between two answers (ids of tool calls are ignored: providers mint new ones)."""
    same_tools = [n for n, _ in recorded.tool_calls] == [n for n, _ in replayed.tool_calls]
    same_arguments = same_tools and all(
        parse_arguments(a) == parse_arguments(b)
        for (_, a), (_, b) in zip(recorded.tool_calls, replayed.tool_calls)
    )
    a, b = recorded.text, replayed.text
    similarity = 1.0 if a == b else difflib.SequenceMatcher(None, a, b, autojunk=False).ratio()
    wa, wb = set(_WORD.findall(a.lower())), set(_WORD.findall(b.lower()))
    jaccard = 1.0 if not wa and not wb else len(wa & wb) / len(wa | wb)
    return Diff(same_tools, same_arguments, round(similarity, 6), round(jaccard, 6))


# -- canonical messages of a provider request (the normalizer's shape) -----------------------------


def _part_text(block: dict[str, Any]) -> dict[str, Any]:
    return {"type": "text", "text": block.get("text", "")}


def _anthropic_parts(blocks: list[Any]) -> tuple[Any, list[dict[str, Any]]]:
    """Canonical content and tool calls of Anthropic content blocks, as OpenInference's Anthropic
    instrumentation flattens them and the normalizer reads them back (a ``tool_use`` block keeps its
    place as a ``{"type": "tool_use", "text": ""}`` part, its call goes to ``tool_calls``)."""
    parts: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []
    for block in blocks:
        if isinstance(block, str):
            parts.append({"type": "text", "text": block})
            continue
        kind = block.get("type")
        if kind == "text":
            parts.append(_part_text(block))
        elif kind in ("tool_use", "server_tool_use", "mcp_tool_use"):
            parts.append({"type": "tool_use", "text": ""})
            calls.append(
                {
                    "id": block.get("id", ""),
                    "name": block.get("name", ""),
                    "arguments": block.get("input"),
                }
            )
        elif kind == "thinking":
            parts.append({"type": "reasoning", "text": block.get("thinking", "")})
        elif kind == "image" and isinstance(block.get("source"), dict):
            source = block["source"]
            url = (
                source.get("url")
                or f"data:{source.get('media_type')};base64,{source.get('data', '')}"
            )
            parts.append({"type": "image", "url": url})
        else:
            parts.append(
                {
                    "type": kind or "unknown",
                    "text": json.dumps(block, ensure_ascii=False, default=str),
                }
            )
    if len(parts) == 1 and parts[0]["type"] == "text":
        return parts[0]["text"], calls
    return (parts or None), calls


def _canonical(
    role: str, content: Any, calls: list[dict[str, Any]] | None = None, call_id: str = ""
) -> dict[str, Any]:
    msg: dict[str, Any] = {"role": role}
    if content:
        msg["content"] = content
    if calls:
        msg["tool_calls"] = calls
    if call_id:
        msg["tool_call_id"] = call_id
    return msg


def canonical_messages(api: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    """The request's messages in the canonical shape the normalizer stores (``input_hash`` is their hash)."""
    if api != ANTHROPIC:
        return from_openai_messages(body.get("messages") or []) or []
    out: list[dict[str, Any]] = []
    system = body.get("system")
    if isinstance(system, str) and system:
        out.append(_canonical("system", system))
    elif isinstance(system, list) and system:
        out.append(_canonical("system", _anthropic_parts(system)[0]))
    for m in body.get("messages") or ():
        content = m.get("content")
        if isinstance(content, str):
            out.append(_canonical(m.get("role", ""), content))
            continue
        blocks = list(content or ())
        results = [b for b in blocks if isinstance(b, dict) and b.get("type") == "tool_result"]
        for r in results:
            value = r.get("content")
            text = (
                value
                if isinstance(value, str) or value is None
                else json.dumps(value, ensure_ascii=False)
            )
            out.append(_canonical("tool", text, call_id=r.get("tool_use_id", "")))
        rest = [b for b in blocks if not (isinstance(b, dict) and b.get("type") == "tool_result")]
        if results and not rest:
            continue
        parts, calls = _anthropic_parts(rest)
        out.append(_canonical(m.get("role", ""), parts, calls))
    return out


# -- provider requests from canonical messages ----------------------------------------------------


def _arguments_text(arguments: Any) -> str:
    if isinstance(arguments, str):
        return arguments
    return json.dumps(arguments, ensure_ascii=False, separators=(",", ":"))


def _openai_content(content: Any) -> Any:
    if not isinstance(content, list):
        return content
    out = []
    for p in content:
        if isinstance(p, dict) and p.get("type") == "image":
            out.append({"type": "image_url", "image_url": {"url": p.get("url", "")}})
        else:
            out.append(p)
    return out


def _openai_messages(
    messages: list[dict[str, Any]], raw_arguments: Callable[[int, int], str | None]
) -> list[dict[str, Any]]:
    out = []
    for i, m in enumerate(messages):
        msg: dict[str, Any] = {"role": m["role"]}
        if m.get("tool_calls"):
            msg["content"] = _openai_content(
                m.get("content")
            )  # None when the turn only calls tools
            calls = []
            for k, c in enumerate(m["tool_calls"]):
                raw = raw_arguments(i, k)
                text = (
                    raw
                    if raw is not None and parse_arguments(raw) == c.get("arguments")
                    else _arguments_text(c.get("arguments"))
                )
                calls.append(
                    {
                        "id": c.get("id", ""),
                        "type": "function",
                        "function": {"name": c.get("name", ""), "arguments": text},
                    }
                )
            msg["tool_calls"] = calls
        else:
            msg["content"] = _openai_content(m.get("content", ""))
        if m.get("tool_call_id"):
            msg["tool_call_id"] = m["tool_call_id"]
        if m.get("name"):
            msg["name"] = m["name"]
        out.append(msg)
    return out


def _anthropic_blocks(m: dict[str, Any]) -> Any:
    content, calls = m.get("content"), list(m.get("tool_calls") or ())
    if isinstance(content, str) and not calls:
        return content
    blocks: list[dict[str, Any]] = []
    for p in (
        content
        if isinstance(content, list)
        else ([{"type": "text", "text": content}] if content else [])
    ):
        kind = p.get("type") if isinstance(p, dict) else "text"
        if kind == "tool_use":
            if calls:
                c = calls.pop(0)
                blocks.append(
                    {
                        "type": "tool_use",
                        "id": c.get("id", ""),
                        "name": c.get("name", ""),
                        "input": parse_arguments(c.get("arguments")),
                    }
                )
        elif kind == "image":
            url = p.get("url", "")
            if url.startswith("data:") and ";base64," in url:
                media, data = url[5:].split(";base64,", 1)
                blocks.append(
                    {
                        "type": "image",
                        "source": {"type": "base64", "media_type": media, "data": data},
                    }
                )
            else:
                blocks.append({"type": "image", "source": {"type": "url", "url": url}})
        elif kind == "reasoning":
            blocks.append({"type": "thinking", "thinking": p.get("text", "")})
        else:
            blocks.append(
                {"type": "text", "text": p.get("text", "") if isinstance(p, dict) else str(p)}
            )
    for c in calls:
        blocks.append(
            {
                "type": "tool_use",
                "id": c.get("id", ""),
                "name": c.get("name", ""),
                "input": parse_arguments(c.get("arguments")),
            }
        )
    return blocks


def _anthropic_messages(messages: list[dict[str, Any]]) -> tuple[Any, list[dict[str, Any]]]:
    """System text and the message list; consecutive tool results (and the user turn after them)
    form one user message, as the Anthropic API requires."""
    system: Any = None
    out: list[dict[str, Any]] = []
    pending: list[dict[str, Any]] | None = None  # tool_result blocks of the open user turn
    for m in messages:
        role = m.get("role")
        if role in ("system", "developer") and not out and pending is None:
            content = m.get("content")
            system = (
                content
                if isinstance(content, str)
                else [
                    {"type": "text", "text": p.get("text", "")}
                    for p in content or ()
                    if isinstance(p, dict)
                ]
            )
            continue
        if role == "tool":
            if pending is None:
                pending = []
                out.append({"role": "user", "content": pending})
            pending.append(
                {
                    "type": "tool_result",
                    "tool_use_id": m.get("tool_call_id", ""),
                    "content": m.get("content", ""),
                }
            )
            continue
        if role == "user" and pending is not None:
            blocks = _anthropic_blocks(m)
            pending.extend(
                [{"type": "text", "text": blocks}] if isinstance(blocks, str) else blocks
            )
            pending = None
            continue
        pending = None
        out.append({"role": role, "content": _anthropic_blocks(m)})
    return system, out


def _function_of(tool: Any) -> dict[str, Any] | None:
    """Name, description and JSON schema of a tool in any recorded shape: OpenAI chat
    (``{"type": "function", "function": {...}}``), GenAI/Responses (flat ``{"type": "function", "name"...}``)
    or Anthropic (``{"name", "input_schema"}``); None for other tools (built-in ones are sent as recorded)."""
    if not isinstance(tool, dict):
        return None
    if tool.get("type") == "function" and isinstance(tool.get("function"), dict):
        return dict(tool["function"])
    if "input_schema" in tool and "name" in tool:
        return {
            k: v
            for k, v in (
                ("name", tool["name"]),
                ("description", tool.get("description")),
                ("parameters", tool["input_schema"]),
            )
            if v is not None
        }
    if tool.get("type") == "function" and "name" in tool:
        return {
            k: v for k, v in tool.items() if k in ("name", "description", "parameters", "strict")
        }
    return None


def _openai_tool(tool: Any) -> Any:
    function = _function_of(tool)
    return tool if function is None else {"type": "function", "function": function}


def _anthropic_tool(tool: Any) -> Any:
    function = _function_of(tool)
    if function is None:
        return tool
    out = {
        "name": function.get("name", ""),
        "input_schema": function.get("parameters") or {"type": "object", "properties": {}},
    }
    if function.get("description"):
        out["description"] = function["description"]
    return out


def _sendable(params: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Parameters as a provider takes them: non-finite numbers (Langfuse records an unset
    ``max_tokens`` as ``Infinity``) are left out, and named."""
    kept, dropped = {}, []
    for key, value in params.items():
        if key in ("messages", "tools", "system", "model"):
            continue
        if (isinstance(value, float) and not math.isfinite(value)) or (
            isinstance(value, str) and value in ("Infinity", "-Infinity", "NaN")
        ):
            dropped.append(key)
            continue
        kept[key] = value
    return kept, dropped


def _reconstruct(
    api: str,
    model: str,
    messages: list[dict[str, Any]],
    tools: list[Any],
    params: dict[str, Any],
    raw_arguments: Callable[[int, int], str | None],
) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model}
    if api == ANTHROPIC:
        system, body["messages"] = _anthropic_messages(messages)
        if system:
            body["system"] = system
        if tools:
            body["tools"] = [_anthropic_tool(t) for t in tools]
    else:
        body["messages"] = _openai_messages(messages, raw_arguments)
        if tools:
            body["tools"] = [_openai_tool(t) for t in tools]
    body.update(params)
    if api == ANTHROPIC:
        body.setdefault("max_tokens", _DEFAULT_MAX_TOKENS)
    return body


# -- rebuilt requests ----------------------------------------------------------------------------------


@dataclass
class RebuiltRequest:
    """A recorded LLM call, ready to send again: the request body, its checks, the recorded answer."""

    span_id: str
    trace_id: str
    started_at: str
    agent_name: str
    api: str
    """``openai`` (chat completions, any OpenAI-compatible provider) or ``anthropic`` (messages)."""
    provider: str
    request_model: str
    response_model: str
    system_fingerprint: str
    body: dict[str, Any]
    source: str
    """``recorded`` (the request the instrumentation recorded) or ``reconstructed``."""
    checks: dict[str, Any]
    recorded: Answer
    output_hash: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def exact(self) -> bool:
        """The body's messages hash to the recorded ``input_hash`` and no reconstruction disagrees."""
        return (
            bool(self.checks.get("messages_match"))
            and self.checks.get("reconstruction_exact") is not False
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "span_id": self.span_id,
            "trace_id": self.trace_id,
            "started_at": self.started_at,
            "agent_name": self.agent_name,
            "api": self.api,
            "provider": self.provider,
            "request_model": self.request_model,
            "response_model": self.response_model,
            "system_fingerprint": self.system_fingerprint,
            "body": self.body,
            "source": self.source,
            "checks": self.checks,
            "exact": self.exact,
            "recorded": self.recorded.as_dict(),
            "output_hash": self.output_hash,
            "notes": self.notes,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RebuiltRequest:
        return cls(
            d["span_id"],
            d["trace_id"],
            d["started_at"],
            d.get("agent_name", ""),
            d["api"],
            d.get("provider", ""),
            d.get("request_model", ""),
            d.get("response_model", ""),
            d.get("system_fingerprint", ""),
            d["body"],
            d["source"],
            d.get("checks", {}),
            Answer.from_dict(d.get("recorded", {})),
            d.get("output_hash", ""),
            list(d.get("notes", [])),
        )


def _api_of(span: dict[str, Any], recorded: dict[str, Any] | None) -> str:
    provider = (span["provider"] or "").lower()
    if provider == ANTHROPIC or (
        span["request_model"] or span["response_model"]
    ).lower().startswith("claude"):
        return ANTHROPIC
    if (
        recorded is not None
        and "max_tokens" in recorded
        and "system" in recorded
        and "messages" in recorded
    ):
        return ANTHROPIC
    return OPENAI


def _wire(body: dict[str, Any]) -> dict[str, Any]:
    """The JSON body an SDK call with these arguments sends: call options dropped, ``extra_body`` merged."""
    out = {
        k: v for k, v in body.items() if k not in _NOT_BODY and k != "extra_body" and v is not None
    }
    extra = body.get("extra_body")
    if isinstance(extra, dict):
        out.update(extra)
    return out


def _raw_arguments(trace: Trace, span: dict[str, Any]) -> Callable[[int, int], str | None]:
    """The argument text of an earlier tool call as OpenInference recorded it (the canonical form
    keeps the JSON value, not its spelling)."""

    def get(i: int, k: int) -> str | None:
        return trace.attr(
            span,
            f"{OI.LLM_INPUT_MESSAGES}.{i}.{OI.MESSAGE_TOOL_CALLS}.{k}.{OI.TOOL_CALL_ARGUMENTS_SUFFIX}",
        )

    return get


def _rebuild(trace: Trace, span: dict[str, Any], api: str | None) -> RebuiltRequest:
    if span["kind"] != "LLM":
        raise ReplayError(f"span {span['span_id']} is a {span['kind']} span, not an LLM call")
    messages = trace.content(span["input_hash"])
    if not isinstance(messages, list):
        raise ReplayError(f"span {span['span_id']} has no recorded input messages to replay")
    notes: list[str] = []
    recorded_text = (
        trace.attr(span, OI.INPUT_VALUE) if span["convention"] == "openinference" else None
    )
    recorded = parse_json(recorded_text)
    if not (isinstance(recorded, dict) and isinstance(recorded.get("messages"), list)):
        recorded = None
    native = _api_of(span, recorded)
    target = api or native
    tools = offered_tools(trace, span)
    params, dropped = _sendable(llm_parameters(trace, span))
    if dropped:
        notes.append(f"parameters recorded without a usable value left out: {dropped}")
    model = span["request_model"] or span["response_model"]
    rebuilt = _reconstruct(target, model, messages, tools, params, _raw_arguments(trace, span))
    checks: dict[str, Any] = {"input_hash": span["input_hash"]}
    ref = span["attribute_refs"].get(OI.INPUT_VALUE)
    if recorded is not None and target == native:
        body, source = _wire(recorded), "recorded"
        checks["recorded_request_sha256"] = _sha(body)
        checks["recorded_request_intact"] = (
            content_hash(recorded_text or "") == ref if ref else None
        )
        checks["reconstructed_sha256"] = _sha(rebuilt)
        checks["reconstruction_exact"] = (
            checks["reconstructed_sha256"] == checks["recorded_request_sha256"]
        )
        if not checks["reconstruction_exact"]:
            differing = sorted(k for k in set(body) | set(rebuilt) if body.get(k) != rebuilt.get(k))
            notes.append(
                f"rebuilt from messages, tools, parameters and model, the request differs in {differing}; "
                "the recorded request is sent"
            )
    else:
        body, source = rebuilt, "reconstructed"
        if target != native:
            notes.append(f"translated from the {native} format to {target}")
        elif not tools and any(c for c in span["tool_calls"]):
            notes.append(
                "the model chose a tool but no tool definitions were recorded; the request has none"
            )
    checks["request_sha256"] = _sha(body)
    checks["messages_sha256"] = _sha(canonical_messages(target, body))
    checks["messages_match"] = checks["messages_sha256"] == span["input_hash"]
    if target != native:
        checks["messages_match"] = None  # a translated request cannot carry the recorded hash
    return RebuiltRequest(
        span_id=span["span_id"],
        trace_id=span["trace_id"],
        started_at=iso(span["start_ns"]),
        agent_name=span["agent_name"],
        api=target,
        provider=span["provider"],
        request_model=span["request_model"],
        response_model=span["response_model"],
        system_fingerprint=span["system_fingerprint"],
        body=body,
        source=source,
        checks=checks,
        recorded=Answer.from_messages(trace.content(span["output_hash"]), span["response_model"]),
        output_hash=span["output_hash"],
        notes=notes,
    )


def rebuild_requests(
    store: Store,
    tenant: str,
    span_ids: list[str],
    *,
    api: str | None = None,
    errors: list[dict[str, str]] | None = None,
) -> list[RebuiltRequest]:
    """Rebuilt requests of several LLM spans, in the order given (two queries in all).

    A span that cannot be rebuilt raises (``ReplayNotFound`` when unknown), or, when an
    ``errors`` list is given, is reported there (``{"span_id", "error"}``) and skipped.
    """
    ids = [s.strip().lower() for s in span_ids]
    if not ids:
        return []
    spans = _span_rows(store, tenant, "span_id IN {ids:Array(String)}", {"ids": sorted(set(ids))})
    holder = Trace(store, tenant, "", spans)
    hashes = []
    for s in spans:
        hashes += [s["input_hash"], s["output_hash"], *s["attribute_refs"].values()]
    holder.fetch(hashes)
    out = []
    for span_id in ids:
        try:
            span = holder.by_id.get(span_id)
            if span is None:
                raise ReplayNotFound(f"no span {span_id} for tenant {tenant!r}")
            out.append(_rebuild(holder, span, api))
        except ReplayError as exc:
            if errors is None:
                raise
            errors.append({"span_id": span_id, "error": str(exc)})
    return out


def rebuild_request(
    store: Store, tenant: str, span_id: str, *, api: str | None = None
) -> RebuiltRequest:
    """The request of one recorded LLM call, rebuilt (see the module docstring for its checks)."""
    return rebuild_requests(store, tenant, [span_id], api=api)[0]


def select_calls(
    store: Store,
    tenant: str,
    *,
    agent: str | None = None,
    model: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    tools_only: bool = False,
    limit: int = 100,
) -> list[str]:
    """Span ids of recorded LLM calls matching the filters, newest first (``model`` matches the
    requested or the answered model; ``tools_only`` keeps the calls that chose a tool)."""
    where = ["tenant = {tenant:String}", "kind = 'LLM'", "input_hash != ''"]
    params: dict[str, Any] = {"tenant": tenant, "limit": int(limit)}
    if model:
        where.append("(request_model = {model:String} OR response_model = {model:String})")
        params["model"] = model
    if since is not None:
        where.append("start_time >= {since:DateTime64(9, 'UTC')}")
        params["since"] = _ch_time(since)
    if until is not None:
        where.append("start_time < {until:DateTime64(9, 'UTC')}")
        params["until"] = _ch_time(until)
    if tools_only:
        where.append("notEmpty(tool_calls)")
    if agent:
        # a span exported apart from its AGENT span is stored without the agent's name: match its trace
        timed = [w for w in where if w.startswith("start_time")]
        agent_traces = " AND ".join(
            ["tenant = {tenant:String}", "kind = 'AGENT'", "agent_name = {agent:String}", *timed]
        )
        where.append(
            f"(agent_name = {{agent:String}} OR (agent_name = '' AND trace_id IN "
            f"(SELECT trace_id FROM spans WHERE {agent_traces})))"
        )
        params["agent"] = agent
    rows = store.query_rows(  # LIMIT 1 BY: a span delivered twice is listed once
        f"SELECT span_id FROM spans WHERE {' AND '.join(where)} "
        "ORDER BY start_time DESC, span_id LIMIT 1 BY span_id LIMIT {limit:UInt32}",
        params,
    )
    return [r["span_id"] for r in rows]


def _ch_time(t: datetime) -> str:
    if t.tzinfo is not None:
        t = t.astimezone(timezone.utc)
    return t.strftime("%Y-%m-%d %H:%M:%S.%f")


# -- sending ---------------------------------------------------------------------------------------------


def answer_of_response(api: str, response: Any) -> Answer:
    """The answer of an SDK response object (``ChatCompletion`` or Anthropic ``Message``)."""
    if api == ANTHROPIC:
        blocks = list(getattr(response, "content", None) or ())
        text = "\n".join(b.text for b in blocks if getattr(b, "type", "") == "text" and b.text)
        calls = [
            (b.name, b.input)
            for b in blocks
            if getattr(b, "type", "") in ("tool_use", "server_tool_use", "mcp_tool_use")
        ]
        return Answer(text, calls, getattr(response, "model", "") or "")
    choices = getattr(response, "choices", None) or []
    if not choices:
        return Answer("", [], getattr(response, "model", "") or "")
    message = choices[0].message
    calls = [
        (c.function.name, parse_arguments(c.function.arguments))
        for c in message.tool_calls or ()
        if getattr(c, "function", None) is not None
    ]
    return Answer(message.content or "", calls, response.model or "")


def send_request(
    api: str,
    body: dict[str, Any],
    *,
    base_url: str | None = None,
    api_key: str | None = None,
    timeout: float = 120.0,
) -> Answer:
    """Send ``body`` as is through the provider's own SDK (``openai`` or ``anthropic``) and read the answer.

    ``base_url`` and ``api_key`` are the SDK's (default: the SDK's environment variables). SDK errors
    propagate unchanged; ``replay_request`` records them.
    """
    if api == ANTHROPIC:
        import anthropic
        from anthropic.types import Message

        key = api_key or os.environ.get("ANTHROPIC_API_KEY") or "not-set"
        with anthropic.Anthropic(
            base_url=base_url, api_key=key, timeout=timeout, max_retries=2
        ) as client:
            return answer_of_response(api, client.post("/v1/messages", body=body, cast_to=Message))
    import openai
    from openai.types.chat import ChatCompletion

    key = api_key or os.environ.get("OPENAI_API_KEY") or "not-set"
    with openai.OpenAI(base_url=base_url, api_key=key, timeout=timeout, max_retries=2) as client:
        return answer_of_response(
            api, client.post("/chat/completions", body=body, cast_to=ChatCompletion)
        )


@dataclass
class ReplayOutcome:
    """One replayed call: what was sent, what came back, how it differs from the record."""

    request: RebuiltRequest
    replay_model: str
    overrides: dict[str, Any]
    replayed: Answer | None = None
    diff: Diff | None = None
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error

    def as_dict(self) -> dict[str, Any]:
        r = self.request
        return {
            "span_id": r.span_id,
            "trace_id": r.trace_id,
            "started_at": r.started_at,
            "agent_name": r.agent_name,
            "api": r.api,
            "recorded_model": r.request_model,
            "recorded_answered_model": r.response_model,
            "replay_model": self.replay_model,
            "replay_answered_model": self.replayed.model if self.replayed else "",
            "source": r.source,
            "checks": r.checks,
            "exact": r.exact,
            "notes": r.notes,
            "overrides": self.overrides,
            "recorded": r.recorded.as_dict(),
            "output_hash": r.output_hash,
            "replayed": self.replayed.as_dict() if self.replayed else None,
            "diff": self.diff.as_dict() if self.diff else None,
            "error": self.error,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ReplayOutcome:
        """An outcome as ``as_dict`` wrote it (the request body itself is not carried)."""
        request = RebuiltRequest(
            d["span_id"],
            d["trace_id"],
            d["started_at"],
            d.get("agent_name", ""),
            d["api"],
            "",
            d.get("recorded_model", ""),
            d.get("recorded_answered_model", ""),
            "",
            {},
            d.get("source", ""),
            dict(d.get("checks") or {}),
            Answer.from_dict(d.get("recorded") or {}),
            d.get("output_hash", ""),
            list(d.get("notes") or []),
        )
        diff = d.get("diff")
        return cls(
            request,
            d.get("replay_model", ""),
            dict(d.get("overrides") or {}),
            Answer.from_dict(d["replayed"]) if d.get("replayed") else None,
            Diff(
                bool(diff["same_tools"]),
                bool(diff["same_arguments"]),
                float(diff["text_similarity"]),
                float(diff["token_jaccard"]),
            )
            if diff
            else None,
            d.get("error", ""),
        )


Sender = Callable[..., Answer]


def replay_request(
    request: RebuiltRequest,
    *,
    model: str | None = None,
    base_url: str | None = None,
    api_key: str | None = None,
    timeout: float = 120.0,
    sender: Sender = send_request,
) -> ReplayOutcome:
    """Send a rebuilt request (``model`` overrides the recorded one; streaming is turned off so the
    answer arrives whole) and diff the answer. Provider errors become ``error``, not exceptions."""
    body = dict(request.body)
    overrides: dict[str, Any] = {}
    if model and body.get("model") != model:
        overrides["model"] = model
        body["model"] = model
    for key in _STREAM_KEYS:
        if key in body:
            overrides[key] = None
            body.pop(key)
    outcome = ReplayOutcome(request, str(body.get("model", "")), overrides)
    try:
        outcome.replayed = sender(
            request.api, body, base_url=base_url, api_key=api_key, timeout=timeout
        )
    except Exception as exc:  # noqa: BLE001 (any SDK or network failure is this call's result, not the batch's end)
        log.warning("replay of span %s failed: %s", request.span_id, exc)
        outcome.error = f"{type(exc).__name__}: {exc}"
        return outcome
    outcome.diff = compare(request.recorded, outcome.replayed)
    return outcome


def replay_span(store: Store, tenant: str, span_id: str, **kwargs: Any) -> ReplayOutcome:
    """Rebuild one recorded call and replay it (``replay_request``'s keyword arguments)."""
    api = kwargs.pop("api", None)
    return replay_request(rebuild_request(store, tenant, span_id, api=api), **kwargs)


# -- drift reports --------------------------------------------------------------------------------------


@dataclass
class DriftReport:
    """The outcome of replaying many recorded calls against one candidate."""

    run_id: str
    tenant: str
    created_at_ns: int
    candidate_model: str
    base_url: str
    filter: dict[str, Any]
    outcomes: list[ReplayOutcome]
    summary: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "tenant": self.tenant,
            "created_at": iso(self.created_at_ns),
            "candidate_model": self.candidate_model,
            "base_url": self.base_url,
            "filter": self.filter,
            "summary": self.summary,
            "outcomes": [o.as_dict() for o in self.outcomes],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], *, tenant: str | None = None) -> DriftReport:
        """A report as ``as_dict`` wrote it (``tenant`` overrides the one it names); the summary is recomputed."""
        outcomes = [ReplayOutcome.from_dict(o) for o in d.get("outcomes", [])]
        run_id = str(d["run_id"])
        if not re.fullmatch(r"[0-9a-f]{32}", run_id):
            raise ValueError(f"run_id {run_id!r} is not 32 lowercase hex digits")
        created = d.get("created_at")
        return cls(
            run_id,
            tenant or d["tenant"],
            _ns_of(created) if created else time.time_ns(),
            d.get("candidate_model", ""),
            d.get("base_url", ""),
            dict(d.get("filter") or {}),
            outcomes,
            summarize(outcomes),
        )


def _quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def summarize(outcomes: list[ReplayOutcome], worst: int = 5) -> dict[str, Any]:
    """Agreement on tool choice and arguments, the text-similarity distribution, and the worst cases."""
    done = [o for o in outcomes if o.diff is not None]
    sims = [o.diff.text_similarity for o in done if o.diff is not None]
    n = len(done)

    def share(pred: Callable[[Diff], bool]) -> float | None:
        return (
            round(sum(1 for o in done if o.diff is not None and pred(o.diff)) / n, 6) if n else None
        )

    ranked = sorted(
        done,
        key=lambda o: (o.diff.same_tools, o.diff.same_arguments, o.diff.text_similarity),  # type: ignore[union-attr]
    )[:worst]
    return {
        "replayed": n,
        "errors": len(outcomes) - n,
        "drifted": sum(1 for o in done if o.diff is not None and o.diff.drift),
        "tool_agreement": share(lambda d: d.same_tools),
        "argument_agreement": share(lambda d: d.same_arguments),
        "inexact_requests": sum(1 for o in outcomes if not o.request.exact),
        "text_similarity": {
            "mean": round(statistics.fmean(sims), 6) if sims else None,
            "min": min(sims) if sims else None,
            "p10": _quantile(sims, 0.10),
            "p50": _quantile(sims, 0.50),
            "p90": _quantile(sims, 0.90),
        },
        "worst": [
            {
                "span_id": o.request.span_id,
                "trace_id": o.request.trace_id,
                **(o.diff.as_dict() if o.diff else {}),
                "recorded_tools": [c for c, _ in o.request.recorded.tool_calls],
                "replayed_tools": [c for c, _ in o.replayed.tool_calls] if o.replayed else [],
                "recorded_text": o.request.recorded.text[:300],
                "replayed_text": (o.replayed.text if o.replayed else "")[:300],
            }
            for o in ranked
            if o.diff is not None and o.diff.drift
        ],
        "error_spans": [
            {"span_id": o.request.span_id, "error": o.error} for o in outcomes if o.error
        ][:worst],
    }


def replay_many(
    requests: list[RebuiltRequest],
    *,
    tenant: str,
    model: str | None = None,
    base_url: str | None = None,
    api_key: str | None = None,
    filter: dict[str, Any] | None = None,
    timeout: float = 120.0,
    sender: Sender = send_request,
) -> DriftReport:
    """Replay every request (one after another) against the candidate and sum up the drift."""
    outcomes = [
        replay_request(
            r, model=model, base_url=base_url, api_key=api_key, timeout=timeout, sender=sender
        )
        for r in requests
    ]
    return DriftReport(
        uuid.uuid4().hex,
        tenant,
        time.time_ns(),
        model or "",
        base_url or "",
        dict(filter or {}),
        outcomes,
        summarize(outcomes),
    )


_RUN_SCHEMA = pa.schema(
    [
        ("tenant", pa.string()),
        ("created_at", pa.timestamp("ms", tz="UTC")),
        ("run_id", pa.string()),
        ("candidate_model", pa.string()),
        ("base_url", pa.string()),
        ("filter", pa.string()),
        ("replayed", pa.uint32()),
        ("errors", pa.uint32()),
        ("drifted", pa.uint32()),
        ("tool_agreement", pa.float64()),
        ("argument_agreement", pa.float64()),
        ("text_similarity_mean", pa.float64()),
        ("text_similarity_p10", pa.float64()),
        ("text_similarity_p50", pa.float64()),
        ("text_similarity_min", pa.float64()),
        ("report", pa.string()),
    ]
)
_REPLAY_SCHEMA = pa.schema(
    [
        ("tenant", pa.string()),
        ("created_at", pa.timestamp("ms", tz="UTC")),
        ("run_id", pa.string()),
        ("trace_id", pa.string()),
        ("span_id", pa.string()),
        ("source_start_time", pa.timestamp("ns", tz="UTC")),
        ("agent_name", pa.string()),
        ("api", pa.string()),
        ("recorded_model", pa.string()),
        ("recorded_answered_model", pa.string()),
        ("replay_model", pa.string()),
        ("replay_answered_model", pa.string()),
        ("request_source", pa.string()),
        ("request_sha256", pa.string()),
        ("input_hash", pa.string()),
        ("messages_match", pa.bool_()),
        ("status", pa.string()),
        ("error", pa.string()),
        ("same_tools", pa.bool_()),
        ("same_arguments", pa.bool_()),
        ("text_similarity", pa.float64()),
        ("token_jaccard", pa.float64()),
        ("drift", pa.bool_()),
        ("recorded_tools", pa.list_(pa.string())),
        ("replayed_tools", pa.list_(pa.string())),
        ("recorded_output_hash", pa.string()),
        ("replayed_answer", pa.string()),
    ]
)


def _nan(v: float | None) -> float:
    return float("nan") if v is None else float(v)


def _ns_of(iso_text: str) -> int:
    whole, _, frac = iso_text.rstrip("Z").partition(".")
    seconds = int(
        datetime.strptime(whole, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc).timestamp()
    )
    return seconds * 1_000_000_000 + int((frac or "0").ljust(9, "0")[:9])


def save_report(store: Store, report: DriftReport) -> None:
    """Store the report: its summary in ``replay_runs``, each replayed call in ``replays``
    (idempotent: the run id is the insert's deduplication token)."""
    created_ms = report.created_at_ns // 1_000_000
    s = report.summary
    sims = s["text_similarity"]
    run = {
        "tenant": [report.tenant],
        "created_at": [created_ms],
        "run_id": [report.run_id],
        "candidate_model": [report.candidate_model],
        "base_url": [report.base_url],
        "filter": [json.dumps(report.filter, sort_keys=True, default=str)],
        "replayed": [s["replayed"]],
        "errors": [s["errors"]],
        "drifted": [s["drifted"]],
        "tool_agreement": [_nan(s["tool_agreement"])],
        "argument_agreement": [_nan(s["argument_agreement"])],
        "text_similarity_mean": [_nan(sims["mean"])],
        "text_similarity_p10": [_nan(sims["p10"])],
        "text_similarity_p50": [_nan(sims["p50"])],
        "text_similarity_min": [_nan(sims["min"])],
        "report": [json.dumps(s, ensure_ascii=False, default=str)],
    }
    rows: dict[str, list[Any]] = {name: [] for name in _REPLAY_SCHEMA.names}
    for o in report.outcomes:
        r, d = o.request, o.diff
        values = {
            "tenant": report.tenant,
            "created_at": created_ms,
            "run_id": report.run_id,
            "trace_id": r.trace_id,
            "span_id": r.span_id,
            "source_start_time": _ns_of(r.started_at),
            "agent_name": r.agent_name,
            "api": r.api,
            "recorded_model": r.request_model,
            "recorded_answered_model": r.response_model,
            "replay_model": o.replay_model,
            "replay_answered_model": o.replayed.model if o.replayed else "",
            "request_source": r.source,
            "request_sha256": r.checks.get("request_sha256", ""),
            "input_hash": r.checks.get("input_hash", ""),
            "messages_match": bool(r.checks.get("messages_match")),
            "status": "ok" if o.ok else "error",
            "error": o.error,
            "same_tools": bool(d and d.same_tools),
            "same_arguments": bool(d and d.same_arguments),
            "text_similarity": _nan(d.text_similarity if d else None),
            "token_jaccard": _nan(d.token_jaccard if d else None),
            "drift": bool(d.drift) if d else True,
            "recorded_tools": [n for n, _ in r.recorded.tool_calls],
            "replayed_tools": [n for n, _ in o.replayed.tool_calls] if o.replayed else [],
            "recorded_output_hash": r.output_hash,
            "replayed_answer": json.dumps(o.replayed.as_dict(), ensure_ascii=False, default=str)
            if o.replayed
            else "",
        }
        for name in _REPLAY_SCHEMA.names:
            rows[name].append(values[name])
    store.insert_arrow(
        REPLAY_RUNS_TABLE,
        pa.table(run, schema=_RUN_SCHEMA),
        dedup_token=f"replay-run-{report.run_id}",
    )
    if report.outcomes:
        store.insert_arrow(
            REPLAYS_TABLE,
            pa.table(rows, schema=_REPLAY_SCHEMA),
            dedup_token=f"replays-{report.run_id}",
        )


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in row.items():
        if isinstance(v, float) and math.isnan(v):
            v = None
        elif hasattr(v, "isoformat"):
            v = v.isoformat()
        out[k] = v
    return out


def list_reports(store: Store, tenant: str, limit: int = 20) -> list[dict[str, Any]]:
    """Stored drift reports of ``tenant``, newest first (summaries)."""
    rows = store.query_rows(
        f"""SELECT run_id, created_at, candidate_model, base_url, filter, replayed, errors, drifted, tool_agreement,
                   argument_agreement, text_similarity_mean, text_similarity_p50, text_similarity_min
            FROM {REPLAY_RUNS_TABLE} FINAL WHERE tenant = {{tenant:String}}
            ORDER BY created_at DESC, run_id LIMIT {{limit:UInt32}}""",
        {"tenant": tenant, "limit": int(limit)},
    )
    return [_plain(r) for r in rows]


def get_report(store: Store, tenant: str, run_id: str) -> dict[str, Any] | None:
    """A stored drift report: its summary and every replayed call with the link to its source span."""
    runs = store.query_rows(
        f"SELECT run_id, created_at, candidate_model, base_url, filter, report FROM {REPLAY_RUNS_TABLE} FINAL "
        "WHERE tenant = {tenant:String} AND run_id = {run_id:String}",
        {"tenant": tenant, "run_id": run_id},
    )
    if not runs:
        return None
    run = _plain(runs[0])
    calls = store.query_rows(
        f"""SELECT trace_id, span_id, source_start_time, agent_name, api, recorded_model, recorded_answered_model,
                   replay_model, replay_answered_model, request_source, request_sha256, input_hash, messages_match,
                   status, error, same_tools, same_arguments, text_similarity, token_jaccard, drift, recorded_tools,
                   replayed_tools, recorded_output_hash, replayed_answer
            FROM {REPLAYS_TABLE} FINAL WHERE tenant = {{tenant:String}} AND run_id = {{run_id:String}}
            ORDER BY text_similarity, span_id""",
        {"tenant": tenant, "run_id": run_id},
    )
    return {
        "run_id": run["run_id"],
        "created_at": run["created_at"],
        "candidate_model": run["candidate_model"],
        "base_url": run["base_url"],
        "filter": json.loads(run["filter"] or "{}"),
        "summary": json.loads(run["report"] or "{}"),
        "calls": [_plain(c) for c in calls],
    }
