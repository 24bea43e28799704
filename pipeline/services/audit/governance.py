"""Intents and run controls of an audited action, read from the record log's typed views when
they exist: a store without governance installed still answers the audit, and says so."""

from __future__ import annotations

from typing import Any

from agentledger.pipeline.services.audit.authority import _agent_of
from agentledger.pipeline.services.recorded import Trace, iso
from agentledger.pipeline.store import Store
from agentledger.schemas.attributes import Governance as GOV
from agentledger.schemas.records import VIEWS, RecordKind

_INTENTS, _CONTROLS = VIEWS[RecordKind.INTENT], VIEWS[RecordKind.CONTROL]
_GOVERNANCE_TABLES = {"intents": _INTENTS, "controls": _CONTROLS}


def _governance_tables(store: Store) -> set[str]:
    """Which of intents and controls this store keeps (their typed views exist)."""
    rows = store.query_rows(
        "SELECT name FROM system.tables WHERE database = currentDatabase() AND name IN {names:Array(String)}",
        {"names": list(_GOVERNANCE_TABLES.values())},
    )
    found = {r["name"] for r in rows}
    return {name for name, view in _GOVERNANCE_TABLES.items() if view in found}


def _intents(store: Store, tenant: str, trace: Trace) -> list[dict[str, Any]]:
    """The trace's intents, one per intent id: its latest ask (the one the tool ran on), with
    ``asks`` listing every ask (each is a record of the log; earlier asks, parked by a pause, say
    which control held the call). Of an ask recorded twice, the last acknowledged counts.
    Intents are asked during the trace (by the agent's clock, as spans are): the trace's time
    span, with a day's margin, bounds what is read."""
    rows = store.query_rows(
        f"""
        SELECT intent_id, attempt, decision, control_id, tool_name, tool_call_id, arguments, arguments_sha256,
               arguments_redacted, span_id, parent_span_id, principal_id, principal_name, principal_role,
               principal_chain, policy_id, agent_name, session_id, user_id,
               toUnixTimestamp64Nano(requested_at) AS requested_ns, toUnixTimestamp64Nano(received_at) AS received_ns
        FROM {_INTENTS}
        WHERE tenant = {{tenant:String}} AND trace_id = {{trace_id:String}}
          AND requested_at >= fromUnixTimestamp64Nano({{first:Int64}}, 'UTC') - INTERVAL 1 DAY
          AND requested_at <= fromUnixTimestamp64Nano({{last:Int64}}, 'UTC') + INTERVAL 1 DAY
        ORDER BY received_at, body_sha256
        """,
        {
            "tenant": tenant,
            "trace_id": trace.trace_id,
            "first": min(s["start_ns"] for s in trace.spans),
            "last": max(s["end_ns"] for s in trace.spans),
        },
    )
    by_id: dict[str, dict[int, dict[str, Any]]] = {}
    for row in rows:
        by_id.setdefault(row["intent_id"], {})[int(row["attempt"])] = row
    out = []
    for asks in by_id.values():
        latest = dict(asks[max(asks)])
        latest["asks"] = [
            {
                "attempt": a,
                "decision": r["decision"],
                "control_id": r["control_id"],
                "acknowledged_at": iso(r["received_ns"]),
            }
            for a, r in sorted(asks.items())
        ]
        out.append(latest)
    return out


def _controls(
    store: Store, tenant: str, until_ns: int, keys: set[tuple[str, str]]
) -> list[dict[str, Any]]:
    if not keys:
        return []
    rows = store.query_rows(
        f"""
        SELECT control_id, action, scope, target, by, reason, toUnixTimestamp64Nano(created_at) AS created_ns
        FROM {_CONTROLS}
        WHERE tenant = {{tenant:String}} AND created_at <= fromUnixTimestamp64Nano({{until:Int64}}, 'UTC')
          AND concat(scope, '/', target) IN {{keys:Array(String)}}
        ORDER BY created_at, control_id
        LIMIT 1 BY control_id, body_sha256
        """,
        {
            "tenant": tenant,
            "until": until_ns,
            "keys": sorted(f"{scope}/{target}" for scope, target in keys),
        },
    )
    return rows


def _control_keys(
    trace: Trace, span: dict[str, Any], authority: dict[str, Any], intent: dict[str, Any] | None
) -> set[tuple[str, str]]:
    """The (scope, target) pairs a pause can hold this action by, as the collector matches them
    (``pipeline.governance.controls``): trace, session, agent, and the principal or anyone in its chain."""
    session = span["session_id"] or (intent or {}).get("session_id", "")
    agent = _agent_of(trace, span) or (intent or {}).get("agent_name", "")
    keys = {("trace", span["trace_id"])}
    if session:
        keys.add(("session", session))
    if agent:
        keys.add(("agent", agent))
    for principal in {authority["principal_id"], *authority["principal_chain"]}:
        if principal:
            keys.add(("principal", principal))
    return keys


def _intent_for(
    trace: Trace, action: dict[str, Any], intents: list[dict[str, Any]]
) -> dict[str, Any] | None:
    """The intent of a governed tool call: named on the action (or a governed TOOL span inside it),
    else recorded against one of those spans, else against the same tool call id."""
    spans = [action, *trace.descendants(action)]
    by_id = {i["intent_id"]: i for i in intents}
    for s in spans:
        named = s["attributes"].get(GOV.INTENT_ID)
        if named and named in by_id:
            return by_id[named]
    ids = {s["span_id"] for s in spans}
    for intent in intents:
        if intent["span_id"] in ids:
            return intent
    if action["tool_call_id"]:
        for intent in intents:
            if intent["tool_call_id"] == action["tool_call_id"]:
                return intent
    return None


def _intent_entry(intent: dict[str, Any], action: dict[str, Any]) -> dict[str, Any]:
    arguments_match: bool | None = None
    if action["kind"] == "TOOL" and action["input_hash"]:
        arguments_match = action["input_hash"] == intent["arguments_sha256"]
    return {
        "intent_id": intent["intent_id"],
        "tool_name": intent["tool_name"],
        "tool_call_id": intent["tool_call_id"],
        "requested_at": iso(intent["requested_ns"]),
        "acknowledged_at": iso(intent["received_ns"]),
        "decision": intent["decision"],
        "attempts": int(intent["attempt"]) + 1,
        "control_id": intent["control_id"],
        "held_by": sorted(_holding(intent)),
        "asks": intent.get("asks", []),
        "arguments": intent["arguments"],
        "arguments_sha256": intent["arguments_sha256"],
        "arguments_redacted": bool(intent["arguments_redacted"]),
        "arguments_match_action": arguments_match,
        "chosen_by_span_id": intent["parent_span_id"],
    }


def _holding(intent: dict[str, Any]) -> set[str]:
    """Controls that parked any ask of the intent."""
    return {a["control_id"] for a in intent.get("asks", ()) if a["control_id"]} | (
        {intent["control_id"]} if intent["control_id"] else set()
    )


def _controls_entry(
    events: list[dict[str, Any]],
    keys: set[tuple[str, str]],
    until_ns: int,
    intent: dict[str, Any] | None,
) -> tuple[list[dict[str, Any]], list[str]]:
    applied, state = [], {}
    for e in events:
        if (e["scope"], e["target"]) not in keys or e["created_ns"] > until_ns:
            continue
        applied.append(
            {
                "control_id": e["control_id"],
                "action": e["action"],
                "scope": e["scope"],
                "target": e["target"],
                "by": e["by"],
                "reason": e["reason"],
                "at": iso(e["created_ns"]),
                "held_this_call": bool(intent and e["control_id"] in _holding(intent)),
            }
        )
        state[(e["scope"], e["target"])] = e
    in_force = sorted(e["control_id"] for e in state.values() if e["action"] == "pause")
    return applied, in_force
