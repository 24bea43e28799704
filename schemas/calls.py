"""The canonical LLM call: what the normalizer records of a model call, whatever convention sent it.

The normalizer (``agentledger.pipeline.normalize``, Python and native) is the only stage that
knows convention attribute names. It writes each model call once in the shapes defined here,
and audit, replay and datasets read only these:

========================  =====================================================================
span column               holds
========================  =====================================================================
``input_hash``            content hash of the input messages (``ContentKind.MESSAGES``, a list
                          of ``CanonicalMessage``); of the input value when the call recorded
                          no messages
``output_hash``           the same for the output messages (the choices)
``request_params``        canonical JSON of the request parameters under ``PARAM_NAMES``'s
                          canonical names; empty when none were recorded
``tools_hash``            content hash of the tools offered (``ContentKind.TOOLS``, a list of
                          ``ToolDefinition``); empty when none
``finish_reasons``        why the model stopped, one per choice, as the provider spelled it
``request_hash``          ``request_hash(...)`` below; empty for spans other than LLM calls and
                          for calls that recorded no input messages
``raw_request_hash``      content hash of the request as the instrumentation recorded it
                          verbatim (OpenInference's ``input.value`` of an LLM call: the SDK
                          call's arguments as JSON text); empty when not recorded
========================  =====================================================================

**Messages.** One schema for every convention (OpenInference's indexed attributes, GenAI's
``parts``, OpenAI-style JSON, legacy prompts and events)::

    {"role": "user", "content": "text"}                             # one text part: a string
    {"role": "user", "content": [{"type": "text", "text": ...},     # several parts: a list
                                 {"type": "image", "url": ...}]}
    {"role": "assistant", "tool_calls": [{"id": ..., "name": ..., "arguments": {...}}]}
    {"role": "tool", "tool_call_id": ..., "content": "..."}

Empty fields are left out (no ``content`` for a turn that only calls tools). Tool-call
``arguments`` are the parsed JSON value when the recorded text is JSON, else the text, so the
same call hashes the same whichever library recorded it. Parts other than text and images are
kept as recorded (they carry a ``type``). A tool result is the ``content`` of a ``tool``
turn, as text.

**Tools.** A function tool is ``{"type": "function", "name", "description", "parameters",
"strict"}`` (GenAI's ``gen_ai.tool.definitions`` shape; ``description`` left out when absent
or empty, ``parameters`` the JSON schema, parsed when recorded as text, ``strict`` only when
recorded), whichever shape it was recorded in: OpenAI chat (``{"type": "function",
"function": {...}}``), Anthropic (``input_schema``), OpenLLMetry's indexed functions. Other
tools (a provider's built-in ones) are kept as recorded. The list is stored by hash: an agent
offers the same tools on every call, and JSON schemas are often kilobytes, so a call costs one
hash and the definitions are stored once.

**Parameters.** A JSON object of what the request set besides model, messages and tools
(temperature, top_p, max_tokens, seed, response_format, tool_choice, stream...), values as
recorded (numbers as numbers, lists as lists). Names are the GenAI ``gen_ai.request.*`` names
where GenAI has one, the provider's otherwise: ``PARAM_NAMES`` maps the other spellings
(OpenAI's ``stop`` and ``n``, OpenLIT's ``is_stream``); ``OPENAI_PARAM_NAMES`` maps back to
OpenAI's API.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, Literal, TypedDict

from agentledger.schemas.canonical import canonical_json_bytes, content_hash

__all__ = [
    "CanonicalMessage",
    "ContentPart",
    "ToolCall",
    "ToolDefinition",
    "NOT_PARAMS",
    "OPENAI_PARAM_NAMES",
    "PARAM_NAMES",
    "canonical_param",
    "request_hash",
]


class ContentPart(TypedDict, total=False):
    """One part of multi-part content: ``{"type": "text", "text"}``, ``{"type": "image", "url"}``,
    or another part as recorded (with its ``type``)."""

    type: str
    text: str
    url: str


class ToolCall(TypedDict):
    """A tool call a model chose: its id, the function's name, the arguments (parsed JSON value
    when the recorded text parses)."""

    id: str
    name: str
    arguments: Any


class CanonicalMessage(TypedDict, total=False):
    """One message in the canonical schema; ``role`` is always present, empty fields are left out."""

    role: str
    content: str | list[ContentPart]
    tool_calls: list[ToolCall]
    tool_call_id: str
    name: str


class ToolDefinition(TypedDict, total=False):
    """A function tool offered to a model, in the canonical shape (see the module docstring)."""

    type: Literal["function"]
    name: str
    description: str
    parameters: Any
    strict: bool


PARAM_NAMES: Final[Mapping[str, str]] = {
    "stop": "stop_sequences",
    "n": "choice.count",
    "is_stream": "stream",
}
"""Spellings of a request parameter -> its canonical name (every other name is canonical)."""

OPENAI_PARAM_NAMES: Final[Mapping[str, str]] = {"stop_sequences": "stop", "choice.count": "n"}
"""Canonical parameter names -> the names OpenAI's API takes (the others it takes as they are)."""

NOT_PARAMS: Final = frozenset({"model", "messages", "tools", "functions"})
"""Request fields that are not parameters: the model, messages and tools have columns of their own."""


def canonical_param(name: str) -> str:
    """The canonical name of a request parameter."""
    return PARAM_NAMES.get(name, name)


def request_hash(
    model: str, params: Mapping[str, Any] | None, messages_hash: str, tools_hash: str
) -> str:
    """The ``request_hash`` column: SHA-256 (hex) of the canonical JSON (RFC 8785) of
    ``{"messages": messages_hash, "model": model, "params": params, "tools": tools_hash}``.

    ``model`` is the requested model (``request_model``), ``params`` the request parameters
    (``request_params`` parsed; ``{}`` when empty), ``messages_hash`` the content hash of the
    canonical input messages (``input_hash``), ``tools_hash`` that of the canonical tool list
    (``tools_hash``, ``""`` when none). The messages and tools enter by their content hashes,
    which commit to them as the content records prove, so the hash of a request is one small
    document whatever the size of its prompt. Two calls with the same request hash asked the
    same model the same thing in the same way.
    """
    envelope = {
        "messages": messages_hash,
        "model": model,
        "params": dict(params or {}),
        "tools": tools_hash,
    }
    return content_hash(canonical_json_bytes(envelope))
