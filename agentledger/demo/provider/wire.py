"""The pieces of the two wire formats the SDKs and instrumentors read: usage blocks, finish
reasons, SSE framing and chunking, error bodies. Token counts derive from lengths so they are
the same on every run."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from agentledger.demo.provider.request import Api, ProviderRequest
from agentledger.demo.provider.script import ScriptedResponse

__all__ = ["estimate_tokens"]


# finish reasons: one script drives both APIs, so translate in both directions.
_OPENAI_TO_ANTHROPIC_STOP = {
    "stop": "end_turn",
    "tool_calls": "tool_use",
    "length": "max_tokens",
    "content_filter": "refusal",
}
_ANTHROPIC_TO_OPENAI_STOP = {v: k for k, v in _OPENAI_TO_ANTHROPIC_STOP.items()}
_ANTHROPIC_TO_OPENAI_STOP["stop_sequence"] = "stop"


def estimate_tokens(text: str) -> int:
    """About four characters a token, at least one: deterministic, roughly realistic."""
    return max(1, (len(text) + 3) // 4)


def _prompt_text(request: ProviderRequest) -> str:
    prompt = {k: request.body.get(k) for k in ("system", "messages", "tools")}
    return json.dumps(prompt, sort_keys=True, separators=(",", ":"))


def _arguments_json(arguments: Mapping[str, Any]) -> str:
    return json.dumps(dict(arguments), separators=(",", ":"))


@dataclass(frozen=True)
class _Usage:
    prompt: int
    completion: int
    cached: int
    cache_creation: int
    reasoning: int

    @classmethod
    def of(cls, request: ProviderRequest, response: ScriptedResponse) -> _Usage:
        cached, creation = response.cached_tokens, response.cache_creation_tokens
        prompt = response.prompt_tokens
        if prompt is None:
            prompt = estimate_tokens(_prompt_text(request))
        prompt = max(prompt, cached + creation)
        completion = response.completion_tokens
        if completion is None:
            visible = (response.text or "") + "".join(
                c.name + _arguments_json(c.arguments) for c in response.tool_calls
            )
            completion = estimate_tokens(visible) + response.reasoning_tokens
        return cls(prompt, completion, cached, creation, response.reasoning_tokens)

    def openai(self) -> dict[str, Any]:
        return {
            "prompt_tokens": self.prompt,
            "completion_tokens": self.completion,
            "total_tokens": self.prompt + self.completion,
            "prompt_tokens_details": {"cached_tokens": self.cached, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": self.reasoning,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }

    def anthropic(self) -> dict[str, Any]:
        return {
            "input_tokens": self.prompt - self.cached - self.cache_creation,
            "output_tokens": self.completion,
            "cache_read_input_tokens": self.cached,
            "cache_creation_input_tokens": self.cache_creation,
        }


def _sse(payload: object) -> str:
    return f"data: {json.dumps(payload, separators=(',', ':'))}\n\n"


def _split_text(text: str, size: int) -> list[str]:
    """Split on word boundaries into pieces of about ``size`` characters, like token streams."""
    pieces: list[str] = []
    for word in re.findall(r"\s*\S+\s*|\s+", text):
        if pieces and len(pieces[-1]) + len(word) <= size:
            pieces[-1] += word
        else:
            pieces.append(word)
    return pieces


def _split_fixed(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), max(1, size))]


def _status_phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Overloaded" if status == 529 else f"HTTP {status}"


def _openai_finish_reason(response: ScriptedResponse) -> str:
    if response.finish_reason:
        return _ANTHROPIC_TO_OPENAI_STOP.get(response.finish_reason, response.finish_reason)
    return "tool_calls" if response.tool_calls else "stop"


def _anthropic_stop_reason(response: ScriptedResponse) -> str:
    if response.finish_reason:
        return _OPENAI_TO_ANTHROPIC_STOP.get(response.finish_reason, response.finish_reason)
    return "tool_use" if response.tool_calls else "end_turn"


_OPENAI_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    429: "rate_limit_error",
}
_ANTHROPIC_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    429: "rate_limit_error",
    529: "overloaded_error",
}


def _error_body(api: Api, status: int, message: str) -> dict[str, Any]:
    if api == "anthropic":
        kind = _ANTHROPIC_ERROR_TYPES.get(status, "api_error")
        return {"type": "error", "error": {"type": kind, "message": message}}
    kind = _OPENAI_ERROR_TYPES.get(status, "server_error")
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


def _models_list(models: Sequence[str]) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [
            {"id": m, "object": "model", "created": 1700000000, "owned_by": "agentledger-demo"}
            for m in models
        ],
    }
