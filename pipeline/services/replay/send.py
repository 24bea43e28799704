"""Sending a rebuilt request through the provider's own SDK and diffing the answer: the SDK,
not a hand-written HTTP call, so a replay meets the provider exactly as the agent did."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agentledger.pipeline.normalize.fields import parse_arguments
from agentledger.pipeline.services.replay.answers import Answer, Diff, compare
from agentledger.pipeline.services.replay.rebuild import RebuiltRequest, rebuild_request
from agentledger.pipeline.services.replay.wire import ANTHROPIC
from agentledger.pipeline.store import Store

__all__ = [
    "ReplayOutcome",
    "Sender",
    "answer_of_response",
    "replay_request",
    "replay_span",
    "send_request",
]

log = logging.getLogger(__name__)


_STREAM_KEYS = ("stream", "stream_options")


def answer_of_response(api: str, response: Any) -> Answer:
    """The answer of an SDK response object (``ChatCompletion`` or Anthropic ``Message``)."""
    if api == ANTHROPIC:
        blocks = list(getattr(response, "content", None) or ())
        text = "\n".join(b.text for b in blocks if getattr(b, "type", "") == "text" and b.text)
        calls = [
            (b.name, b.input)
            for b in blocks
            if getattr(b, "type", "") in ("tool_use", "server_tool_use", "mcp_tool_use")
        ]
        return Answer(text, calls, getattr(response, "model", "") or "")
    choices = getattr(response, "choices", None) or []
    if not choices:
        return Answer("", [], getattr(response, "model", "") or "")
    message = choices[0].message
    calls = [
        (c.function.name, parse_arguments(c.function.arguments))
        for c in message.tool_calls or ()
        if getattr(c, "function", None) is not None
    ]
    return Answer(message.content or "", calls, response.model or "")


def send_request(
    api: str,
    body: dict[str, Any],
    *,
    base_url: str | None = None,
    api_key: str | None = None,
    timeout: float = 120.0,
) -> Answer:
    """Send ``body`` as is through the provider's own SDK (``openai`` or ``anthropic``) and read the answer.

    ``base_url`` and ``api_key`` are the SDK's (default: the SDK's environment variables). SDK errors
    propagate unchanged; ``replay_request`` records them.
    """
    if api == ANTHROPIC:
        import anthropic
        from anthropic.types import Message

        key = api_key or os.environ.get("ANTHROPIC_API_KEY") or "not-set"
        with anthropic.Anthropic(
            base_url=base_url, api_key=key, timeout=timeout, max_retries=2
        ) as client:
            return answer_of_response(api, client.post("/v1/messages", body=body, cast_to=Message))
    import openai
    from openai.types.chat import ChatCompletion

    key = api_key or os.environ.get("OPENAI_API_KEY") or "not-set"
    with openai.OpenAI(base_url=base_url, api_key=key, timeout=timeout, max_retries=2) as client:
        return answer_of_response(
            api, client.post("/chat/completions", body=body, cast_to=ChatCompletion)
        )


@dataclass
class ReplayOutcome:
    """One replayed call: what was sent, what came back, how it differs from the record."""

    request: RebuiltRequest
    replay_model: str
    overrides: dict[str, Any]
    replayed: Answer | None = None
    diff: Diff | None = None
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error

    def as_dict(self) -> dict[str, Any]:
        r = self.request
        return {
            "span_id": r.span_id,
            "trace_id": r.trace_id,
            "started_at": r.started_at,
            "agent_name": r.agent_name,
            "api": r.api,
            "recorded_model": r.request_model,
            "recorded_answered_model": r.response_model,
            "replay_model": self.replay_model,
            "replay_answered_model": self.replayed.model if self.replayed else "",
            "source": r.source,
            "checks": r.checks,
            "exact": r.exact,
            "notes": r.notes,
            "overrides": self.overrides,
            "recorded": r.recorded.as_dict(),
            "output_hash": r.output_hash,
            "replayed": self.replayed.as_dict() if self.replayed else None,
            "diff": self.diff.as_dict() if self.diff else None,
            "error": self.error,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ReplayOutcome:
        """An outcome as ``as_dict`` wrote it (the request body itself is not carried)."""
        request = RebuiltRequest(
            d["span_id"],
            d["trace_id"],
            d["started_at"],
            d.get("agent_name", ""),
            d["api"],
            "",
            d.get("recorded_model", ""),
            d.get("recorded_answered_model", ""),
            "",
            {},
            d.get("source", ""),
            dict(d.get("checks") or {}),
            Answer.from_dict(d.get("recorded") or {}),
            d.get("output_hash", ""),
            list(d.get("notes") or []),
        )
        diff = d.get("diff")
        return cls(
            request,
            d.get("replay_model", ""),
            dict(d.get("overrides") or {}),
            Answer.from_dict(d["replayed"]) if d.get("replayed") else None,
            Diff(
                bool(diff["same_tools"]),
                bool(diff["same_arguments"]),
                float(diff["text_similarity"]),
                float(diff["token_jaccard"]),
            )
            if diff
            else None,
            d.get("error", ""),
        )


Sender = Callable[..., Answer]


def replay_request(
    request: RebuiltRequest,
    *,
    model: str | None = None,
    base_url: str | None = None,
    api_key: str | None = None,
    timeout: float = 120.0,
    sender: Sender = send_request,
) -> ReplayOutcome:
    """Send a rebuilt request (``model`` overrides the recorded one; streaming is turned off so the
    answer arrives whole) and diff the answer. Provider errors become ``error``, not exceptions."""
    body = dict(request.body)
    overrides: dict[str, Any] = {}
    if model and body.get("model") != model:
        overrides["model"] = model
        body["model"] = model
    for key in _STREAM_KEYS:
        if key in body:
            overrides[key] = None
            body.pop(key)
    outcome = ReplayOutcome(request, str(body.get("model", "")), overrides)
    try:
        outcome.replayed = sender(
            request.api, body, base_url=base_url, api_key=api_key, timeout=timeout
        )
    except Exception as exc:  # noqa: BLE001 (any SDK or network failure is this call's result, not the batch's end)
        log.warning("replay of span %s failed: %s", request.span_id, exc)
        outcome.error = f"{type(exc).__name__}: {exc}"
        return outcome
    outcome.diff = compare(request.recorded, outcome.replayed)
    return outcome


def replay_span(store: Store, tenant: str, span_id: str, **kwargs: Any) -> ReplayOutcome:
    """Rebuild one recorded call and replay it (``replay_request``'s keyword arguments)."""
    api = kwargs.pop("api", None)
    return replay_request(rebuild_request(store, tenant, span_id, api=api), **kwargs)
