"""Under whose authority an action ran, and which LLM call chose it: read from the spans
themselves, falling back to enclosing spans and the intent, since exporters stamp the
principal and the agent on different spans."""

from __future__ import annotations

from typing import Any

from agentledger.pipeline.services.recorded import Trace
from agentledger.schemas.attributes import AgentLedger as AL


def _agent_of(trace: Trace, span: dict[str, Any]) -> str:
    """The span's agent, else that of the nearest enclosing span naming one (spans exported apart
    from their AGENT span are stored without its name)."""
    for s in [span, *trace.ancestors(span)]:
        if s["agent_name"]:
            return str(s["agent_name"])
    return ""


def _authority(
    trace: Trace, action: dict[str, Any], intent: dict[str, Any] | None
) -> dict[str, Any]:
    """Under whose authority: the action's principal, else the nearest enclosing span's, else the intent's."""
    for source, span in [("span", action)] + [
        ("enclosing_span", a) for a in trace.ancestors(action)
    ]:
        if span["principal_id"]:
            attrs = span["attributes"]
            return {
                "principal_id": span["principal_id"],
                "principal_name": attrs.get(AL.PRINCIPAL_NAME, "")
                or (intent or {}).get("principal_name", ""),
                "principal_role": attrs.get(AL.PRINCIPAL_ROLE, "")
                or (intent or {}).get("principal_role", ""),
                "principal_chain": list(span["principal_chain"]),
                "policy_id": span["policy_id"] or (intent or {}).get("policy_id", ""),
                "source": source,
                "source_span_id": span["span_id"],
                "attributed": True,
            }
    if intent is not None and intent["principal_id"]:
        return {
            "principal_id": intent["principal_id"],
            "principal_name": intent["principal_name"],
            "principal_role": intent["principal_role"],
            "principal_chain": list(intent["principal_chain"]),
            "policy_id": intent["policy_id"],
            "source": "intent",
            "source_span_id": "",
            "attributed": True,
        }
    return {
        "principal_id": "",
        "principal_name": "",
        "principal_role": "",
        "principal_chain": [],
        "policy_id": action["policy_id"],
        "source": "none",
        "source_span_id": "",
        "attributed": False,
    }


def _deciding_llm(
    trace: Trace, action: dict[str, Any], seen: list[dict[str, Any]], intent: dict[str, Any] | None
) -> tuple[dict[str, Any] | None, str]:
    """The LLM call that chose this action, and how it was found."""
    if action["kind"] == "LLM":
        return action, "self"
    llms = [s for s in seen if s["kind"] == "LLM"]
    if action["tool_call_id"]:
        for span in reversed(llms):
            if any(c["id"] == action["tool_call_id"] for c in span["tool_calls"]):
                return span, "tool_call_id"
    if intent is not None and intent["parent_span_id"]:
        span = trace.by_id.get(intent["parent_span_id"])
        if span is not None and span["kind"] == "LLM":
            return span, "intent"
    name = action["tool_name"] or action["name"]
    for span in reversed(llms):
        if any(c["name"] == name for c in span["tool_calls"]):
            return span, "last_llm_choosing_tool"
    if llms:
        return llms[-1], "last_llm_before_action"
    return None, "none"
