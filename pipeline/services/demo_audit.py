"""The product demo's audit: the auditor's three questions and a replay of the decision.

It needs both the audit and the replay services, so it sits above both (neither of them
imports the other).
"""

from __future__ import annotations

from typing import Any

from agentledger.pipeline.services.audit import AuditNotFound, audit, load_trace, to_markdown
from agentledger.pipeline.services.replay import replay_span
from agentledger.pipeline.store import Store

__all__ = ["demo_audit"]


def demo_audit(
    store: Store,
    tenant: str,
    trace_id: str,
    provider_base_url: str,
    *,
    api_key: str = "demo",
) -> dict[str, Any]:
    """The auditor's three questions about the demo's decision, and a replay of it.

    The decision is the trace's last LLM call (the ESCALATE/APPROVE answer); the action
    before it is the last tool call. Returns ``what_the_agent_saw`` (counts and ids of what
    preceded the decision, with every document re-hashed), ``which_model_decided``,
    ``under_whose_authority``, ``replay`` (the decision re-run against ``provider_base_url``
    through the provider's own SDK and diffed against the recorded answer), and
    ``report_markdown`` (the full audit of the decision).
    """
    result = audit(store, tenant, trace_id)
    trace, _ = load_trace(store, tenant, trace_id)
    llms = [s for s in trace.spans if s["kind"] == "LLM"]
    if not llms:
        raise AuditNotFound(f"trace {trace_id} holds no LLM call to audit")
    decision = audit(store, tenant, llms[-1]["span_id"])
    report = decision["actions"][0]
    answer = report["action"].get("output") or []
    text = next(
        (m.get("content") for m in reversed(answer) if isinstance(m, dict) and m.get("content")), ""
    )
    saw = {
        "llm_calls": [
            {
                "span_id": c["span_id"],
                "answered_model": c["answered_model"],
                "messages": len(c["messages"] or []),
            }
            for c in report["llm_calls"]
        ],
        "messages_of_the_deciding_call": len(report["action"].get("messages") or []),
        "documents": [
            {
                "id": d["id"],
                "sha256": d["content_hash"],
                "score": d["score"],
                "verified": d["verified"],
            }
            for d in report["documents"]
        ],
        "tool_outputs": [
            {"tool": t["tool_name"], "arguments": t["arguments"], "output": t["output"]}
            for t in report["tool_outputs"]
        ],
        "question": next((c["input"] for c in report["context"] if c["kind"] == "AGENT"), None),
    }
    by = report["decided_by"] or {}
    outcome = replay_span(
        store, tenant, llms[-1]["span_id"], base_url=provider_base_url, api_key=api_key
    )
    return {
        "trace_id": trace_id,
        "decision": {"span_id": llms[-1]["span_id"], "text": text},
        "what_the_agent_saw": saw,
        "which_model_decided": {
            k: by.get(k)
            for k in (
                "span_id",
                "provider",
                "requested_model",
                "answered_model",
                "system_fingerprint",
            )
        },
        "under_whose_authority": report["authority"],
        "actions": [
            {
                "span_id": a["action"]["span_id"],
                "tool": a["action"].get("tool_name"),
                "intent": a["intent"],
                "controls": a["controls"],
            }
            for a in result["actions"]
        ],
        "replay": outcome.as_dict(),
        "report_markdown": to_markdown(decision),
    }
