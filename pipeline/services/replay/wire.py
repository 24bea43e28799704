"""Provider wire formats (OpenAI chat completions, Anthropic messages) to and from the
canonical call (``agentledger.schemas.calls``: messages, tools, parameters): a replay is held to
the ``input_hash`` recorded at ingest, so the request it sends must map back to exactly those
messages."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

from agentledger.pipeline.normalize.fields import from_openai_messages, parse_arguments
from agentledger.pipeline.services.recorded import ANTHROPIC, OPENAI, tool_for_api
from agentledger.schemas.calls import OPENAI_PARAM_NAMES

__all__ = ["ANTHROPIC", "OPENAI", "canonical_messages"]


_DEFAULT_MAX_TOKENS = 1024  # Anthropic requires max_tokens; used only when translating a call to it


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


def _sendable(params: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Parameters that can be sent: non-finite numbers (Langfuse records an unset ``max_tokens``
    as ``Infinity``) are left out, and named."""
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
        body.update(params)
    else:
        body["messages"] = _openai_messages(messages, raw_arguments)
        body.update((OPENAI_PARAM_NAMES.get(k, k), v) for k, v in params.items())
    if tools:
        body["tools"] = [tool_for_api(t, api) for t in tools]
    if api == ANTHROPIC:
        body.setdefault("max_tokens", _DEFAULT_MAX_TOKENS)
    return body
