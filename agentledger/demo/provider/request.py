"""The request as the scripted provider received it, readable the same way whichever API
(OpenAI or Anthropic) it came through, since one script serves both."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["Api", "ProviderRequest", "ToolResult"]

Api = Literal["openai", "anthropic", "other"]


@dataclass(frozen=True)
class ToolResult:
    """A tool result found in a request, with the tool name resolved from the earlier call."""

    call_id: str
    name: str | None
    content: str


@dataclass(frozen=True)
class ProviderRequest:
    """One request the provider received: what matchers see and what tests inspect.

    ``status`` and ``rule`` are filled in once the provider has answered (the
    HTTP status sent and the name of the rule that matched, ``"<default>"``
    when none did, ``None`` for injected failures and non-chat endpoints).
    """

    method: str
    path: str
    headers: Mapping[str, str]
    body: Mapping[str, Any]
    status: int = 0
    rule: str | None = None

    @property
    def api(self) -> Api:
        return _api_for_path(self.path)

    @property
    def model(self) -> str | None:
        model = self.body.get("model")
        return model if isinstance(model, str) else None

    @property
    def stream(self) -> bool:
        return bool(self.body.get("stream"))

    @property
    def messages(self) -> list[Mapping[str, Any]]:
        messages = self.body.get("messages")
        if not isinstance(messages, list):
            return []
        return [m for m in messages if isinstance(m, Mapping)]

    def system_text(self) -> str:
        """System instructions: Anthropic's top-level ``system``, OpenAI's system/developer."""
        parts = [_content_text(self.body.get("system"))]
        parts += [
            _content_text(m.get("content"))
            for m in self.messages
            if m.get("role") in ("system", "developer")
        ]
        return "\n".join(p for p in parts if p)

    def user_texts(self) -> list[str]:
        """The text of each user turn, skipping Anthropic turns that only carry tool results."""
        texts = [_content_text(m.get("content")) for m in self.messages if m.get("role") == "user"]
        return [t for t in texts if t]

    def last_user_text(self) -> str:
        texts = self.user_texts()
        return texts[-1] if texts else ""

    def tool_results(self) -> list[ToolResult]:
        """Tool results in the conversation, in order, in either API's format."""
        names: dict[str, str] = {}
        results: list[ToolResult] = []
        for message in self.messages:
            role = message.get("role")
            content = message.get("content")
            for call in message.get("tool_calls") or ():  # OpenAI assistant turn
                if isinstance(call, Mapping):
                    function = call.get("function") or {}
                    names[str(call.get("id"))] = str(function.get("name"))
            if role == "tool":  # OpenAI tool turn
                call_id = str(message.get("tool_call_id"))
                results.append(ToolResult(call_id, names.get(call_id), _content_text(content)))
            if isinstance(content, list):  # Anthropic blocks
                for block in content:
                    if not isinstance(block, Mapping):
                        continue
                    if block.get("type") == "tool_use":
                        names[str(block.get("id"))] = str(block.get("name"))
                    elif block.get("type") == "tool_result":
                        call_id = str(block.get("tool_use_id"))
                        text = _content_text(block.get("content"))
                        results.append(ToolResult(call_id, names.get(call_id), text))
        return results

    def offered_tools(self) -> list[str]:
        """Names of the tools the request offers the model."""
        names = []
        for tool in self.body.get("tools") or ():
            if isinstance(tool, Mapping):
                function = tool.get("function")
                name = function.get("name") if isinstance(function, Mapping) else tool.get("name")
                if isinstance(name, str):
                    names.append(name)
        return names


def _api_for_path(path: str) -> Api:
    path = path.split("?", 1)[0].rstrip("/")
    if path.endswith("/chat/completions"):
        return "openai"
    if path.endswith("/messages"):
        return "anthropic"
    return "other"


def _content_text(content: object) -> str:
    """Text of a message content in either API's shape (string, or list of parts/blocks)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [
            str(part.get("text", ""))
            for part in content
            if isinstance(part, Mapping) and part.get("type") == "text"
        ]
        return "\n".join(t for t in texts if t)
    return ""
