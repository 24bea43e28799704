"""One action's audit, and the entry point that loads a trace once for all its actions: the
reads are batched here (contents, intents, controls) so that assembling each report is pure."""

from __future__ import annotations

from typing import Any

from agentledger.pipeline.services.audit.authority import _agent_of, _authority, _deciding_llm
from agentledger.pipeline.services.audit.governance import (
    _control_keys,
    _controls,
    _controls_entry,
    _governance_tables,
    _intent_entry,
    _intent_for,
    _intents,
)
from agentledger.pipeline.services.audit.locate import _actions, _hashes_for, load_trace
from agentledger.pipeline.services.audit.saw import (
    _documents,
    _integrity,
    _llm_entry,
    _step_entry,
    _tool_calls,
    _tool_entry,
)
from agentledger.pipeline.services.audit.upstream import upstream
from agentledger.pipeline.services.erasure.marks import mark_erased
from agentledger.pipeline.services.recorded import Trace, iso, system_fingerprint
from agentledger.pipeline.store import Store

__all__ = ["audit", "audit_span"]


def audit_span(
    trace: Trace,
    action: dict[str, Any],
    *,
    intents: list[dict[str, Any]] | None = None,
    controls: list[dict[str, Any]] | None = None,
    governance: bool = False,
) -> dict[str, Any]:
    """The audit of one action of a loaded trace (contents must have been fetched, see ``audit``)."""
    start = action["start_ns"]
    excluded = {action["span_id"]} | {s["span_id"] for s in trace.descendants(action)}
    enclosing = trace.ancestors(action)
    enclosing_ids = {s["span_id"] for s in enclosing}
    seen = [
        s
        for s in trace.spans
        if s["end_ns"] <= start
        and s["span_id"] not in excluded
        and s["span_id"] not in enclosing_ids
    ]
    after = [
        s
        for s in trace.spans
        if s["span_id"] not in excluded
        and s["end_ns"] > start
        and s["span_id"] not in enclosing_ids
    ]
    intent = _intent_for(trace, action, intents or []) if action["kind"] == "TOOL" else None
    authority = _authority(trace, action, intent)
    decider, link = _deciding_llm(trace, action, seen, intent)

    timeline: list[dict[str, Any]] = []
    llm_calls: list[dict[str, Any]] = []
    documents: list[dict[str, Any]] = []
    tool_outputs: list[dict[str, Any]] = []
    steps: list[dict[str, Any]] = []
    for seq, span in enumerate(seen, 1):
        timeline.append(
            {
                "seq": seq,
                "span_id": span["span_id"],
                "kind": span["kind"],
                "name": span["name"],
                "started_at": iso(span["start_ns"]),
                "ended_at": iso(span["end_ns"]),
            }
        )
        if span["kind"] == "LLM":
            llm_calls.append({"seq": seq, **_llm_entry(trace, span)})
        elif span["kind"] in ("RETRIEVER", "RERANKER"):
            documents.extend({"seq": seq, **d} for d in _documents(trace, span))
        elif span["kind"] == "TOOL":
            tool_outputs.append({"seq": seq, **_tool_entry(trace, span)})
        else:
            steps.append({"seq": seq, **_step_entry(trace, span)})

    if action["kind"] == "LLM":
        action_entry = {"kind": "LLM", **_llm_entry(trace, action)}
    else:
        action_entry = {
            "kind": action["kind"],
            "name": action["name"],
            **_tool_entry(trace, action, with_output=False),
        }
    action_entry.update(
        agent_name=_agent_of(trace, action),
        session_id=action["session_id"],
        user_id=action["user_id"],
        service=action["service"],
    )

    decided_by: dict[str, Any] | None = None
    if decider is not None:
        chosen = next(
            (
                c
                for c in _tool_calls(trace, decider)
                if c["id"] and c["id"] == action["tool_call_id"]
            ),
            None,
        )
        if chosen is None and action["kind"] == "TOOL":
            name = action["tool_name"] or action["name"]
            chosen = next((c for c in _tool_calls(trace, decider) if c["name"] == name), None)
        decided_by = {
            "span_id": decider["span_id"],
            "found_by": link,
            "provider": decider["provider"],
            "requested_model": decider["request_model"],
            "answered_model": decider["response_model"],
            "system_fingerprint": system_fingerprint(trace, decider),
            "at": iso(decider["end_ns"]),
            "chose": chosen,
            "executed_as_chosen": (chosen["arguments_hash"] == action["input_hash"])
            if chosen and action["kind"] == "TOOL"
            else None,
        }

    until = max(start, intent["received_ns"]) if intent else start
    keys = _control_keys(trace, action, authority, intent)
    applied, in_force = _controls_entry(controls or [], keys, until, intent)
    return {
        "tenant": trace.tenant,
        "trace_id": trace.trace_id,
        "action": action_entry,
        "authority": authority,
        "decided_by": decided_by,
        "context": [_step_entry(trace, s, with_output=False) for s in reversed(enclosing)],
        "timeline": timeline,
        "llm_calls": llm_calls,
        "documents": documents,
        "tool_outputs": tool_outputs,
        "other_steps": steps,
        "intent": _intent_entry(intent, action) if intent else None,
        "controls": applied,
        "pauses_in_force_at_action": in_force,
        "governance_recorded": governance,
        "left_out": {"spans_after_action": len(after), "action_result": action["kind"] == "TOOL"},
        "integrity": _integrity(trace, seen + enclosing + [action]),
        "upstream": [],  # filled by ``audit``, which reads the upstream traces
    }


def audit(store: Store, tenant: str, ref: str, *, last: bool = False) -> dict[str, Any]:
    """Audit a span (16 hex digits) or every tool call of a trace (32; ``last``: only the last one).

    Returns ``{"tenant", "trace_id", "query", "actions": [report, ...]}``; raises ``AuditNotFound``
    for an unknown id and ``ValueError`` for one that is not an id at all.
    """
    store.flush_write_behind()  # acknowledged intents are in the store before it is read
    trace, target = load_trace(store, tenant, ref)
    actions = _actions(trace, target, last)
    if not actions:
        return {"tenant": tenant, "trace_id": trace.trace_id, "query": ref, "actions": []}
    horizon = max(a["start_ns"] for a in actions)
    involved = [s for s in trace.spans if s["start_ns"] <= horizon]
    trace.fetch(_hashes_for(involved))
    mark_erased(store, tenant, trace.contents)  # "erased on <date> by <key>" where text was
    tables = _governance_tables(store)
    intents = _intents(store, tenant, trace) if "intents" in tables else []
    controls: list[dict[str, Any]] = []
    if "controls" in tables:
        keys: set[tuple[str, str]] = set()
        until = horizon
        for action in actions:
            intent = _intent_for(trace, action, intents) if action["kind"] == "TOOL" else None
            keys |= _control_keys(trace, action, _authority(trace, action, intent), intent)
            if intent:
                until = max(until, intent["received_ns"])
        controls = _controls(store, tenant, until, keys)
    reports = [
        audit_span(trace, a, intents=intents, controls=controls, governance=bool(tables))
        for a in actions
    ]
    for action, report in zip(actions, reports):
        report["upstream"] = upstream(store, trace, action)
    return {"tenant": tenant, "trace_id": trace.trace_id, "query": ref, "actions": reports}
