"""Spans for code no framework instruments: ``retrieval``, ``llm_call``, ``tool``.

Each is a context manager and a decorator (sync and async), and writes the same
OpenInference attribute keys as OpenInference's instrumentors, so the
normalizer reads them like any other span::

    with retrieval("JE-4471 approval policy") as r:
        r.documents([{"id": "FIN-7", "content": "...", "score": 0.91}])

    @tool(description="Fetch a journal entry")
    def lookup_journal_entry(entry_id: str) -> dict: ...

    with llm_call(model="gpt-4o", provider="openai", messages=msgs) as call:
        answer = my_http_client(...)
        call.output(text=answer["text"], model=answer["model"], input_tokens=..., output_tokens=...)

As decorators: ``retrieval`` takes the query from the first argument (or
``query=``) and records the returned documents; ``tool`` records the bound
arguments and the return value; ``llm_call`` takes ``messages=`` (or the first
argument) and records a returned string, message dict or list of messages.

The user's exception is recorded on the span and re-raised unchanged; a failure
inside the helper itself is logged and never reaches the caller (except a
model-pin mismatch when pins are set to raise).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from agentledger.instrumentation._helper_base import (
    _bound_arguments,
    _capture,
    _documents_on,
    _SpanHelper,
    _state,
    _value,
)
from agentledger.instrumentation._openai_attrs import _JSON_ENCODE as _ENCODE
from agentledger.instrumentation._openai_attrs import (
    _OUT_KEYS,
    _input_messages,
    _tool_calls,
    _tool_keys,
)
from agentledger.instrumentation.pinning import ModelPinMismatch
from agentledger.schemas.attributes import GenAI as G
from agentledger.schemas.attributes import OpenInference as OI

__all__ = ["llm_call", "retrieval", "tool"]

# --------------------------------------------------------------------------------- retrieval


def _document_fields(doc: Any) -> tuple[Any, Any, Any, Any]:
    """(id, content, score, metadata) of a dict, a (id, content, score) tuple, or an object."""
    if isinstance(doc, Mapping):
        content = doc.get("content", doc.get("text", doc.get("page_content")))
        return doc.get("id"), content, doc.get("score"), doc.get("metadata")
    if isinstance(doc, (tuple, list)):
        padded = list(doc) + [None] * (4 - len(doc))
        return padded[0], padded[1], padded[2], padded[3]
    if isinstance(doc, str):
        return None, doc, None, None
    content = next(
        (getattr(doc, a) for a in ("content", "text", "page_content") if hasattr(doc, a)), None
    )
    inner = getattr(doc, "document", None)  # e.g. a (document, score) hit object
    if content is None and inner is not None:
        did, content, _, meta = _document_fields(inner)
        return did, content, getattr(doc, "score", None), meta
    return (
        getattr(doc, "id", None),
        content,
        getattr(doc, "score", None),
        getattr(doc, "metadata", None),
    )


class retrieval(_SpanHelper):
    """A RETRIEVER span: the query and every document returned, in rank order."""

    kind = "RETRIEVER"
    default_name = "retrieve"

    def __init__(self, query: str | None = None, *, name: str = "") -> None:
        super().__init__(name)
        self.query = query

    def _start_attributes(self) -> dict[str, Any]:
        attrs = super()._start_attributes()
        if self.query is not None and _capture().messages:
            attrs[OI.INPUT_VALUE], attrs[OI.INPUT_MIME_TYPE] = _value(self.query)
        return attrs

    def documents(self, docs: Iterable[Any]) -> None:
        """Record the retrieved documents: dicts (id, content, score, metadata), tuples or objects."""
        capture_text = _documents_on()
        for i, doc in enumerate(docs):
            did, content, score, metadata = _document_fields(doc)
            prefix = f"{OI.RETRIEVAL_DOCUMENTS}.{i}."
            if did is not None:
                self._attrs[prefix + OI.DOCUMENT_ID] = str(did)
            if content is not None and capture_text:
                self._attrs[prefix + OI.DOCUMENT_CONTENT] = (
                    content if isinstance(content, str) else _ENCODE(content)
                )
            if isinstance(score, (int, float)):
                self._attrs[prefix + OI.DOCUMENT_SCORE] = float(score)
            if metadata and capture_text:
                self._attrs[prefix + OI.DOCUMENT_METADATA] = _ENCODE(metadata)

    def _copy_for_call(
        self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> _SpanHelper:
        query = self.query
        if query is None:
            bound = _bound_arguments(fn, args, kwargs)
            query = bound.get("query", next(iter(bound.values()), None))
        return retrieval(
            None if query is None else str(query),
            name=self.name if self.name != "retrieve" else getattr(fn, "__name__", "retrieve"),
        )

    def _record_result(self, result: Any) -> None:
        if isinstance(result, Iterable) and not isinstance(result, (str, bytes, Mapping)):
            self.documents(result)


# --------------------------------------------------------------------------------- tool


class tool(_SpanHelper):
    """A TOOL span: tool name, call id, arguments (JSON) and result."""

    kind = "TOOL"
    default_name = "tool"

    def __init__(
        self,
        name: str = "",
        *,
        arguments: Any = None,
        call_id: str = "",
        description: str = "",
        parameters: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(name)
        self.arguments = arguments
        self.call_id = call_id
        self.description = description
        self.parameters = parameters

    def _start_attributes(self) -> dict[str, Any]:
        attrs = super()._start_attributes()
        attrs[OI.TOOL_NAME] = self.name
        if self.call_id:
            attrs[OI.TOOL_CALL_ID] = self.call_id
        if self.description:
            attrs[OI.TOOL_DESCRIPTION] = self.description
        if self.parameters is not None:
            attrs[OI.TOOL_PARAMETERS] = _ENCODE(self.parameters)
        if self.arguments is not None and _capture().tool_io:
            attrs[OI.INPUT_VALUE], attrs[OI.INPUT_MIME_TYPE] = _value(self.arguments)
        return attrs

    def result(self, value: Any) -> None:
        """Record the tool's result (text, or anything JSON-serializable)."""
        if _capture().tool_io:
            self._attrs[OI.OUTPUT_VALUE], self._attrs[OI.OUTPUT_MIME_TYPE] = _value(value)

    def _copy_for_call(
        self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> _SpanHelper:
        arguments = (
            self.arguments if self.arguments is not None else _bound_arguments(fn, args, kwargs)
        )
        description = self.description or (inspect.getdoc(fn) or "").split("\n\n")[0]
        return tool(
            self.name if self.name != "tool" else getattr(fn, "__name__", "tool"),
            arguments=arguments,
            call_id=self.call_id,
            description=description,
            parameters=self.parameters,
        )

    def _record_result(self, result: Any) -> None:
        self.result(result)


# --------------------------------------------------------------------------------- llm_call


class llm_call(_SpanHelper):
    """An LLM span: requested model, messages in and out, tokens, answered model, pin check.

    ``messages`` are OpenAI-style dicts (``role``, ``content``, ``tool_calls``,
    ``tool_call_id``); ``tools`` are tool definitions as sent to the model.
    """

    kind = "LLM"
    default_name = "llm_call"

    def __init__(
        self,
        model: str = "",
        *,
        provider: str = "",
        system: str = "",
        messages: Sequence[Mapping[str, Any]] | None = None,
        tools: Sequence[Mapping[str, Any]] | None = None,
        invocation_parameters: Mapping[str, Any] | None = None,
        name: str = "",
    ) -> None:
        super().__init__(name)
        self.model = model
        self.provider = provider
        self.system = system or provider
        self.messages = messages
        self.tools = tools
        self.invocation_parameters = invocation_parameters
        self._answered: str | None = None

    def _start_attributes(self) -> dict[str, Any]:
        attrs = super()._start_attributes()
        if self.provider:
            attrs[OI.LLM_PROVIDER] = self.provider
        if self.system:
            attrs[OI.LLM_SYSTEM] = self.system
        if self.model:
            attrs[OI.LLM_REQUEST_MODEL] = attrs[OI.LLM_MODEL_NAME] = self.model
        params = dict(self.invocation_parameters or {})
        if self.model:
            params.setdefault("model", self.model)
        if params:
            attrs[OI.LLM_INVOCATION_PARAMETERS] = _ENCODE(params)
        for i, t in enumerate(self.tools or ()):
            attrs[_tool_keys(i)] = _ENCODE(t)
        if self.messages:
            _input_messages(attrs, self.messages, _capture())
        return attrs

    def output(
        self,
        text: str | None = None,
        *,
        messages: Sequence[Mapping[str, Any]] | None = None,
        model: str | None = None,
        input_tokens: int | None = None,
        output_tokens: int | None = None,
        cache_read_tokens: int | None = None,
        reasoning_tokens: int | None = None,
        finish_reason: str | None = None,
        system_fingerprint: str | None = None,
    ) -> None:
        """Record the answer: text or messages, the model that answered, token counts."""
        capture = _capture()
        attrs = self._attrs
        if text is not None:
            messages = [{"role": "assistant", "content": text}]
        for i, m in enumerate(messages or ()):
            role_key, content_key, _, _, _, calls_prefix = _OUT_KEYS(i)
            attrs[role_key] = m.get("role") or "assistant"
            content = m.get("content")
            if content and capture.messages:
                attrs[content_key] = content if isinstance(content, str) else _ENCODE(content)
            if m.get("tool_calls"):
                _tool_calls(attrs, calls_prefix, m["tool_calls"], capture.tool_io, True)
        if model:
            self._answered = model
            attrs[OI.LLM_MODEL_NAME] = attrs[OI.LLM_RESPONSE_MODEL] = model
        for key, value in (
            (OI.TOKENS_PROMPT, input_tokens),
            (OI.TOKENS_COMPLETION, output_tokens),
            (OI.TOKENS_CACHE_READ, cache_read_tokens),
            (OI.TOKENS_REASONING, reasoning_tokens),
        ):
            if value is not None:
                attrs[key] = int(value)
        if input_tokens is not None and output_tokens is not None:
            attrs[OI.TOKENS_TOTAL] = int(input_tokens) + int(output_tokens)
        if finish_reason:
            attrs[OI.LLM_FINISH_REASON] = finish_reason
        if system_fingerprint:
            attrs[G.SYSTEM_FINGERPRINT_NEW] = system_fingerprint

    def _before_end(self) -> BaseException | None:
        state = _state()
        if state is None or not state.pins:
            return None
        from agentledger.instrumentation.processors import current_agent

        error: ModelPinMismatch | None = state.pins.check(
            current_agent(state.agent_name), self._answered, self._attrs
        )
        return error

    def _copy_for_call(
        self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> _SpanHelper:
        messages = self.messages
        if messages is None:
            bound = _bound_arguments(fn, args, kwargs)
            found = bound.get("messages", next(iter(bound.values()), None))
            if isinstance(found, str):
                messages = [{"role": "user", "content": found}]
            elif isinstance(found, Sequence) and all(isinstance(m, Mapping) for m in found):
                messages = list(found)
        return llm_call(
            self.model,
            provider=self.provider,
            system=self.system,
            messages=messages,
            tools=self.tools,
            invocation_parameters=self.invocation_parameters,
            name=self.name if self.name != "llm_call" else getattr(fn, "__name__", "llm_call"),
        )

    def _record_result(self, result: Any) -> None:
        if isinstance(result, str):
            self.output(result)
        elif isinstance(result, Mapping) and "role" in result:
            self.output(messages=[result])
        elif (
            isinstance(result, Sequence) and result and all(isinstance(m, Mapping) for m in result)
        ):
            self.output(messages=list(result))
