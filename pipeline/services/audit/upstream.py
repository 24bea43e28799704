"""What upstream agents saw and handed on: the audit of an action follows the work back across
handoffs (``instrumentation.handoff``), so that "everything the agent saw before it acted"
includes what the agents before it saw before they passed the work along.

From the action, the innermost enclosing span that *received* a handoff (it names
``agentledger.handoff.from_agent`` and the handoff id) leads to the sender's ``handoff`` span,
which carries the same id: in the same trace for a synchronous call, in another trace for a
queue or a topic. Everything the sender's trace had finished before that span started is what
the sender saw and could pass on; each item is listed with its agent, span, time and the
delegation step (``planner -> executor``) it came through. The walk repeats from the sender's
span, up to ``MAX_HOPS`` handoffs.

The sender's span is looked up by handoff id among the tenant's spans that started within
``LOOKBACK_DAYS`` before the receiving span: the table is ordered by tenant and day, so the scan
stays within those days, however large the table.
"""

from __future__ import annotations

from typing import Any

from agentledger.pipeline.services.audit.locate import _hashes_for
from agentledger.pipeline.services.audit.saw import (
    _documents,
    _integrity,
    _llm_entry,
    _step_entry,
    _tool_entry,
)
from agentledger.pipeline.services.recorded import Trace, iso, span_rows
from agentledger.pipeline.store import Store
from agentledger.schemas.attributes import AgentLedger as AL

__all__ = ["LOOKBACK_DAYS", "MAX_HOPS", "upstream"]

MAX_HOPS = 8
"""Handoffs followed back from one action (a longer chain is cut, and says so)."""
LOOKBACK_DAYS = 30
"""How long before the receiving span the sender's span is looked for."""

_SENT = (
    f"attributes['{AL.HANDOFF_ID}'] = {{hid:String}} AND attributes['{AL.HANDOFF_FROM_AGENT}'] = '' "
    "AND start_time <= fromUnixTimestamp64Nano({until:Int64}) "
    "AND start_time >= fromUnixTimestamp64Nano({until:Int64}) - INTERVAL {days:UInt16} DAY"
)


def _received(trace: Trace, span: dict[str, Any]) -> dict[str, Any] | None:
    """The innermost of ``span`` and its ancestors that received a handoff."""
    for candidate in (span, *trace.ancestors(span)):
        attrs = candidate["attributes"]
        if attrs.get(AL.HANDOFF_FROM_AGENT) and attrs.get(AL.HANDOFF_ID):
            return candidate
    return None


def _sender_trace(store: Store, trace: Trace, sent: dict[str, Any]) -> Trace:
    if sent["trace_id"] == trace.trace_id:
        return trace
    spans = span_rows(store, trace.tenant, "trace_id = {t:String}", {"t": sent["trace_id"]})
    return Trace(store, trace.tenant, sent["trace_id"], spans)


def _seen_before(trace: Trace, sent: dict[str, Any]) -> list[dict[str, Any]]:
    enclosing = {s["span_id"] for s in trace.ancestors(sent)}
    return [
        s
        for s in trace.spans
        if s["end_ns"] <= sent["start_ns"]
        and s["span_id"] != sent["span_id"]
        and s["span_id"] not in enclosing
    ]


def _hop(trace: Trace, received: dict[str, Any], sent: dict[str, Any], step: str) -> dict[str, Any]:
    seen = _seen_before(trace, sent)
    trace.fetch(_hashes_for(seen))
    hop: dict[str, Any] = {
        "delegation_step": step,
        "from_agent": received["attributes"][AL.HANDOFF_FROM_AGENT],
        "to_agent": received["agent_name"],
        "handoff_id": received["attributes"][AL.HANDOFF_ID],
        "handoff_span_id": sent["span_id"],
        "received_span_id": received["span_id"],
        "trace_id": trace.trace_id,
        "handed_off_at": iso(sent["start_ns"]),
        "received_at": iso(received["start_ns"]),
        "principal_id": sent["principal_id"],
        "llm_calls": [],
        "documents": [],
        "tool_outputs": [],
        "other_steps": [],
    }
    for seq, span in enumerate(seen, 1):
        tag = {"seq": seq, "agent": span["agent_name"], "delegation_step": step}
        if span["kind"] == "LLM":
            hop["llm_calls"].append({**tag, **_llm_entry(trace, span)})
        elif span["kind"] in ("RETRIEVER", "RERANKER"):
            hop["documents"].extend({**tag, **d} for d in _documents(trace, span))
        elif span["kind"] == "TOOL":
            hop["tool_outputs"].append({**tag, **_tool_entry(trace, span)})
        else:
            hop["other_steps"].append({**tag, **_step_entry(trace, span)})
    hop["integrity"] = _integrity(trace, seen)
    return hop


def upstream(store: Store, trace: Trace, action: dict[str, Any]) -> list[dict[str, Any]]:
    """The handoffs that led to ``action``, nearest first, each with what its sender saw."""
    hops: list[dict[str, Any]] = []
    current, anchor = trace, action
    for _ in range(MAX_HOPS):
        received = _received(current, anchor)
        if received is None:
            break
        attrs = received["attributes"]
        rows = span_rows(
            store,
            trace.tenant,
            _SENT,
            {"hid": attrs[AL.HANDOFF_ID], "until": received["start_ns"], "days": LOOKBACK_DAYS},
        )
        step = f"{attrs[AL.HANDOFF_FROM_AGENT]} -> {received['agent_name']}"
        if not rows:  # the sender's spans never arrived (or are older than the lookback)
            hops.append(
                {
                    "delegation_step": step,
                    "from_agent": attrs[AL.HANDOFF_FROM_AGENT],
                    "to_agent": received["agent_name"],
                    "handoff_id": attrs[AL.HANDOFF_ID],
                    "received_span_id": received["span_id"],
                    "received_at": iso(received["start_ns"]),
                    "sender_recorded": False,
                }
            )
            break
        sent = rows[0]
        current = _sender_trace(store, current, sent)
        hops.append({**_hop(current, received, sent, step), "sender_recorded": True})
        anchor = current.by_id.get(sent["span_id"], sent)
    return hops
