"""OpenInference: ``openinference.span.kind``, flattened ``llm.*`` messages, documents, tools.

Indexed attributes (``llm.input_messages.N.message.role``...) are probed by key;
the keys of each index are built once and kept (``_Keys``), not formatted per span.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from agentledger.pipeline.normalize.fields import (
    Fields,
    add_params,
    parse_arguments,
    parse_json,
    reasons_of,
    request_tools,
    to_float,
    to_int,
)
from agentledger.schemas.attributes import GenAI as G
from agentledger.schemas.attributes import OpenInference as OI

__all__ = ["extract", "messages", "matches"]

_KINDS = {
    "LLM": "LLM",
    "TOOL": "TOOL",
    "RETRIEVER": "RETRIEVER",
    "EMBEDDING": "EMBEDDING",
    "RERANKER": "RERANKER",
    "AGENT": "AGENT",
    "CHAIN": "CHAIN",
    "GUARDRAIL": "GUARDRAIL",
    "EVALUATOR": "EVALUATOR",
    "PROMPT": "CHAIN",
    "DECISION": "LLM",
}

_MAX_CACHED_INDEX = 64  # keys of higher indices are built each time (bounds the caches)


class _Keys:
    """Attribute keys ``{prefix}.{i}.{suffix}`` of indexed items, built on first use and kept.

    ``row(i)`` is item ``i``'s keys in ``suffixes`` order, followed by one nested
    ``_Keys`` per ``nested`` entry (prefix ``{prefix}.{i}.{name}``), then the first
    row of each of those (to probe for a first nested item without a call).
    Thread-safe: a row is built whole before it is stored, and building it twice
    is harmless.
    """

    __slots__ = ("nested", "prefix", "rows", "suffixes")

    def __init__(
        self,
        prefix: str,
        suffixes: tuple[str, ...],
        nested: tuple[tuple[str, tuple[str, ...]], ...] = (),
    ) -> None:
        self.prefix = prefix
        self.suffixes = suffixes
        self.nested = nested
        self.rows: dict[int, tuple[Any, ...]] = {}

    def row(self, i: int) -> tuple[Any, ...]:
        keys = self.rows.get(i)
        if keys is None:
            base = f"{self.prefix}.{i}."
            nested = [_Keys(base + name, suffixes) for name, suffixes in self.nested]
            keys = (*(base + s for s in self.suffixes), *nested, *(n.row(0) for n in nested))
            if i < _MAX_CACHED_INDEX:
                self.rows[i] = keys
        return keys


_CONTENT_SUFFIXES = (
    "message_content.type",
    "message_content.text",
    "message_content.image.image.url",
)
_CALL_SUFFIXES = (OI.TOOL_CALL_NAME_SUFFIX, OI.TOOL_CALL_ID_SUFFIX, OI.TOOL_CALL_ARGUMENTS_SUFFIX)
_MESSAGE_SUFFIXES = (OI.MESSAGE_ROLE, OI.MESSAGE_CONTENT, OI.MESSAGE_TOOL_CALL_ID, OI.MESSAGE_NAME)
_MESSAGE_NESTED = (
    (OI.MESSAGE_CONTENTS, _CONTENT_SUFFIXES),
    (OI.MESSAGE_TOOL_CALLS, _CALL_SUFFIXES),
)
_DOCUMENT_SUFFIXES = (OI.DOCUMENT_ID, OI.DOCUMENT_CONTENT, OI.DOCUMENT_SCORE)

_message_keys: dict[str, _Keys] = {}
_document_keys: dict[str, _Keys] = {}
_TOOL_KEYS = _Keys(OI.LLM_TOOLS, (OI.TOOL_JSON_SCHEMA,))


def matches(attrs: dict[str, str]) -> bool:
    return OI.SPAN_KIND in attrs


def _contents(get: Callable[..., str | None], keys: _Keys) -> Any:
    """Multi-part content (``message.contents.N.message_content.*``), or None."""
    parts: list[dict[str, Any]] = []
    j = 0
    while True:
        type_key, text_key, image_key = keys.row(j)
        ptype = get(type_key)
        text = get(text_key)
        image = get(image_key)
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


def _tool_calls(get: Callable[..., str | None], keys: _Keys) -> list[dict[str, Any]]:
    calls = []
    k = 0
    while True:
        name_key, id_key, arguments_key = keys.row(k)
        name = get(name_key)
        cid = get(id_key)
        if name is None and cid is None:
            break
        calls.append(
            {
                "id": cid or "",
                "name": name or "",
                "arguments": parse_arguments(get(arguments_key, "")),
            }
        )
        k += 1
    return calls


def messages(attrs: dict[str, str], prefix: str) -> list[dict[str, Any]] | None:
    """Indexed OpenInference messages under ``prefix`` in canonical form, or None."""
    table = _message_keys.get(prefix)
    if table is None:
        table = _message_keys.setdefault(prefix, _Keys(prefix, _MESSAGE_SUFFIXES, _MESSAGE_NESTED))
    get = attrs.get
    cached = table.rows.get
    out = []
    i = 0
    while True:
        (
            role_key,
            content_key,
            call_id_key,
            name_key,
            parts_keys,
            calls_keys,
            first_part,
            first_call,
        ) = cached(i) or table.row(i)
        role = get(role_key)
        content: Any = get(content_key)
        if content is None and (
            first_part[0] in attrs or first_part[1] in attrs or first_part[2] in attrs
        ):
            content = _contents(get, parts_keys)
        calls = (
            _tool_calls(get, calls_keys)
            if first_call[0] in attrs or first_call[1] in attrs
            else None
        )
        if role is None and content is None and not calls:
            # a gap is possible when content capture is off for one message
            if table.row(i + 1)[0] not in attrs:
                break
            i += 1
            continue
        # as fields.message() builds it: empty fields left out
        msg: dict[str, Any] = {"role": role or "unknown"}
        if content:  # a non-empty string or list of parts
            msg["content"] = content
        if calls:
            msg["tool_calls"] = calls
        call_id = get(call_id_key)
        if call_id:
            msg["tool_call_id"] = call_id
        name = get(name_key)
        if name:
            msg["name"] = name
        out.append(msg)
        i += 1
    return out or None


def documents(attrs: dict[str, str], prefix: str) -> list[tuple[str, str, float]] | None:
    table = _document_keys.get(prefix)
    if table is None:
        table = _document_keys.setdefault(prefix, _Keys(prefix, _DOCUMENT_SUFFIXES))
    get = attrs.get
    cached = table.rows.get
    docs = []
    i = 0
    while True:
        id_key, content_key, score_key = cached(i) or table.row(i)
        did = get(id_key)
        text = get(content_key)
        if did is None and text is None:
            break
        score = to_float(get(score_key))
        docs.append((did or "", text or "", float("nan") if score is None else score))
        i += 1
    return docs or None


def _tools(attrs: dict[str, str], f: Fields) -> bool:
    """``llm.tools.N.tool.json_schema``, each parsed when it is JSON, with their texts as the key
    of the canonical list (``Fields.tools_text``); False when there are none."""
    tools = []
    texts = [_TOOLS_TEXT]
    i = 0
    while True:
        schema = attrs.get(_TOOL_KEYS.row(i)[0])
        if schema is None:
            break
        tools.append(parse_arguments(schema))
        texts.append(f"\0{len(schema)}:{schema}")
        i += 1
    if not tools:
        return False
    f.tools, f.tools_text = tools, "".join(texts)
    return True


_TOOLS_TEXT = "openinference"


# the attributes every span is probed for, looked up in one pass (see extract)
_SCALAR_KEYS = (
    OI.SPAN_KIND,
    OI.LLM_RESPONSE_MODEL,
    OI.LLM_MODEL_NAME,
    OI.LLM_REQUEST_MODEL,
    OI.LLM_PROVIDER,
    OI.LLM_SYSTEM,
    OI.TOKENS_PROMPT,
    OI.TOKENS_COMPLETION,
    OI.TOKENS_CACHE_READ,
    OI.TOKENS_CACHE_WRITE,
    OI.TOKENS_REASONING,
    OI.COST_TOTAL,
    OI.SESSION_ID,
    OI.USER_ID,
    OI.AGENT_NAME,
    OI.LLM_INVOCATION_PARAMETERS,
    OI.LLM_FINISH_REASON,
    G.FINISH_REASONS,
)
_FINGERPRINT_KEY = '"system_fingerprint"'  # in a raw response (output.value): worth parsing it


def _fingerprint_of_response(response: str | None, f: Fields) -> None:
    """The ``system_fingerprint`` of the raw response OpenInference keeps in ``output.value``."""
    if response and response[0] == "{" and _FINGERPRINT_KEY in response:
        parsed = parse_json(response)
        if isinstance(parsed, dict):
            fingerprint = parsed.get("system_fingerprint")
            if isinstance(fingerprint, str):
                f.system_fingerprint = fingerprint


def extract(attrs: dict[str, str], f: Fields) -> None:
    get = attrs.get
    (
        span_kind,
        response_model,
        model_name,
        request_model,
        provider,
        system,
        prompt_tokens,
        completion_tokens,
        cache_read_tokens,
        cache_write_tokens,
        reasoning_tokens,
        cost,
        session_id,
        user_id,
        agent_name,
        invocation_parameters,
        finish_reason,
        finish_reasons,
    ) = map(get, _SCALAR_KEYS)  # None when absent
    kind = f.kind = _KINDS.get((span_kind or "").upper(), "UNKNOWN")
    answered = response_model or model_name or ""
    requested = request_model or ""
    params = parse_json(invocation_parameters)
    if isinstance(params, dict):
        add_params(f, params)
        f.params_text = invocation_parameters  # the parameters' only source here
        if not requested and isinstance(params.get("model"), str):
            requested = params["model"]
    if finish_reason:
        f.finish_reasons = [finish_reason]
    if finish_reasons:
        more = reasons_of(finish_reasons)
        if more:
            f.finish_reasons = [*(f.finish_reasons or ()), *more]
    f.request_model = requested or answered
    f.response_model = answered or requested
    if kind == "EMBEDDING" and not f.request_model:
        f.request_model = f.response_model = get(OI.EMBEDDING_MODEL_NAME, "")
    f.provider = provider or system or ""
    # counts and cost stay None (Fields' default) when absent
    if prompt_tokens is not None:
        f.input_tokens = to_int(prompt_tokens)
    if completion_tokens is not None:
        f.output_tokens = to_int(completion_tokens)
    if cache_read_tokens is not None:
        f.cache_read_tokens = to_int(cache_read_tokens)
    if cache_write_tokens is not None:
        f.cache_write_tokens = to_int(cache_write_tokens)
    if reasoning_tokens is not None:
        f.reasoning_tokens = to_int(reasoning_tokens)
    if cost is not None:
        f.cost = to_float(cost)
    f.session_id = session_id or ""
    f.user_id = user_id or ""
    f.agent_name = agent_name or ""
    if kind == "LLM":
        f.operation = "chat"
        # OpenInference has no key for it; AgentLedger's OpenAI hook records OpenAI's
        f.system_fingerprint = get(G.SYSTEM_FINGERPRINT_NEW) or get(G.SYSTEM_FINGERPRINT, "")
        if not f.system_fingerprint:
            _fingerprint_of_response(get(OI.OUTPUT_VALUE), f)
        f.input_messages = messages(attrs, OI.LLM_INPUT_MESSAGES)
        f.output_messages = messages(attrs, OI.LLM_OUTPUT_MESSAGES)
        if not _tools(attrs, f):
            f.tools = request_tools(params)
        recorded = get(OI.INPUT_VALUE)
        if recorded and recorded[0] == "{":  # the SDK call's arguments, as JSON
            f.raw_request = recorded
    elif kind == "TOOL":
        f.operation = "execute_tool"
        f.tool_name = get(OI.TOOL_NAME) or get(OI.TOOL_CALL_FUNCTION_NAME, "")
        f.tool_call_id = get(OI.TOOL_CALL_ID) or get(OI.TOOL_ID, "")
        f.input_kind, f.output_kind = "tool_arguments", "tool_result"
    elif kind == "RETRIEVER":
        f.operation = "retrieve"
        f.documents = documents(attrs, OI.RETRIEVAL_DOCUMENTS)
    elif kind == "RERANKER":
        f.operation = "rerank"
        f.documents = documents(attrs, OI.RERANKER_OUTPUT_DOCUMENTS)
    elif kind == "EMBEDDING":
        f.operation = "embeddings"
    elif kind == "AGENT":
        f.operation = "invoke_agent"
    if f.input_messages is None:
        f.input_value = get(OI.INPUT_VALUE)
    if f.output_messages is None:
        f.output_value = get(OI.OUTPUT_VALUE)
