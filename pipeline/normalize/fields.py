"""Per-span extraction state, and the helpers that build the canonical LLM call.

The canonical shapes (messages, tools, request parameters) are defined in
``agentledger.schemas.calls``; the convention extractors build them with the helpers here::

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

from agentledger.schemas.calls import NOT_PARAMS, PARAM_NAMES

__all__ = [
    "Fields",
    "parse_json",
    "parse_arguments",
    "to_int",
    "to_float",
    "message",
    "decorated_value",
    "from_openai_messages",
    "add_params",
    "set_param",
    "request_tools",
    "canonical_tool",
    "reasons_of",
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
        "tools_text",
        "params",
        "params_text",
        "finish_reasons",
        "raw_request",
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
        self.tools: list[Any] | None = None  # as recorded; canonical_tool() makes them canonical
        self.tools_text: str | None = None  # the attribute text(s) ``tools`` came from, if so
        self.params: dict[str, Any] | None = None  # canonical names (add_params, set_param)
        self.params_text: str | None = None  # the one JSON text ``params`` came from, if so
        self.finish_reasons: list[str] | None = None
        self.raw_request: str | None = None


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


# -- the canonical call: parameters, tools, finish reasons (agentledger.schemas.calls) ----------


def set_param(f: Fields, name: str, value: Any, *, override: bool) -> None:
    """Record request parameter ``name`` (any spelling) on ``f``; an earlier value of the same
    canonical name is kept unless ``override``."""
    name = PARAM_NAMES.get(name, name)
    if name in NOT_PARAMS:
        return
    params = f.params
    if params is None:
        f.params = {name: value}
    elif override or name not in params:
        params[name] = value


def add_params(f: Fields, recorded: Any) -> None:
    """The members of a JSON object of request parameters (later members and later objects win)."""
    if isinstance(recorded, dict):
        params = f.params
        if params is None:
            params = f.params = {}
        canonical = PARAM_NAMES.get
        for name, value in recorded.items():
            name = canonical(name, name)
            if name not in NOT_PARAMS:
                params[name] = value


def request_tools(recorded: Any) -> list[Any] | None:
    """The ``tools`` (then legacy ``functions``) of a recorded request or parameter object."""
    if not isinstance(recorded, dict):
        return None
    tools: list[Any] = []
    for key in ("tools", "functions"):
        value = recorded.get(key)
        if isinstance(value, list):
            tools.extend(value)
    return tools or None


def canonical_tool(value: Any) -> Any:
    """One tool definition, in whichever shape it was recorded, in the canonical shape
    (``agentledger.schemas.calls.ToolDefinition``); a tool that is not a function, as recorded."""
    if not isinstance(value, dict):
        return value
    fn = value.get("function")
    if isinstance(fn, dict):
        src = fn  # OpenAI chat: {"type": "function", "function": {...}}
    elif "input_schema" in value or value.get("type") in (None, "function"):
        src = value  # Anthropic, or flat (GenAI, Responses, OpenLLMetry)
    else:
        return value
    name = src.get("name")
    if not isinstance(name, str):
        return value
    out: dict[str, Any] = {"type": "function", "name": name}
    description = src.get("description")
    if isinstance(description, str) and description:
        out["description"] = description
    parameters = src.get("parameters")
    if parameters is None:
        parameters = src.get("input_schema")
    if parameters is not None:
        out["parameters"] = parse_arguments(parameters)
    strict = src.get("strict")
    if isinstance(strict, bool):
        out["strict"] = strict
    return out


def reasons_of(value: str | None) -> list[str] | None:
    """Finish reasons recorded as one attribute: a JSON array of strings (GenAI) or one reason."""
    if not value:
        return None
    if value[0] == "[":
        parsed = parse_json(value)
        if isinstance(parsed, list):
            return [r for r in parsed if isinstance(r, str) and r] or None
    return [value]
