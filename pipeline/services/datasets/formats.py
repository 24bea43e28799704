"""Stored spans -> training examples: OpenAI chat messages, tool definitions, trajectories.

Input is what the store holds: the canonical call the normalizer recorded (messages, tools
and finish reasons, see ``agentledger.schemas.calls``) and content records.
Output follows OpenAI's documented chat fine-tuning format:

* roles ``system``, ``user``, ``assistant``, ``tool`` (``developer`` becomes
  ``system``; other spellings of the four are mapped, anything else is refused);
* an assistant turn that calls tools carries ``tool_calls`` as
  ``{"id", "type": "function", "function": {"name", "arguments": "<JSON text>"}}``
  and no ``content`` when it said nothing;
* every ``tool`` turn answers, by ``tool_call_id``, a call of the assistant turn
  before it, and every call is answered before the conversation goes on;
* ``tools`` lists ``{"type": "function", "function": {"name", "description", "parameters"}}``;
* the example ends with the assistant turn to learn.

A conversion that cannot meet these rules raises :class:`Unusable` with the
reason the export counts it under.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Final

import orjson

from agentledger.schemas.attributes import AgentLedger as AL

__all__ = [
    "TOOL_NAME",
    "TRUNCATED_KEY",
    "Unusable",
    "assistant_message",
    "finish_problem",
    "to_openai_messages",
    "tool_definitions",
]

TOOL_NAME: Final = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
"""Function names OpenAI accepts."""

TRUNCATED_KEY: Final = AL.TRUNCATED
"""Set by the collector on spans whose attribute values it cut."""

_ROLES: Final = {
    "system": "system",
    "developer": "system",
    "user": "user",
    "human": "user",
    "assistant": "assistant",
    "ai": "assistant",
    "model": "assistant",
    "bot": "assistant",
    "tool": "tool",
    "function": "tool",
    "ipython": "tool",
}
_TRUNCATED_REASONS: Final = frozenset({"length", "max_tokens", "max_output_tokens", "model_length"})
_FILTERED_REASONS: Final = frozenset({"content_filter", "safety", "blocked"})

Redact = Callable[[Any], Any]
"""Rewrites a string (or every string in a JSON-like value); identity when nothing is redacted."""


class Unusable(Exception):
    """The span cannot become a valid example; ``reason`` names why (counted in the manifest)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _identity(value: Any) -> Any:
    return value


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def _content(content: Any, role: str, redact: Redact, near: list[str]) -> Any:
    """OpenAI content for a canonical one: a string, or parts (text and images) for a user turn."""
    if content is None or content == "":
        return None
    if isinstance(content, str):
        text = redact(content)
        near.append(text)
        return text
    if isinstance(content, list):
        texts: list[str] = []
        parts: list[dict[str, Any]] = []
        for part in content:
            if not isinstance(part, dict):
                part = {"type": "text", "text": _text(part)}
            if part.get("type") == "image" and part.get("url"):
                parts.append({"type": "image_url", "image_url": {"url": str(part["url"])}})
            elif "text" in part:
                text = redact(_text(part.get("text")))
                texts.append(text)
                parts.append({"type": "text", "text": text})
        near.extend(texts)
        if role == "user" and any(p["type"] == "image_url" for p in parts):
            return parts
        joined = "\n".join(t for t in texts if t)
        return joined or None
    text = redact(_text(content))
    near.append(text)
    return text


def _arguments(arguments: Any, redact: Redact) -> str:
    """Tool-call arguments as the JSON text OpenAI expects (an object)."""
    if arguments is None or arguments == "":
        return "{}"
    if isinstance(arguments, str):  # canonical form keeps arguments parsed; a string did not parse
        raise Unusable("malformed_tool_call")
    if not isinstance(arguments, dict):
        raise Unusable("malformed_tool_call")
    return orjson.dumps(redact(arguments)).decode()


def _tool_calls(
    calls: list[dict[str, Any]], redact: Redact, near: list[str], counter: list[int]
) -> list[dict[str, Any]]:
    out = []
    for call in calls:
        name = str(call.get("name") or "")
        if not TOOL_NAME.match(name):
            raise Unusable("malformed_tool_call")
        call_id = str(call.get("id") or "")
        if not call_id:
            counter[0] += 1
            call_id = f"call_{counter[0]}"
        arguments = _arguments(call.get("arguments"), redact)
        near.append(f"{name}({arguments})")
        out.append(
            {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
        )
    return out


def to_openai_messages(
    messages: list[dict[str, Any]], redact: Redact | None = None, near: list[str] | None = None
) -> list[dict[str, Any]]:
    """Canonical messages as OpenAI chat messages, tool turns paired with their calls.

    Missing tool-call ids are filled in (``call_N``) and tool turns without an id
    answer the next open call, so conventions that drop ids still pair up.
    Raises Unusable for roles OpenAI does not know, orphan or unanswered tool
    calls, and malformed calls. ``redact`` (None: nothing to redact) rewrites
    every text; ``near`` collects the texts (for near-duplicate detection).
    """
    near = [] if near is None else near
    out: list[dict[str, Any]] = []
    open_calls: list[str] = []
    counter = [0]
    for m in messages:
        given = m.get("role")
        role = _ROLES.get(given) if isinstance(given, str) else None
        role = role or _ROLES.get(str(given or "").lower())
        if role is None:
            raise Unusable("unsupported_role")
        content = m.get("content")
        if (
            type(content) is str
            and role != "tool"
            and "tool_calls" not in m
            and not open_calls
            and content
        ):
            # the common turn: plain text, no tools
            if redact is not None:
                content = redact(content)
            near.append(content)
            plain: dict[str, Any] = {"role": role, "content": content}
            if "name" in m and TOOL_NAME.match(str(m["name"])):
                plain["name"] = str(m["name"])
            out.append(plain)
            continue
        if role != "tool" and open_calls:
            raise Unusable("unanswered_tool_call")
        if role == "tool":
            call_id = str(m.get("tool_call_id") or "")
            if not call_id and open_calls:
                call_id = open_calls[0]
            if call_id not in open_calls:
                raise Unusable("orphan_tool_result")
            open_calls.remove(call_id)
            text = _text(content)
            if redact is not None:
                text = redact(text)
            near.append(text)
            out.append({"role": "tool", "tool_call_id": call_id, "content": text})
            continue
        msg: dict[str, Any] = {"role": role}
        converted = _content(content, role, redact or _identity, near)
        if converted is not None:
            msg["content"] = converted
        calls = m.get("tool_calls")
        if calls:
            if role != "assistant":
                raise Unusable("unsupported_role")
            converted_calls = _tool_calls(calls, redact or _identity, near, counter)
            msg["tool_calls"] = converted_calls
            open_calls = [c["id"] for c in converted_calls]
        elif converted is None:
            if role == "assistant":
                continue  # an empty assistant turn in the history carries nothing
            msg["content"] = ""
        name = m.get("name")
        if name and TOOL_NAME.match(str(name)):
            msg["name"] = str(name)
        out.append(msg)
    if open_calls:
        raise Unusable("unanswered_tool_call")
    return out


def assistant_message(
    output: list[dict[str, Any]] | None, redact: Redact | None = None, near: list[str] | None = None
) -> dict[str, Any]:
    """The answer of an LLM span (its first choice) as an OpenAI assistant message."""
    near = [] if near is None else near
    if not output:
        raise Unusable("empty_output")
    first = output[0]
    if first.get("role") != "assistant":
        first = next(
            (
                m
                for m in output
                if str(m.get("role", "")).lower() in ("assistant", "ai", "model", "bot")
            ),
            first,
        )
    content = first.get("content")
    if type(content) is str and content.strip() and "tool_calls" not in first:
        if redact is not None:
            content = redact(content)
        near.append(content)
        return {"role": "assistant", "content": content}
    msg: dict[str, Any] = {"role": "assistant"}
    converted = _content(content, "assistant", redact or _identity, near)
    if isinstance(converted, str) and converted.strip():
        msg["content"] = converted
    if first.get("tool_calls"):
        msg["tool_calls"] = _tool_calls(first["tool_calls"], redact or _identity, near, [0])
    if "content" not in msg and "tool_calls" not in msg:
        raise Unusable("empty_output")
    return msg


# -- tool definitions ----------------------------------------------------------------------------


def _openai_tool(value: Any) -> dict[str, Any] | None:
    """One tool definition, in whichever shape it was recorded, as OpenAI's."""
    if not isinstance(value, dict):
        return None
    fn: dict[str, Any] = value["function"] if isinstance(value.get("function"), dict) else value
    name = fn.get("name")
    if not isinstance(name, str) or not TOOL_NAME.match(name):
        return None
    out: dict[str, Any] = {"name": name}
    if isinstance(fn.get("description"), str) and fn["description"]:
        out["description"] = fn["description"]
    params = fn.get("parameters", fn.get("input_schema"))
    if isinstance(params, str):
        try:
            params = orjson.loads(params)
        except orjson.JSONDecodeError:
            params = None
    if isinstance(params, dict):
        out["parameters"] = params
    if isinstance(fn.get("strict"), bool):
        out["strict"] = fn["strict"]
    return {"type": "function", "function": out}


def tool_definitions(tools: list[Any]) -> list[dict[str, Any]]:
    """The tools offered to an LLM call (the canonical list, ``tools_hash``) in OpenAI's shape;
    tools OpenAI cannot take (names it refuses, built-in tools) are left out, and the first
    definition of a name wins."""
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for value in tools:
        if not isinstance(value, dict) or value.get("type") != "function":
            continue  # a provider's built-in tool
        tool = _openai_tool(value)
        if tool is not None and tool["function"]["name"] not in seen:
            seen.add(tool["function"]["name"])
            out.append(tool)
    return out


_FINISH_CACHE: dict[tuple[str, ...], str | None] = {}


def finish_problem(finish_reasons: list[str] | tuple[str, ...], truncated: bool) -> str | None:
    """``truncated`` or ``filtered`` when a call's output is not a whole answer, else None.

    ``finish_reasons``: the span's (one per choice, as the provider spelled them);
    ``truncated``: the collector cut an attribute of the span.
    """
    if truncated:
        return "truncated"
    key = tuple(finish_reasons)
    if key in _FINISH_CACHE:
        return _FINISH_CACHE[key]
    lowered = {r.lower() for r in key}
    problem = (
        "truncated"
        if lowered & _TRUNCATED_REASONS
        else "filtered"
        if lowered & _FILTERED_REASONS
        else None
    )
    if len(_FINISH_CACHE) < 1024:
        _FINISH_CACHE[key] = problem
    return problem
