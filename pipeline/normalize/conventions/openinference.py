"""OpenInference: ``openinference.span.kind``, flattened ``llm.*`` messages, documents, tools."""

from __future__ import annotations

from typing import Any

from agentledger.pipeline.normalize.fields import (
    Fields,
    message,
    parse_arguments,
    parse_json,
    to_float,
    to_int,
)
from agentledger.schemas.attributes import OpenInference as OI

__all__ = ["extract", "messages", "matches"]

_KINDS = {
    "LLM": "LLM", "TOOL": "TOOL", "RETRIEVER": "RETRIEVER", "EMBEDDING": "EMBEDDING",
    "RERANKER": "RERANKER", "AGENT": "AGENT", "CHAIN": "CHAIN", "GUARDRAIL": "GUARDRAIL",
    "EVALUATOR": "EVALUATOR", "PROMPT": "CHAIN", "DECISION": "LLM",
}


def matches(attrs: dict[str, str]) -> bool:
    return OI.SPAN_KIND in attrs


def _contents(attrs: dict[str, str], base: str) -> Any:
    """Multi-part content (``message.contents.N.message_content.*``), or None."""
    parts: list[dict[str, Any]] = []
    j = 0
    while True:
        p = f"{base}.{OI.MESSAGE_CONTENTS}.{j}.message_content."
        ptype = attrs.get(p + "type")
        text = attrs.get(p + "text")
        image = attrs.get(p + "image.image.url")
        if ptype is None and text is None and image is None:
            break
        if image is not None:
            parts.append({"type": "image", "url": image})
        else:
            parts.append({"type": ptype or "text", "text": text or ""})
        j += 1
    if not parts:
        return None
    if len(parts) == 1 and parts[0]["type"] == "text":
        return parts[0]["text"]
    return parts


def _tool_calls(attrs: dict[str, str], base: str) -> list[dict[str, Any]]:
    calls = []
    k = 0
    while True:
        p = f"{base}.{OI.MESSAGE_TOOL_CALLS}.{k}."
        name = attrs.get(p + OI.TOOL_CALL_NAME_SUFFIX)
        cid = attrs.get(p + OI.TOOL_CALL_ID_SUFFIX)
        if name is None and cid is None:
            break
        calls.append({
            "id": cid or "",
            "name": name or "",
            "arguments": parse_arguments(attrs.get(p + OI.TOOL_CALL_ARGUMENTS_SUFFIX, "")),
        })
        k += 1
    return calls


def messages(attrs: dict[str, str], prefix: str) -> list[dict[str, Any]] | None:
    """Indexed OpenInference messages under ``prefix`` in canonical form, or None."""
    out = []
    i = 0
    while True:
        base = f"{prefix}.{i}"
        role = attrs.get(f"{base}.{OI.MESSAGE_ROLE}")
        content: Any = attrs.get(f"{base}.{OI.MESSAGE_CONTENT}")
        if content is None:
            content = _contents(attrs, base)
        calls = _tool_calls(attrs, base)
        if role is None and content is None and not calls:
            # a gap is possible when content capture is off for one message
            if f"{prefix}.{i + 1}.{OI.MESSAGE_ROLE}" not in attrs:
                break
            i += 1
            continue
        out.append(message(
            role or "",
            content,
            tool_calls=calls or None,
            tool_call_id=attrs.get(f"{base}.{OI.MESSAGE_TOOL_CALL_ID}", ""),
            name=attrs.get(f"{base}.{OI.MESSAGE_NAME}", ""),
        ))
        i += 1
    return out or None


def documents(attrs: dict[str, str], prefix: str) -> list[tuple[str, str, float]] | None:
    docs = []
    i = 0
    while True:
        p = f"{prefix}.{i}."
        did = attrs.get(p + OI.DOCUMENT_ID)
        text = attrs.get(p + OI.DOCUMENT_CONTENT)
        if did is None and text is None:
            break
        score = to_float(attrs.get(p + OI.DOCUMENT_SCORE))
        docs.append((did or "", text or "", float("nan") if score is None else score))
        i += 1
    return docs or None


def _tools(attrs: dict[str, str]) -> list[Any] | None:
    tools = []
    i = 0
    while True:
        schema = attrs.get(f"{OI.LLM_TOOLS}.{i}.{OI.TOOL_JSON_SCHEMA}")
        if schema is None:
            break
        tools.append(parse_arguments(schema))
        i += 1
    return tools or None


def extract(attrs: dict[str, str], f: Fields) -> None:
    raw_kind = attrs.get(OI.SPAN_KIND, "").upper()
    f.kind = _KINDS.get(raw_kind, "UNKNOWN")
    params = parse_json(attrs.get(OI.LLM_INVOCATION_PARAMETERS))
    answered = attrs.get(OI.LLM_RESPONSE_MODEL) or attrs.get(OI.LLM_MODEL_NAME, "")
    requested = attrs.get(OI.LLM_REQUEST_MODEL, "")
    if not requested and isinstance(params, dict) and isinstance(params.get("model"), str):
        requested = params["model"]
    f.request_model = requested or answered
    f.response_model = answered or requested
    if f.kind == "EMBEDDING" and not f.request_model:
        f.request_model = f.response_model = attrs.get(OI.EMBEDDING_MODEL_NAME, "")
    f.provider = attrs.get(OI.LLM_PROVIDER) or attrs.get(OI.LLM_SYSTEM, "")
    f.input_tokens = to_int(attrs.get(OI.TOKENS_PROMPT))
    f.output_tokens = to_int(attrs.get(OI.TOKENS_COMPLETION))
    f.cache_read_tokens = to_int(attrs.get(OI.TOKENS_CACHE_READ))
    f.cache_write_tokens = to_int(attrs.get(OI.TOKENS_CACHE_WRITE))
    f.reasoning_tokens = to_int(attrs.get(OI.TOKENS_REASONING))
    f.cost = to_float(attrs.get(OI.COST_TOTAL))
    f.session_id = attrs.get(OI.SESSION_ID, "")
    f.user_id = attrs.get(OI.USER_ID, "")
    f.agent_name = attrs.get(OI.AGENT_NAME, "")
    if f.kind == "LLM":
        f.operation = "chat"
        f.input_messages = messages(attrs, OI.LLM_INPUT_MESSAGES)
        f.output_messages = messages(attrs, OI.LLM_OUTPUT_MESSAGES)
        f.tools = _tools(attrs)
    elif f.kind == "TOOL":
        f.operation = "execute_tool"
        f.tool_name = attrs.get(OI.TOOL_NAME) or attrs.get(OI.TOOL_CALL_FUNCTION_NAME, "")
        f.tool_call_id = attrs.get(OI.TOOL_CALL_ID) or attrs.get(OI.TOOL_ID, "")
        f.input_kind, f.output_kind = "tool_arguments", "tool_result"
    elif f.kind == "RETRIEVER":
        f.operation = "retrieve"
        f.documents = documents(attrs, OI.RETRIEVAL_DOCUMENTS)
    elif f.kind == "RERANKER":
        f.operation = "rerank"
        f.documents = documents(attrs, OI.RERANKER_OUTPUT_DOCUMENTS)
    elif f.kind == "EMBEDDING":
        f.operation = "embeddings"
    elif f.kind == "AGENT":
        f.operation = "invoke_agent"
    if f.input_messages is None:
        f.input_value = attrs.get(OI.INPUT_VALUE)
    if f.output_messages is None:
        f.output_value = attrs.get(OI.OUTPUT_VALUE)
