"""OpenLLMetry / Traceloop SDK: ``traceloop.*`` workflow/task/agent/tool spans plus GenAI."""

from __future__ import annotations

from typing import Any

from agentledger.pipeline.normalize.conventions import genai
from agentledger.pipeline.normalize.fields import (
    Fields,
    decorated_value,
    from_openai_messages,
    parse_json,
)
from agentledger.schemas.attributes import Traceloop as TL

__all__ = ["extract", "matches"]

_KINDS = {"workflow": "CHAIN", "task": "CHAIN", "agent": "AGENT", "tool": "TOOL"}
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
    if f.tools is None:
        tools = []
        i = 0
        while f"{TL.FUNCTIONS_PREFIX}.{i}.name" in attrs:
            p = f"{TL.FUNCTIONS_PREFIX}.{i}."
            tools.append(
                {
                    "name": attrs[p + "name"],
                    "description": attrs.get(p + "description", ""),
                    "parameters": parse_json(attrs.get(p + "parameters")) or {},
                }
            )
            i += 1
        f.tools = tools or None
