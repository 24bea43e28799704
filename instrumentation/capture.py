"""Content capture switches: record messages, documents, tool arguments and results, or not.

Some agents may not let conversation text, retrieved documents or tool payloads
leave the process at all, while their structure (who called which model, which
tool, how many tokens, under whose authority) must still be recorded. Each
kind is switched on or off separately:

* ``messages``: prompts and answers (``llm.input_messages.*``/``llm.output_messages.*``
  content, ``llm.prompts``, ``input.value``/``output.value`` of LLM, agent and
  chain spans, the GenAI ``gen_ai.input/output.messages`` and legacy prompt keys);
* ``documents``: retrieved and reranked document text and metadata
  (``retrieval.documents.*``, ``reranker.*_documents.*``, a retriever's output);
* ``tool_io``: tool-call arguments and tool results (``tool_call.function.arguments``
  anywhere, a TOOL span's ``input.value``/``output.value``, tool-role messages,
  ``gen_ai.tool.call.arguments/result``).

Roles, ids, names, models and counts are always kept. Left-out kinds are listed
on the span (``agentledger.capture.omitted``) so a missing prompt reads as
"not captured by policy", not as "empty". The switches are applied at the
source where AgentLedger records the call itself (its OpenAI wrapper, the
helpers, OpenInference's ``TraceConfig``), and again at export for anything
another library recorded.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from agentledger.schemas.attributes import GenAI as G
from agentledger.schemas.attributes import OpenInference as OI

__all__ = ["DOCUMENTS", "MESSAGES", "TOOL_IO", "CaptureConfig", "content_kind"]

MESSAGES = "messages"
DOCUMENTS = "documents"
TOOL_IO = "tool_io"

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}

_ARGS_SUFFIX = "." + OI.TOOL_CALL_ARGUMENTS_SUFFIX
_MESSAGE_CONTENT_SUFFIXES = (
    "." + OI.MESSAGE_CONTENT,
    "." + OI.MESSAGE_CONTENT_TEXT,
    "." + OI.MESSAGE_CONTENT_IMAGE_URL,
)
_MESSAGE_PREFIXES = (OI.LLM_INPUT_MESSAGES + ".", OI.LLM_OUTPUT_MESSAGES + ".")
_DOCUMENT_PREFIXES = (
    OI.RETRIEVAL_DOCUMENTS + ".",
    OI.RERANKER_OUTPUT_DOCUMENTS + ".",
    OI.RERANKER_INPUT_DOCUMENTS + ".",
)
_DOCUMENT_SUFFIXES = ("." + OI.DOCUMENT_CONTENT, "." + OI.DOCUMENT_METADATA)
_GENAI_MESSAGES = frozenset(
    {
        G.INPUT_MESSAGES,
        G.OUTPUT_MESSAGES,
        G.SYSTEM_INSTRUCTIONS,
        "langfuse.observation.input",
        "langfuse.observation.output",
        "traceloop.entity.input",
        "traceloop.entity.output",
    }
)
_LEGACY_PREFIXES = (
    G.PROMPT_PREFIX + ".",
    G.COMPLETION_PREFIX + ".",
    OI.LLM_PROMPTS + ".",
    OI.EMBEDDING_EMBEDDINGS + ".",
)
_TOOL_KEYS = frozenset(
    {G.TOOL_CALL_ARGUMENTS, G.TOOL_CALL_RESULT, OI.TOOL_CALL_FUNCTION_ARGUMENTS, "gen_ai.tool.args"}
)
_IO_KEYS = frozenset({OI.INPUT_VALUE, OI.OUTPUT_VALUE})


def content_kind(key: str, span_kind: str, role_of: Mapping[str, Any] | None = None) -> str | None:
    """The content kind an attribute carries (messages, documents, tool_io), or None for structure.

    ``span_kind`` is the span's ``openinference.span.kind`` (``""`` if none);
    ``role_of`` is the span's attribute map, used to tell a tool-role message's
    content (a tool result) from other message content.
    """
    if key.endswith(_ARGS_SUFFIX) or key in _TOOL_KEYS:
        return TOOL_IO
    if key.startswith(_MESSAGE_PREFIXES):
        if key.endswith(_MESSAGE_CONTENT_SUFFIXES) or ".message.contents." in key:
            if role_of is not None:
                head = key.split(".message.", 1)[0]
                if role_of.get(f"{head}.{OI.MESSAGE_ROLE}") == "tool":
                    return TOOL_IO
            return MESSAGES
        return None
    if key.startswith(_DOCUMENT_PREFIXES):
        return DOCUMENTS if key.endswith(_DOCUMENT_SUFFIXES) else None
    if key in _IO_KEYS:
        if span_kind == "TOOL":
            return TOOL_IO
        if span_kind == "RETRIEVER" or span_kind == "RERANKER":
            return DOCUMENTS if key == OI.OUTPUT_VALUE else MESSAGES
        return MESSAGES
    if key in _GENAI_MESSAGES or key.startswith(_LEGACY_PREFIXES) or key == OI.RERANKER_QUERY:
        return MESSAGES
    return None


def _env_bool(name: str) -> bool | None:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return None
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"{name}={raw!r}: expected true or false")


@dataclass(frozen=True)
class CaptureConfig:
    """Which content kinds are recorded. Everything is on by default."""

    messages: bool = True
    documents: bool = True
    tool_io: bool = True

    @property
    def everything(self) -> bool:
        return self.messages and self.documents and self.tool_io

    @property
    def omitted(self) -> tuple[str, ...]:
        """The kinds switched off, in a fixed order."""
        return tuple(
            k
            for k, on in (
                (MESSAGES, self.messages),
                (DOCUMENTS, self.documents),
                (TOOL_IO, self.tool_io),
            )
            if not on
        )

    def allows(self, kind: str | None) -> bool:
        if kind is None:
            return True
        return bool(getattr(self, kind))

    @classmethod
    def resolve(
        cls,
        capture: bool | CaptureConfig | Mapping[str, bool] | None = None,
        *,
        messages: bool | None = None,
        documents: bool | None = None,
        tool_io: bool | None = None,
    ) -> CaptureConfig:
        """Explicit arguments, then ``AGENTLEDGER_CAPTURE_*`` variables, then on.

        ``capture`` sets every kind at once (a bool), or some (a mapping or a
        config); the per-kind arguments override it.
        """
        base: dict[str, bool | None] = {
            MESSAGES: _env_bool("AGENTLEDGER_CAPTURE_MESSAGES"),
            DOCUMENTS: _env_bool("AGENTLEDGER_CAPTURE_DOCUMENTS"),
            TOOL_IO: _env_bool("AGENTLEDGER_CAPTURE_TOOL_IO"),
        }
        everything = _env_bool("AGENTLEDGER_CAPTURE_CONTENT")
        if everything is not None:
            base = {k: everything if v is None else v for k, v in base.items()}
        if isinstance(capture, bool):
            base = dict.fromkeys(base, capture)
        elif isinstance(capture, CaptureConfig):
            base = {
                MESSAGES: capture.messages,
                DOCUMENTS: capture.documents,
                TOOL_IO: capture.tool_io,
            }
        elif isinstance(capture, Mapping):
            unknown = set(capture) - set(base)
            if unknown:
                raise ValueError(f"unknown capture kinds {sorted(unknown)}; known: {sorted(base)}")
            base.update({k: bool(v) for k, v in capture.items()})
        for kind, value in ((MESSAGES, messages), (DOCUMENTS, documents), (TOOL_IO, tool_io)):
            if value is not None:
                base[kind] = value
        return cls(**{k: True if v is None else v for k, v in base.items()})

    def trace_config_kwargs(self) -> dict[str, bool]:
        """OpenInference ``TraceConfig`` switches that follow these (for its instrumentors)."""
        kwargs: dict[str, bool] = {}
        if not self.messages:
            kwargs.update(
                hide_input_messages=True,
                hide_output_messages=True,
                hide_input_text=True,
                hide_output_text=True,
                hide_prompts=True,
                hide_choices=True,
                hide_embeddings_text=True,
            )
            if not self.tool_io:  # input/output.value are tool payloads on TOOL spans
                kwargs.update(hide_inputs=True, hide_outputs=True)
        if not self.documents:
            kwargs["hide_retrieval_documents"] = True
        return kwargs
