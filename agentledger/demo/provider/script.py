"""What a script is made of: rules pairing a matcher with a scripted answer, and the matchers
that rules are built from."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from agentledger.demo.provider.request import Api, ProviderRequest

__all__ = [
    "Matcher",
    "Responder",
    "Rule",
    "ScriptedResponse",
    "ToolCall",
    "all_of",
    "always",
    "any_of",
    "api_is",
    "has_tool_result",
    "last_user_contains",
    "model_is",
    "negate",
    "offers_tool",
    "system_contains",
]


@dataclass(frozen=True)
class ToolCall:
    """A tool call the scripted model makes: a tool name and its arguments."""

    name: str
    arguments: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ScriptedResponse:
    """What the scripted model answers.

    ``prompt_tokens`` is the total prompt size, cached part included (OpenAI's
    meaning); on the Anthropic API it is split into ``input_tokens``,
    ``cache_read_input_tokens`` and ``cache_creation_input_tokens`` so the two
    APIs report the same total. ``completion_tokens`` includes
    ``reasoning_tokens``. Left as ``None``, both are derived from the lengths
    of the request and the answer, so they are stable across runs.

    ``finish_reason`` may be given in either API's vocabulary; by default it
    is ``tool_calls``/``tool_use`` when there are tool calls, else
    ``stop``/``end_turn``. ``model`` overrides the answered model.
    """

    text: str | None = None
    tool_calls: Sequence[ToolCall] = ()
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_tokens: int = 0
    cache_creation_tokens: int = 0
    reasoning_tokens: int = 0
    model: str | None = None


Matcher = Callable[[ProviderRequest], bool]
Responder = Callable[[ProviderRequest], ScriptedResponse]


@dataclass(frozen=True)
class Rule:
    """When ``when`` matches a request, answer with ``respond``.

    ``respond`` is a fixed :class:`ScriptedResponse` or a function of the request
    (for answers that depend on what was sent, such as a tool result).
    ``name`` shows up as :attr:`ProviderRequest.rule` on recorded requests.
    """

    when: Matcher
    respond: ScriptedResponse | Responder
    name: str = ""

    def response_for(self, request: ProviderRequest) -> ScriptedResponse:
        if isinstance(self.respond, ScriptedResponse):
            return self.respond
        return self.respond(request)


def always() -> Matcher:
    """Match every request (a catch-all rule)."""
    return lambda request: True


def last_user_contains(text: str, *, case_sensitive: bool = False) -> Matcher:
    """Match when the latest user turn with text contains ``text``."""

    def match(request: ProviderRequest) -> bool:
        haystack = request.last_user_text()
        if case_sensitive:
            return text in haystack
        return text.lower() in haystack.lower()

    return match


def system_contains(text: str) -> Matcher:
    """Match when the system instructions contain ``text`` (case-insensitive)."""
    return lambda request: text.lower() in request.system_text().lower()


def has_tool_result(tool_name: str | None = None) -> Matcher:
    """Match when the conversation holds a result of ``tool_name`` (of any tool when ``None``)."""

    def match(request: ProviderRequest) -> bool:
        return any(tool_name is None or r.name == tool_name for r in request.tool_results())

    return match


def model_is(*models: str) -> Matcher:
    """Match when the *requested* model is one of ``models``."""
    wanted = frozenset(models)
    return lambda request: request.model in wanted


def api_is(api: Api) -> Matcher:
    """Match requests to one API (``"openai"`` or ``"anthropic"``)."""
    return lambda request: request.api == api


def offers_tool(name: str) -> Matcher:
    """Match when the request offers the model a tool called ``name``."""
    return lambda request: name in request.offered_tools()


def all_of(*matchers: Matcher) -> Matcher:
    return lambda request: all(m(request) for m in matchers)


def any_of(*matchers: Matcher) -> Matcher:
    return lambda request: any(m(request) for m in matchers)


def negate(matcher: Matcher) -> Matcher:
    return lambda request: not matcher(request)
