"""Langfuse Python SDK (v3): ``langfuse.observation.*`` JSON attributes."""

from __future__ import annotations

from typing import Any

from agentledger.pipeline.normalize.conventions import genai
from agentledger.pipeline.normalize.fields import (
    Fields,
    add_params,
    decorated_value,
    from_openai_messages,
    parse_json,
    request_tools,
)
from agentledger.schemas.attributes import Langfuse as LF
from agentledger.schemas.attributes import OpenInference as OI

__all__ = ["extract", "matches"]

_KINDS = {
    "generation": "LLM",
    "span": "CHAIN",
    "agent": "AGENT",
    "tool": "TOOL",
    "chain": "CHAIN",
    "retriever": "RETRIEVER",
    "embedding": "EMBEDDING",
    "evaluator": "EVALUATOR",
    "guardrail": "GUARDRAIL",
    "event": "UNKNOWN",
}


def matches(attrs: dict[str, str]) -> bool:
    return LF.OBSERVATION_TYPE in attrs or any(k.startswith("langfuse.") for k in attrs)


def _first_int(d: dict[str, Any], *keys: str) -> int | None:
    for k in keys:
        v = d.get(k)
        if isinstance(v, (int, float)):
            return int(v)
    return None


def extract(
    attrs: dict[str, str],
    f: Fields,
    events: list[dict[str, Any]] | None = None,
    span_name: str = "",
) -> None:
    f.kind = _KINDS.get(attrs.get(LF.OBSERVATION_TYPE, ""), "")
    genai.extract(attrs, f, events)  # the OpenAI integration also sets some gen_ai.* keys
    model = attrs.get(LF.MODEL_NAME, "")
    f.request_model = f.request_model or model
    f.response_model = f.response_model or model
    usage = parse_json(attrs.get(LF.USAGE_DETAILS))
    if isinstance(usage, dict):
        details_in = usage.get("prompt_tokens_details") or usage.get("input_token_details") or {}
        details_out = (
            usage.get("completion_tokens_details") or usage.get("output_token_details") or {}
        )
        if isinstance(details_in, dict):
            usage = {
                **usage,
                "input_cached_tokens": details_in.get(
                    "cached_tokens", details_in.get("cache_read")
                ),
            }
        if isinstance(details_out, dict):
            usage = {
                **usage,
                "output_reasoning_tokens": details_out.get(
                    "reasoning_tokens", details_out.get("reasoning")
                ),
            }
        f.input_tokens = (
            _first_int(usage, "input", "prompt_tokens", "input_tokens")
            if f.input_tokens is None
            else f.input_tokens
        )
        f.output_tokens = (
            _first_int(usage, "output", "completion_tokens", "output_tokens")
            if f.output_tokens is None
            else f.output_tokens
        )
        if f.cache_read_tokens is None:
            f.cache_read_tokens = _first_int(
                usage, "input_cached_tokens", "cache_read_input_tokens", "input_cache_read"
            )
        if f.reasoning_tokens is None:
            f.reasoning_tokens = _first_int(
                usage, "output_reasoning_tokens", "reasoning_tokens", "output_reasoning"
            )
    cost = parse_json(attrs.get(LF.COST_DETAILS))
    if isinstance(cost, dict) and f.cost is None:
        total = cost.get("total")
        if isinstance(total, (int, float)):
            f.cost = float(total)
        elif cost and all(isinstance(v, (int, float)) for v in cost.values()):
            f.cost = float(sum(cost.values()))
    add_params(f, parse_json(attrs.get(LF.MODEL_PARAMETERS)))  # over gen_ai.request.*
    if f.finish_reasons is None:
        reason = attrs.get(LF.METADATA_FINISH_REASON)
        f.finish_reasons = [reason] if reason else None
    f.user_id = f.user_id or attrs.get(LF.USER_ID) or attrs.get(OI.USER_ID, "")
    f.session_id = f.session_id or attrs.get(LF.SESSION_ID) or attrs.get(OI.SESSION_ID, "")
    raw_in, raw_out = attrs.get(LF.OBSERVATION_INPUT), attrs.get(LF.OBSERVATION_OUTPUT)
    if f.kind == "LLM":
        recorded = parse_json(raw_in) if not f.input_messages or f.tools is None else None
        f.input_messages = f.input_messages or from_openai_messages(recorded)
        f.output_messages = f.output_messages or from_openai_messages(parse_json(raw_out))
        if f.tools is None:  # the OpenAI integration records them with the messages
            f.tools = request_tools(recorded)
    if f.kind == "TOOL":
        f.tool_name = f.tool_name or span_name
        f.operation = f.operation or "execute_tool"
        f.input_kind, f.output_kind = "tool_arguments", "tool_result"
    if f.kind == "AGENT":
        f.agent_name = f.agent_name or span_name
    if f.input_messages is None and f.input_value is None:
        f.input_value = decorated_value(raw_in)
    if f.output_messages is None and f.output_value is None:
        f.output_value = decorated_value(raw_out)
    if f.kind == "LLM" and not f.operation:
        f.operation = "chat"
