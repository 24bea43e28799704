"""Per-span extraction state and the canonical message shape.

Canonical messages, whatever the convention they came from::

    {"role": "user", "content": "text"}                     # single text part
    {"role": "user", "content": [{"type": "text", "text": ...}, {"type": "image", "url": ...}]}
    {"role": "assistant", "tool_calls": [{"id": ..., "name": ..., "arguments": {...}}]}
    {"role": "tool", "tool_call_id": ..., "content": "..."}

Empty fields are omitted; tool-call arguments are parsed JSON when they parse,
so the same call hashes the same whichever library recorded it.
"""

from __future__ import annotations

from typing import Any

import orjson

__all__ = [
    "Fields",
    "parse_json",
    "parse_arguments",
    "to_int",
    "to_float",
    "message",
    "decorated_value",
    "from_openai_messages",
]


class Fields:
    """What the convention extractors found on one span."""

    __slots__ = (
        "kind",
        "operation",
        "provider",
        "request_model",
        "response_model",
        "system_fingerprint",
        "input_tokens",
        "output_tokens",
        "cache_read_tokens",
        "cache_write_tokens",
        "reasoning_tokens",
        "cost",
        "tool_name",
        "tool_call_id",
        "input_messages",
        "output_messages",
        "input_value",
        "output_value",
        "input_kind",
        "output_kind",
        "documents",
        "session_id",
        "user_id",
        "agent_name",
        "tools",
    )

    def __init__(self) -> None:
        self.kind = ""
        self.operation = ""
        self.provider = ""
        self.request_model = ""
        self.response_model = ""
        self.system_fingerprint = ""
        self.input_tokens: int | None = None
        self.output_tokens: int | None = None
        self.cache_read_tokens: int | None = None
        self.cache_write_tokens: int | None = None
        self.reasoning_tokens: int | None = None
        self.cost: float | None = None
        self.tool_name = ""
        self.tool_call_id = ""
        self.input_messages: list[dict[str, Any]] | None = None
        self.output_messages: list[dict[str, Any]] | None = None
        self.input_value: Any = None
        self.output_value: Any = None
        self.input_kind = ""
        self.output_kind = ""
        self.documents: list[tuple[str, str, float]] | None = None  # (id, text, score)
        self.session_id = ""
        self.user_id = ""
        self.agent_name = ""
        self.tools: list[Any] | None = None


def parse_json(value: str | None) -> Any:
    """``value`` parsed as JSON, or None when it is absent or not JSON."""
    if not value:
        return None
    c = value[0]
    if c not in '[{"0123456789-tfn':
        return None
    try:
        return orjson.loads(value)
    except ValueError:  # orjson.JSONDecodeError is a ValueError
        return None


def parse_arguments(value: Any) -> Any:
    """Tool-call arguments in canonical form: parsed JSON when possible, else as given."""
    if isinstance(value, str):
        parsed = parse_json(value)
        return value if parsed is None else parsed
    return value


def to_int(value: str | None) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        try:
            return int(float(value))
        except ValueError:
            return None


def to_float(value: str | None) -> float | None:
    if value is None or value == "":
        return None
    try:
        return float(value)
    except ValueError:
        return None


def message(
    role: str,
    content: Any = None,
    *,
    tool_calls: list[dict[str, Any]] | None = None,
    tool_call_id: str = "",
    name: str = "",
) -> dict[str, Any]:
    """A canonical message with empty fields left out."""
    msg: dict[str, Any] = {"role": role or "unknown"}
    if content is not None and content != "" and content != []:
        msg["content"] = content
    if tool_calls:
        msg["tool_calls"] = tool_calls
    if tool_call_id:
        msg["tool_call_id"] = tool_call_id
    if name:
        msg["name"] = name
    return msg


def _openai_content(content: Any) -> Any:
    """OpenAI content (string or list of parts) in canonical form."""
    if isinstance(content, list):
        parts: list[dict[str, Any]] = []
        for p in content:
            if not isinstance(p, dict):
                parts.append({"type": "text", "text": str(p)})
            elif p.get("type") == "text":
                parts.append({"type": "text", "text": p.get("text", "")})
            elif p.get("type") == "image_url":
                url = p.get("image_url")
                parts.append(
                    {"type": "image", "url": url.get("url", "") if isinstance(url, dict) else url}
                )
            else:
                parts.append(p)
        if len(parts) == 1 and parts[0].get("type") == "text":
            return parts[0]["text"]
        return parts
    return content


def from_openai_messages(value: Any) -> list[dict[str, Any]] | None:
    """OpenAI chat-format messages (as Langfuse or entity inputs record them) in canonical form."""
    if isinstance(value, dict):
        if isinstance(value.get("messages"), list):
            value = value["messages"]
        elif "role" in value:
            value = [value]
        else:
            return None
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(m, dict) and "role" in m for m in value)
    ):
        return None
    out = []
    for m in value:
        calls = []
        for tc in m.get("tool_calls") or []:
            fn = tc.get("function") or {}
            calls.append(
                {
                    "id": tc.get("id", ""),
                    "name": fn.get("name", tc.get("name", "")),
                    "arguments": parse_arguments(fn.get("arguments", tc.get("arguments", ""))),
                }
            )
        out.append(
            message(
                m.get("role", ""),
                _openai_content(m.get("content")),
                tool_calls=calls or None,
                tool_call_id=m.get("tool_call_id") or "",
                name=m.get("name") or "",
            )
        )
    return out


def decorated_value(raw: str | None) -> Any:
    """Inputs and outputs recorded by function decorators (Traceloop, Langfuse), unwrapped.

    Decorators record a call as ``{"args": [...], "kwargs": {...}}`` and return
    values as JSON: a lone keyword dict or single argument is the real input, and
    a JSON-encoded string is that string, so the same call hashes the same as in
    conventions that record the arguments themselves.
    """
    if raw is None:
        return None
    parsed = parse_json(raw)
    if isinstance(parsed, str):
        return parsed
    if isinstance(parsed, dict) and parsed and set(parsed) <= {"args", "kwargs"}:
        args, kwargs = parsed.get("args") or [], parsed.get("kwargs") or {}
        if kwargs and not args:
            return kwargs
        if len(args) == 1 and not kwargs:
            return args[0]
    return raw
