"""Read models shaped for the pages: a span's chat, its governance facts (the waterfall's rows
come from ``pipeline.services.waterfall``).

Pure functions of what the read services returned, so the templates stay free of logic and
these can be tested without a browser.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from agentledger.schemas.attributes import AgentLedger, Governance
from agentledger.schemas.read import Span

__all__ = [
    "ChatMessage",
    "chat_messages",
    "governance_facts",
    "pretty_json",
]


def governance_facts(span: Span) -> dict[str, Any]:
    """The intent a governed tool call recorded: its decision and how long a pause held it."""
    attrs = span.attributes
    if Governance.INTENT_ID not in attrs:
        return {}
    try:
        paused = float(attrs.get(Governance.INTENT_PAUSED_S, "0") or 0)
    except ValueError:
        paused = 0.0
    return {
        "intent_id": attrs.get(Governance.INTENT_ID, ""),
        "status": attrs.get(Governance.INTENT_STATUS, ""),
        "decision": attrs.get(Governance.INTENT_DECISION, ""),
        "control_id": attrs.get(Governance.INTENT_CONTROL_ID, ""),
        "paused_s": paused,
    }


def principal_facts(span: Span) -> dict[str, str]:
    """Who the span acted for, as the agent stamped it."""
    attrs = span.attributes
    return {
        "name": attrs.get(AgentLedger.PRINCIPAL_NAME, ""),
        "role": attrs.get(AgentLedger.PRINCIPAL_ROLE, ""),
        "pin": attrs.get(AgentLedger.MODEL_PIN, ""),
        "pin_mismatch": attrs.get(AgentLedger.MODEL_PIN_MISMATCH, ""),
        "redactions": attrs.get(AgentLedger.REDACTION_COUNT, ""),
    }


@dataclass
class ChatMessage:
    """One message of a conversation as the model saw or answered it."""

    role: str
    text: str
    tool_calls: list[dict[str, str]] = field(default_factory=list)
    tool_call_id: str = ""


def _text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: text, images, ...
        parts = []
        for part in content:
            if isinstance(part, dict):
                parts.append(
                    str(part.get("text") or part.get("content") or f"[{part.get('type')}]")
                )
            else:
                parts.append(str(part))
        return "\n".join(parts)
    return json.dumps(content, ensure_ascii=False)


def chat_messages(canonical: str | None) -> list[ChatMessage]:
    """A ``messages`` content record as chat messages; anything else is one message of its
    own text (an unknown shape is shown, never dropped)."""
    if not canonical:
        return []
    try:
        value = json.loads(canonical)
    except ValueError:
        return [ChatMessage("text", canonical)]
    if not isinstance(value, list):
        return [ChatMessage("text", pretty_json(canonical))]
    out = []
    for item in value:
        if not isinstance(item, dict):
            out.append(ChatMessage("text", _text(item)))
            continue
        calls = [
            {
                "id": str(c.get("id", "")),
                "name": str(c.get("name") or (c.get("function") or {}).get("name", "")),
                "arguments": json.dumps(
                    c.get("arguments", (c.get("function") or {}).get("arguments", "")),
                    ensure_ascii=False,
                ),
            }
            for c in item.get("tool_calls") or []
            if isinstance(c, dict)
        ]
        out.append(
            ChatMessage(
                str(item.get("role") or "message"),
                _text(item.get("content")),
                calls,
                str(item.get("tool_call_id") or ""),
            )
        )
    return out


def pretty_json(text: str | None) -> str:
    """JSON indented for reading; other text as it is."""
    if not text:
        return ""
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except ValueError:
        return text
