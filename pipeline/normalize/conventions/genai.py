"""OpenTelemetry GenAI conventions (``gen_ai.*``): the JSON ``parts`` shape, the legacy
indexed ``gen_ai.prompt.N.*`` attributes, and the legacy content events.

OpenLLMetry and OpenLIT build on these attributes, so their extractors call
``extract`` first and then add what is specific to them.
"""

from __future__ import annotations

from typing import Any

from agentledger.pipeline.normalize.fields import (
    Fields,
    from_openai_messages,
    message,
    parse_arguments,
    parse_json,
    reasons_of,
    to_float,
    to_int,
)
from agentledger.schemas.attributes import GenAI as G
from agentledger.schemas.attributes import OpenInference as OI
from agentledger.schemas.attributes import Traceloop as TL
from agentledger.schemas.calls import NOT_PARAMS, PARAM_NAMES
from agentledger.schemas.contents import canonical_text

__all__ = ["extract", "matches", "from_parts", "scalar"]

_OPERATION_KINDS = {
    "chat": "LLM",
    "text_completion": "LLM",
    "generate_content": "LLM",
    "completion": "LLM",
    "responses": "LLM",
    "embeddings": "EMBEDDING",
    "embedding": "EMBEDDING",
    "execute_tool": "TOOL",
    "invoke_agent": "AGENT",
    "create_agent": "AGENT",
    "retrieval": "RETRIEVER",
    "retrieve": "RETRIEVER",
    "vectordb": "RETRIEVER",
    "rerank": "RERANKER",
    "framework": "CHAIN",
    "workflow": "CHAIN",
}


def matches(attrs: dict[str, str]) -> bool:
    return (
        G.OPERATION_NAME in attrs
        or G.SYSTEM in attrs
        or G.PROVIDER_NAME in attrs
        or G.REQUEST_MODEL in attrs
    )


def from_parts(value: Any) -> list[dict[str, Any]] | None:
    """GenAI ``parts`` messages (``gen_ai.input.messages``) in canonical form."""
    if not isinstance(value, list):
        return None
    out = []
    for m in value:
        if not isinstance(m, dict):
            continue
        if "parts" not in m:
            converted = from_openai_messages([m]) if "role" in m else None
            out.extend(converted or [])
            continue
        role = m.get("role", "")
        texts: list[str] = []
        others: list[dict[str, Any]] = []
        calls: list[dict[str, Any]] = []
        tool_call_id = ""
        response: Any = None
        for p in m.get("parts") or []:
            if not isinstance(p, dict):
                continue
            ptype = p.get("type")
            if ptype == "text":
                texts.append(p.get("content", ""))
            elif ptype == "tool_call":
                calls.append(
                    {
                        "id": p.get("id") or "",
                        "name": p.get("name", ""),
                        "arguments": parse_arguments(p.get("arguments", "")),
                    }
                )
            elif ptype == "tool_call_response":
                tool_call_id = p.get("id") or ""
                response = p.get("response", p.get("result"))
            else:
                others.append(p)
        if response is not None:
            out.append(message("tool", canonical_text(response), tool_call_id=tool_call_id))
            continue
        content: Any
        if others:
            content = [{"type": "text", "text": t} for t in texts] + others
        elif len(texts) == 1:
            content = texts[0]
        else:
            content = "\n".join(texts) if texts else None
        out.append(message(role, content, tool_calls=calls or None, name=m.get("name") or ""))
    return out or None


def _system_instructions(value: Any) -> dict[str, Any] | None:
    if isinstance(value, list):
        texts = [
            p.get("content", "") for p in value if isinstance(p, dict) and p.get("type") == "text"
        ]
        return message("system", "\n".join(texts)) if texts else None
    if isinstance(value, str) and value:
        return message("system", value)
    return None


def _indexed(attrs: dict[str, str], prefix: str) -> list[dict[str, Any]] | None:
    """Legacy ``gen_ai.prompt.N.role`` / ``.content`` / ``.tool_calls.K.*`` messages."""
    out = []
    i = 0
    while True:
        base = f"{prefix}.{i}."
        role = attrs.get(base + "role")
        content: Any = attrs.get(base + "content")
        calls = []
        k = 0
        while True:
            tp = f"{base}tool_calls.{k}."
            name = attrs.get(tp + "name")
            cid = attrs.get(tp + "id")
            if name is None and cid is None:
                break
            calls.append(
                {
                    "id": cid or "",
                    "name": name or "",
                    "arguments": parse_arguments(attrs.get(tp + "arguments", "")),
                }
            )
            k += 1
        if role is None and content is None and not calls:
            break
        if isinstance(content, str) and content[:1] == "[":
            parsed = parse_json(content)  # OpenLLMetry writes multi-part content as JSON
            if isinstance(parsed, list):
                converted = from_openai_messages([{"role": role or "", "content": parsed}])
                content = converted[0].get("content") if converted else content
        out.append(
            message(
                role or "",
                content,
                tool_calls=calls or None,
                tool_call_id=attrs.get(base + "tool_call_id", ""),
            )
        )
        i += 1
    return out or None


def _from_events(events: list[dict[str, Any]] | None, f: Fields) -> None:
    """Legacy content events: ``gen_ai.content.prompt`` / ``gen_ai.content.completion``, and the
    finish reasons of ``gen_ai.choice`` events."""
    if not events:
        return
    inputs: list[dict[str, Any]] = []
    outputs: list[dict[str, Any]] = []
    reasons: list[str] = []
    for ev in events:
        name = ev.get("name", "")
        eattrs = ev.get("attributes") or {}
        if name == G.EVENT_CHOICE:
            reason = eattrs.get(G.FINISH_REASON)
            if isinstance(reason, str) and reason:
                reasons.append(reason)
        if name == G.EVENT_CONTENT_PROMPT and f.input_messages is None:
            value = eattrs.get(G.PROMPT_PREFIX)
            parsed = parse_json(value) if isinstance(value, str) else value
            msgs = from_parts(parsed) or from_openai_messages(parsed)
            if msgs:
                inputs.extend(msgs)
            elif value:
                inputs.append(message("user", value))
        elif name == G.EVENT_CONTENT_COMPLETION and f.output_messages is None:
            value = eattrs.get(G.COMPLETION_PREFIX)
            parsed = parse_json(value) if isinstance(value, str) else value
            msgs = from_parts(parsed) or from_openai_messages(parsed)
            if msgs:
                outputs.extend(msgs)
            elif value:
                outputs.append(message("assistant", value))
        elif (
            name.startswith("gen_ai.")
            and name.endswith(G.EVENT_MESSAGE_SUFFIX)
            and f.input_messages is None
        ):
            role = name[len("gen_ai.") : -len(G.EVENT_MESSAGE_SUFFIX)]
            if "content" in eattrs:
                inputs.append(message(role, eattrs.get("content")))
        elif name == G.EVENT_CHOICE and f.output_messages is None and "content" in eattrs:
            outputs.append(message("assistant", eattrs.get("content")))
    if inputs:
        f.input_messages = inputs
    if outputs:
        f.output_messages = outputs
    if reasons and f.finish_reasons is None:
        f.finish_reasons = reasons


def scalar(text: str) -> Any:
    """A parameter recorded as an attribute: its JSON value when the text is JSON, else the text."""
    parsed = parse_json(text)
    return text if parsed is None else parsed


_PARAM_PREFIXES = (G.REQUEST_PREFIX, G.OPENAI_REQUEST_PREFIX)
_MODEL_CALLS = ("LLM", "EMBEDDING")  # the spans whose request parameters are read
_REQUEST_CUT = len(G.REQUEST_PREFIX)
_OPENAI_REQUEST_CUT = len(G.OPENAI_REQUEST_PREFIX)


def _params(attrs: dict[str, str], f: Fields) -> None:
    """``gen_ai.request.*`` (and the older ``gen_ai.openai.request.*``) parameters, in attribute
    order, an earlier one kept (``set_param``, inlined: this runs on every GenAI model call)."""
    found = [key for key in attrs if "request." in key and key.startswith(_PARAM_PREFIXES)]
    if not found:
        return
    params = f.params
    if params is None:
        params = f.params = {}
    for key in found:
        name = key[_REQUEST_CUT if key.startswith(G.REQUEST_PREFIX) else _OPENAI_REQUEST_CUT :]
        name = PARAM_NAMES.get(name, name)
        if name not in params and name not in NOT_PARAMS:
            params[name] = scalar(attrs[key])


def _message_reasons(parsed: Any) -> list[str] | None:
    """Finish reasons of ``parts`` output messages (``{"role", "parts", "finish_reason"}``)."""
    if not isinstance(parsed, list):
        return None
    reasons = []
    for m in parsed:
        if isinstance(m, dict):
            reason = m.get(G.FINISH_REASON)
            if isinstance(reason, str) and reason:
                reasons.append(reason)
    return reasons or None


def _indexed_reasons(attrs: dict[str, str], count: int) -> list[str] | None:
    """Finish reasons of legacy indexed completions (``gen_ai.completion.N.finish_reason``)."""
    reasons = []
    for i in range(count):
        reason = attrs.get(f"{G.COMPLETION_PREFIX}.{i}.{G.FINISH_REASON}")
        if reason:
            reasons.append(reason)
    return reasons or None


def extract(attrs: dict[str, str], f: Fields, events: list[dict[str, Any]] | None = None) -> None:
    op = attrs.get(G.OPERATION_NAME, "")
    if not f.kind or f.kind == "UNKNOWN":
        f.kind = _OPERATION_KINDS.get(op, "LLM" if G.REQUEST_MODEL in attrs else "UNKNOWN")
    f.operation = f.operation or op
    f.provider = f.provider or attrs.get(G.PROVIDER_NAME) or attrs.get(G.SYSTEM, "")
    f.request_model = f.request_model or attrs.get(G.REQUEST_MODEL, "")
    f.response_model = f.response_model or attrs.get(G.RESPONSE_MODEL, "") or f.request_model
    if not f.request_model:
        f.request_model = f.response_model
    f.system_fingerprint = (
        f.system_fingerprint
        or attrs.get(G.SYSTEM_FINGERPRINT_NEW)
        or attrs.get(G.SYSTEM_FINGERPRINT, "")
    )
    if f.input_tokens is None:
        f.input_tokens = to_int(attrs.get(G.INPUT_TOKENS) or attrs.get(G.PROMPT_TOKENS_OLD))
    if f.output_tokens is None:
        f.output_tokens = to_int(attrs.get(G.OUTPUT_TOKENS) or attrs.get(G.COMPLETION_TOKENS_OLD))
    if f.cache_read_tokens is None:
        f.cache_read_tokens = to_int(
            attrs.get(G.CACHE_READ_TOKENS) or attrs.get(TL.CACHE_READ_TOKENS)
        )
    if f.cache_write_tokens is None:
        f.cache_write_tokens = to_int(
            attrs.get(G.CACHE_WRITE_TOKENS) or attrs.get(TL.CACHE_WRITE_TOKENS)
        )
    if f.reasoning_tokens is None:
        f.reasoning_tokens = to_int(attrs.get(G.REASONING_TOKENS) or attrs.get(TL.REASONING_TOKENS))
    if f.cost is None:
        f.cost = to_float(attrs.get(G.COST))
    f.session_id = f.session_id or attrs.get(G.CONVERSATION_ID) or attrs.get(OI.SESSION_ID, "")
    f.user_id = f.user_id or attrs.get(OI.USER_ID, "")
    f.agent_name = f.agent_name or attrs.get(G.AGENT_NAME, "")
    if f.kind == "TOOL":
        f.tool_name = f.tool_name or attrs.get(G.TOOL_NAME, "")
        f.tool_call_id = f.tool_call_id or attrs.get(G.TOOL_CALL_ID, "")
        if f.input_value is None:
            f.input_value = attrs.get(G.TOOL_CALL_ARGUMENTS)
        if f.output_value is None:
            f.output_value = attrs.get(G.TOOL_CALL_RESULT)
        f.input_kind, f.output_kind = "tool_arguments", "tool_result"
    if f.input_messages is None and G.INPUT_MESSAGES in attrs:
        f.input_messages = from_parts(parse_json(attrs[G.INPUT_MESSAGES]))
    if f.input_messages is None:
        f.input_messages = _indexed(attrs, G.PROMPT_PREFIX)
    if f.kind in _MODEL_CALLS:
        _params(attrs, f)
    if f.finish_reasons is None:
        reason, reasons = attrs.get(OI.LLM_FINISH_REASON), reasons_of(attrs.get(G.FINISH_REASONS))
        if reason:
            f.finish_reasons = [reason, *(reasons or ())]
        else:
            f.finish_reasons = reasons
    if f.output_messages is None and G.OUTPUT_MESSAGES in attrs:
        parsed = parse_json(attrs[G.OUTPUT_MESSAGES])
        f.output_messages = from_parts(parsed)
        if f.finish_reasons is None:
            f.finish_reasons = _message_reasons(parsed)
    if f.output_messages is None:
        f.output_messages = _indexed(attrs, G.COMPLETION_PREFIX)
        if f.output_messages is not None and f.finish_reasons is None:
            f.finish_reasons = _indexed_reasons(attrs, len(f.output_messages))
    _from_events(events, f)
    system = _system_instructions(
        parse_json(attrs.get(G.SYSTEM_INSTRUCTIONS)) or attrs.get(G.SYSTEM_INSTRUCTIONS)
    )
    if system is not None:
        msgs = f.input_messages or []
        if not any(m.get("role") == "system" for m in msgs):
            f.input_messages = [system, *msgs]
    if f.tools is None:
        text = attrs.get(G.TOOL_DEFINITIONS)
        tools = parse_json(text)
        if isinstance(tools, list):
            f.tools, f.tools_text = tools, f"otel_genai\0{text}"
