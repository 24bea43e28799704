"""OpenLLMetry / Traceloop SDK: ``traceloop.*`` workflow/task/agent/tool spans plus GenAI."""

from __future__ import annotations

from typing import Any

from agentledger.pipeline.normalize.conventions import genai
from agentledger.pipeline.normalize.fields import (
    Fields,
    decorated_value,
    from_openai_messages,
    set_param,
)
from agentledger.schemas.attributes import Traceloop as TL

__all__ = ["extract", "matches"]

_KINDS = {"workflow": "CHAIN", "task": "CHAIN", "agent": "AGENT", "tool": "TOOL"}
# request parameters of older releases, under their canonical names (after gen_ai.request.*)
_PARAMS = (
    (TL.FREQUENCY_PENALTY, "frequency_penalty"),
    (TL.PRESENCE_PENALTY, "presence_penalty"),
    (TL.TOP_K, "top_k"),
    (TL.STOP_SEQUENCES, "stop_sequences"),
    (TL.IS_STREAMING, "stream"),
    (TL.REPETITION_PENALTY, "repetition_penalty"),
)
_REQUEST_KINDS = {
    "chat": "LLM",
    "completion": "LLM",
    "embedding": "EMBEDDING",
    "rerank": "RERANKER",
}


def matches(attrs: dict[str, str]) -> bool:
    return (
        TL.SPAN_KIND in attrs
        or TL.REQUEST_TYPE in attrs
        or any(k.startswith(TL.ASSOCIATION_PREFIX) for k in attrs)
    )


def extract(attrs: dict[str, str], f: Fields, events: list[dict[str, Any]] | None = None) -> None:
    span_kind = attrs.get(TL.SPAN_KIND, "")
    f.kind = _KINDS.get(span_kind) or _REQUEST_KINDS.get(attrs.get(TL.REQUEST_TYPE, ""), "")
    genai.extract(attrs, f, events)
    f.session_id = f.session_id or attrs.get(TL.ASSOCIATION_PREFIX + "session_id", "")
    f.user_id = f.user_id or attrs.get(TL.ASSOCIATION_PREFIX + "user_id", "")
    name = attrs.get(TL.ENTITY_NAME, "")
    if span_kind == "tool":
        f.tool_name = f.tool_name or name
        f.operation = f.operation or "execute_tool"
        f.input_kind, f.output_kind = "tool_arguments", "tool_result"
    elif span_kind == "agent":
        f.agent_name = f.agent_name or name
        f.operation = f.operation or "invoke_agent"
    if span_kind and f.input_value is None and f.input_messages is None:
        value = decorated_value(attrs.get(TL.ENTITY_INPUT))
        f.input_messages = from_openai_messages(value) if f.kind == "LLM" else None
        f.input_value = value if f.input_messages is None else None
    if span_kind and f.output_value is None and f.output_messages is None:
        f.output_value = decorated_value(attrs.get(TL.ENTITY_OUTPUT))
    if f.kind in ("LLM", "EMBEDDING"):
        for key, param in _PARAMS:
            value = attrs.get(key)
            if value is not None:
                set_param(f, param, genai.scalar(value), override=False)
    if f.tools is None:
        tools = []
        i = 0
        while (function := attrs.get(f"{TL.FUNCTIONS_PREFIX}.{i}.{TL.FUNCTION_NAME}")) is not None:
            prefix = f"{TL.FUNCTIONS_PREFIX}.{i}."
            tool: dict[str, Any] = {"name": function}
            description = attrs.get(prefix + TL.FUNCTION_DESCRIPTION)
            if description is not None:
                tool["description"] = description
            parameters = attrs.get(prefix + TL.FUNCTION_PARAMETERS)
            if parameters is not None:
                tool["parameters"] = parameters
            tools.append(tool)
            i += 1
        f.tools = tools or None
