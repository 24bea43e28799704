"""What the two-agent demo's recording shows, read back from the store through the read services
(the same answers ``agentledger trace``, ``agents graph`` and ``audit`` give): the handoff as both
sides recorded it, the delegation chain, where the parked posting sits in the executor's trace,
and the audit of that posting with what the planner saw before it handed over.

Read back rather than taken from the run's own objects, so the demo shows what an auditor finds.
"""

from __future__ import annotations

from typing import Any

from agentledger.demo.agent import AGENT_NAME
from agentledger.demo.planner import PLANNER_NAME
from agentledger.demo.team import TeamRun
from agentledger.pipeline.services import reads
from agentledger.pipeline.services.graph import agents_graph
from agentledger.pipeline.store import Store
from agentledger.schemas.attributes import AgentLedger as AL

__all__ = ["team_facts"]


def team_facts(
    store: Store, tenant: str, team: TeamRun, spans: list[dict[str, Any]]
) -> dict[str, Any]:
    """The demo's JSON keys ``agents``, ``planner``, ``handoff``, ``delegation_chain``,
    ``graph``, ``posting`` (and ``_posting_report``, the audit itself) for the executor's trace
    ``spans`` (``queries.get_trace``)."""
    planner_spans = reads.trace(store, tenant, team.planner.trace_id).spans
    sent = next(s for s in planner_spans if s.attributes.get(AL.HANDOFF_ID))
    received = next(s for s in spans if s["attributes"].get(AL.HANDOFF_FROM_AGENT))
    principal = team.handoff.principal
    chain = [*(principal.chain if principal else ()), *team.handoff.chain]
    graph = agents_graph(store, tenant, trace_id=team.executor.trace_id)
    posting_id = str(team.governed.intent["span_id"])
    report = reads.audit(store, tenant, posting_id)
    (action,) = report.actions
    return {
        "agents": [PLANNER_NAME, AGENT_NAME],
        "planner": {
            "agent": PLANNER_NAME,
            "trace_id": team.planner.trace_id,
            "spans_recorded": len(planner_spans),
            "documents": [d.id for d in team.planner.documents],
            "model": team.planner.model,
        },
        "handoff": {
            "from_agent": received["attributes"][AL.HANDOFF_FROM_AGENT],
            "to_agent": received["agent_name"],
            "over": "queue.Queue",
            "entry_id": team.planner.item.entry_id,
            "task": team.planner.item.task,
            "handoff_id": team.handoff.handoff_id,
            "run_id": team.handoff.run_id,
            "sent_span_id": sent.span_id,
            "sent_in_trace": sent.trace_id,
            "received_span_id": received["span_id"],
            "received_in_trace": received["trace_id"],
            "scopes_handed": list(principal.scopes or ()) if principal else [],
        },
        "delegation_chain": chain,
        "graph": {
            "edges": [
                {"source": e.source, "target": e.target, "handoffs": e.handoffs}
                for e in graph.edges
            ]
        },
        "posting": {
            "span_id": posting_id,
            "inside": _ancestors(spans, posting_id),
            "upstream": [
                {
                    "delegation_step": hop.delegation_step,
                    "from_agent": hop.from_agent,
                    "trace_id": hop.trace_id,
                    "principal_id": hop.principal_id,
                    "documents": [
                        {
                            "id": d.id,
                            "verified": d.verified,
                            "agent": (d.model_extra or {}).get("agent"),
                        }
                        for d in hop.documents
                    ],
                    "llm_calls": [
                        {"span_id": c.span_id, "agent": (c.model_extra or {}).get("agent")}
                        for c in hop.llm_calls
                    ],
                }
                for hop in action.upstream
            ],
        },
        "_posting_report": report,
    }


def _ancestors(spans: list[dict[str, Any]], span_id: str) -> list[dict[str, str]]:
    """The spans enclosing ``span_id``, innermost first: where the parked call ran."""
    by_id = {s["span_id"]: s for s in spans}
    found: list[dict[str, str]] = []
    parent = by_id[span_id]["parent_span_id"] if span_id in by_id else ""
    while parent in by_id:
        span = by_id[parent]
        found.append({"span_id": span["span_id"], "name": span["name"], "kind": span["kind"]})
        parent = span["parent_span_id"]
    return found
