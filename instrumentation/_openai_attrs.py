"""The OpenInference attributes of an OpenAI chat call, built as one dict from precomputed keys.

What ``_openai.py``'s wrapper records, apart from how it hooks the SDK: a
request's attributes (from a snapshot of its ``json_data``), a completion's or a
stream's, and the provider a client's host names. ``helpers.llm_call`` writes
its messages with the same functions, so both spans read alike to the
normalizer. Content whose capture is off is never touched.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping
from typing import Any

from agentledger.schemas.attributes import GenAI as G
from agentledger.schemas.attributes import OpenInference as OI

__all__ = ["request_attributes", "response_attributes"]

_JSON_ENCODE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=str).encode
try:  # orjson, when the agent has it, writes the same compact JSON about five times faster
    import orjson as _orjson

    _ORJSON_OPTIONS = _orjson.OPT_NON_STR_KEYS

    def _ENCODE(value: Any, /) -> str:
        try:
            return _orjson.dumps(value, default=str, option=_ORJSON_OPTIONS).decode()
        except (
            TypeError
        ):  # what orjson refuses (integers beyond 64 bits, deep nesting): the stdlib's way
            return _JSON_ENCODE(value)
except ImportError:  # pragma: no cover - orjson is optional on the agent side
    _ENCODE = _JSON_ENCODE
_NOT_PARAMS = frozenset({"messages", "tools", "functions"})
_MAX_CACHED = 128


def _index_keys(prefix: str) -> Callable[[int], tuple[str, ...]]:
    """Keys of message ``i`` under ``prefix``: role, content, tool_call_id, name, contents., tool_calls."""

    @functools.lru_cache(maxsize=_MAX_CACHED)
    def keys(i: int) -> tuple[str, ...]:
        base = f"{prefix}.{i}."
        return (
            base + OI.MESSAGE_ROLE,
            base + OI.MESSAGE_CONTENT,
            base + OI.MESSAGE_TOOL_CALL_ID,
            base + OI.MESSAGE_NAME,
            base + OI.MESSAGE_CONTENTS + ".",
            base + OI.MESSAGE_TOOL_CALLS + ".",
        )

    return keys


_IN_KEYS = _index_keys(OI.LLM_INPUT_MESSAGES)
_OUT_KEYS = _index_keys(OI.LLM_OUTPUT_MESSAGES)


@functools.lru_cache(maxsize=_MAX_CACHED)
def _tool_keys(i: int) -> str:
    return f"{OI.LLM_TOOLS}.{i}.{OI.TOOL_JSON_SCHEMA}"


@functools.lru_cache(maxsize=_MAX_CACHED * 4)
def _call_keys(prefix: str, j: int) -> tuple[str, str, str]:
    base = f"{prefix}{j}."
    return (
        base + OI.TOOL_CALL_ID_SUFFIX,
        base + OI.TOOL_CALL_NAME_SUFFIX,
        base + OI.TOOL_CALL_ARGUMENTS_SUFFIX,
    )


def _provider_from_host(host: str) -> str:
    if "azure" in host:
        return "azure"
    if host.endswith("openai.com") or not host:
        return "openai"
    for name in (
        "anthropic",
        "groq",
        "mistral",
        "deepseek",
        "together",
        "fireworks",
        "openrouter",
        "x.ai",
    ):
        if name in host:
            return "xai" if name == "x.ai" else name
    return "openai"


class _Capture:
    """The two switches the wrapper reads (set from ``CaptureConfig``)."""

    __slots__ = ("messages", "tool_io")

    def __init__(self, messages: bool, tool_io: bool) -> None:
        self.messages = messages
        self.tool_io = tool_io


def _tool_calls(
    attrs: dict[str, Any], prefix: str, calls: Any, tool_io: bool, dict_shape: bool
) -> None:
    for j, call in enumerate(calls):
        id_key, name_key, args_key = _call_keys(prefix, j)
        if dict_shape:
            cid = call.get("id")
            fn = call.get("function") or {}
            name, arguments = fn.get("name"), fn.get("arguments")
        else:
            cid = getattr(call, "id", None)
            fn = getattr(call, "function", None)
            name = getattr(fn, "name", None)
            arguments = getattr(fn, "arguments", None)
        if cid:
            attrs[id_key] = cid
        if name:
            attrs[name_key] = name
        if arguments and tool_io:
            attrs[args_key] = arguments


def _input_messages(attrs: dict[str, Any], messages: Any, capture: _Capture) -> None:
    for i, m in enumerate(messages):
        if not isinstance(m, Mapping):
            continue
        role_key, content_key, call_id_key, name_key, parts_prefix, calls_prefix = _IN_KEYS(i)
        role = m.get("role")
        if role:
            attrs[role_key] = role if isinstance(role, str) else str(getattr(role, "value", role))
        call_id = m.get("tool_call_id")
        if call_id:
            attrs[call_id_key] = call_id
        name = m.get("name")
        if name:
            attrs[name_key] = name
        content = m.get("content")
        if content and (capture.tool_io if role == "tool" else capture.messages):
            if isinstance(content, str):
                attrs[content_key] = content
            elif isinstance(content, list):
                for k, part in enumerate(content):
                    base = f"{parts_prefix}{k}."
                    if isinstance(part, Mapping):
                        ptype = part.get("type")
                        if ptype == "text":
                            attrs[base + OI.MESSAGE_CONTENT_TYPE] = "text"
                            attrs[base + OI.MESSAGE_CONTENT_TEXT] = part.get("text") or ""
                        elif ptype == "image_url":
                            url = part.get("image_url")
                            url = url.get("url") if isinstance(url, Mapping) else url
                            attrs[base + OI.MESSAGE_CONTENT_TYPE] = "image"
                            if isinstance(url, str):
                                attrs[base + OI.MESSAGE_CONTENT_IMAGE_URL] = url
                        else:
                            attrs[base + OI.MESSAGE_CONTENT_TYPE] = str(ptype)
                            attrs[base + OI.MESSAGE_CONTENT_TEXT] = _ENCODE(part)
            else:
                attrs[content_key] = _ENCODE(content)
        calls = m.get("tool_calls")
        if calls:
            _tool_calls(attrs, calls_prefix, calls, capture.tool_io, True)


def request_attributes(
    params: Mapping[str, Any], provider: str, capture: _Capture
) -> dict[str, Any]:
    """OpenInference attributes of a chat completion request (``json_data`` of the SDK call)."""
    attrs: dict[str, Any] = {
        OI.SPAN_KIND: "LLM",
        OI.LLM_SYSTEM: "openai",
        OI.LLM_PROVIDER: provider,
    }
    model = params.get("model")
    if isinstance(model, str):
        attrs[OI.LLM_REQUEST_MODEL] = model
        attrs[OI.LLM_MODEL_NAME] = model  # replaced by the answered model at the end
    attrs[OI.LLM_INVOCATION_PARAMETERS] = _ENCODE(
        {k: v for k, v in params.items() if k not in _NOT_PARAMS}
    )
    tools = params.get("tools")
    if tools:
        for i, t in enumerate(tools):
            attrs[_tool_keys(i)] = _ENCODE(t)
    messages = params.get("messages")
    if messages:
        _input_messages(attrs, messages, capture)
    return attrs


def _usage_attributes(attrs: dict[str, Any], usage: Any) -> None:
    for key, name in (
        (OI.TOKENS_PROMPT, "prompt_tokens"),
        (OI.TOKENS_COMPLETION, "completion_tokens"),
        (OI.TOKENS_TOTAL, "total_tokens"),
    ):
        value = getattr(usage, name, None)
        if isinstance(value, int):
            attrs[key] = value
    details = getattr(usage, "prompt_tokens_details", None)
    cached = getattr(details, "cached_tokens", None) if details is not None else None
    if isinstance(cached, int):
        attrs[OI.TOKENS_CACHE_READ] = cached
    details = getattr(usage, "completion_tokens_details", None)
    reasoning = getattr(details, "reasoning_tokens", None) if details is not None else None
    if isinstance(reasoning, int):
        attrs[OI.TOKENS_REASONING] = reasoning


def response_attributes(completion: Any, capture: _Capture) -> dict[str, Any]:
    """OpenInference attributes of a ``ChatCompletion`` (plus the system fingerprint)."""
    attrs: dict[str, Any] = {}
    model = getattr(completion, "model", None)
    if model:
        attrs[OI.LLM_MODEL_NAME] = model
        attrs[OI.LLM_RESPONSE_MODEL] = model
    fingerprint = getattr(completion, "system_fingerprint", None)
    if fingerprint:
        attrs[G.SYSTEM_FINGERPRINT_NEW] = fingerprint
    usage = getattr(completion, "usage", None)
    if usage is not None:
        _usage_attributes(attrs, usage)
    for choice in getattr(completion, "choices", None) or ():
        index = getattr(choice, "index", 0) or 0
        message = getattr(choice, "message", None)
        if message is not None:
            role_key, content_key, _, _, _, calls_prefix = _OUT_KEYS(index)
            attrs[role_key] = getattr(message, "role", None) or "assistant"
            content = getattr(message, "content", None)
            if content and capture.messages:
                attrs[content_key] = content
            calls = getattr(message, "tool_calls", None)
            if calls:
                _tool_calls(attrs, calls_prefix, calls, capture.tool_io, False)
        if index == 0:
            reason = getattr(choice, "finish_reason", None)
            if reason:
                attrs[OI.LLM_FINISH_REASON] = reason
    return attrs


class _StreamAccumulator:
    """Chat completion chunks folded into the attributes of the whole answer."""

    __slots__ = ("calls", "fingerprint", "finish", "model", "roles", "texts", "usage")

    def __init__(self) -> None:
        self.model: str | None = None
        self.fingerprint: str | None = None
        self.usage: Any = None
        self.roles: dict[int, str] = {}
        self.texts: dict[int, list[str]] = {}
        self.calls: dict[int, dict[int, dict[str, Any]]] = {}
        self.finish: str | None = None

    def add(self, chunk: Any) -> None:
        if self.model is None:
            self.model = getattr(chunk, "model", None) or None
        if self.fingerprint is None:
            self.fingerprint = getattr(chunk, "system_fingerprint", None) or None
        usage = getattr(chunk, "usage", None)
        if usage is not None:
            self.usage = usage
        for choice in getattr(chunk, "choices", None) or ():
            index = getattr(choice, "index", 0) or 0
            delta = getattr(choice, "delta", None)
            if delta is not None:
                role = getattr(delta, "role", None)
                if role:
                    self.roles[index] = role
                text = getattr(delta, "content", None)
                if text:
                    self.texts.setdefault(index, []).append(text)
                for tc in getattr(delta, "tool_calls", None) or ():
                    call = self.calls.setdefault(index, {}).setdefault(
                        getattr(tc, "index", 0) or 0, {"id": None, "name": None, "arguments": []}
                    )
                    if getattr(tc, "id", None):
                        call["id"] = tc.id
                    fn = getattr(tc, "function", None)
                    if fn is not None:
                        if getattr(fn, "name", None):
                            call["name"] = fn.name
                        if getattr(fn, "arguments", None):
                            call["arguments"].append(fn.arguments)
            reason = getattr(choice, "finish_reason", None)
            if reason and index == 0:
                self.finish = reason

    def attributes(self, capture: _Capture) -> dict[str, Any]:
        attrs: dict[str, Any] = {}
        if self.model:
            attrs[OI.LLM_MODEL_NAME] = attrs[OI.LLM_RESPONSE_MODEL] = self.model
        if self.fingerprint:
            attrs[G.SYSTEM_FINGERPRINT_NEW] = self.fingerprint
        if self.usage is not None:
            _usage_attributes(attrs, self.usage)
        for index in sorted(set(self.roles) | set(self.texts) | set(self.calls)):
            role_key, content_key, _, _, _, calls_prefix = _OUT_KEYS(index)
            attrs[role_key] = self.roles.get(index, "assistant")
            if index in self.texts and capture.messages:
                attrs[content_key] = "".join(self.texts[index])
            calls = [
                {
                    "id": c["id"],
                    "function": {"name": c["name"], "arguments": "".join(c["arguments"])},
                }
                for _, c in sorted(self.calls.get(index, {}).items())
            ]
            if calls:
                _tool_calls(attrs, calls_prefix, calls, capture.tool_io, True)
        if self.finish:
            attrs[OI.LLM_FINISH_REASON] = self.finish
        return attrs


_Answer = tuple[Callable[..., dict[str, Any]], tuple[Any, ...], Any]
"""How to compute a response's attributes (function, arguments) and the model it answered with."""


def _snapshot(params: Mapping[str, Any]) -> dict[str, Any]:
    """The request as sent: what the caller may still change afterwards is copied.

    Agents append to the message list they passed, and may edit a message dict
    in place; both are copied (one level: the content parts of a message are
    not). The SDK's own request transform copies them too today; this keeps the
    record right should it stop.
    """
    out = dict(params)
    messages = out.get("messages")
    if isinstance(messages, (list, tuple)):
        out["messages"] = [dict(m) if type(m) is dict else m for m in messages]
    tools = out.get("tools")
    if isinstance(tools, list):
        out["tools"] = list(tools)
    return out
