"""Read-side queries of the governance records (same SQL on both stores).

They read the typed views of the record log (``intents_v``, ``intent_outcomes_v``,
``controls_v``) and compute the current state from it: the latest ask of an intent, its
latest outcome, the latest control event per (tenant, scope, target). A record stored
twice (a re-send) is counted once: by its id and body hash, or by taking the latest per key.
"""

from __future__ import annotations

from typing import Any

from agentledger.pipeline.governance.records import (
    CONTROLS_VIEW,
    INTENTS_VIEW,
    OUTCOMES_VIEW,
    ControlAction,
    ControlOut,
    ControlScope,
)
from agentledger.pipeline.store import Store

__all__ = ["latest_controls", "control_history", "get_intent", "list_intents"]

_LATEST = f"""
    SELECT tenant, scope, target,
           argMax(control_id, (created_at, control_id)) AS last_control_id,
           argMax(action, (created_at, control_id)) AS last_action,
           argMax(by, (created_at, control_id)) AS last_by,
           argMax(reason, (created_at, control_id)) AS last_reason,
           argMax(note, (created_at, control_id)) AS last_note,
           toUnixTimestamp64Nano(max(created_at)) AS created_at_ns
    FROM {CONTROLS_VIEW}
    {{where}}
    GROUP BY tenant, scope, target
"""


def _control(row: dict[str, Any], prefix: str = "") -> ControlOut:
    if prefix:
        row = {**row, **{k[len(prefix) :]: v for k, v in row.items() if k.startswith(prefix)}}
    return ControlOut(
        control_id=row["control_id"],
        tenant=row["tenant"],
        created_at_ns=int(row["created_at_ns"]),
        action=ControlAction(row["action"]),
        scope=ControlScope(row["scope"]),
        target=row["target"],
        by=row["by"],
        reason=row["reason"],
        note=row["note"],
    )


def latest_controls(store: Store, tenant: str | None = None) -> list[ControlOut]:
    """The latest control event of every (tenant, scope, target): a pause there is in force
    when that event is a pause."""
    if tenant is None:
        return [_control(r, "last_") for r in store.query_rows(_LATEST.format(where=""))]
    rows = store.query_rows(
        _LATEST.format(where="WHERE tenant = {tenant:String}"), {"tenant": tenant}
    )
    return [_control(r, "last_") for r in rows]


def control_history(store: Store, tenant: str, limit: int = 100) -> list[ControlOut]:
    """Every control event of ``tenant``, newest first."""
    rows = store.query_rows(
        f"""
        SELECT tenant, control_id, action, scope, target, by, reason, note,
               toUnixTimestamp64Nano(created_at) AS created_at_ns
        FROM {CONTROLS_VIEW}
        WHERE tenant = {{tenant:String}}
        ORDER BY created_at DESC, control_id DESC
        LIMIT 1 BY control_id, body_sha256
        LIMIT {{limit:UInt32}}
        """,
        {"tenant": tenant, "limit": int(limit)},
    )
    return [_control(r) for r in rows]


_INTENT_FIELDS = """
    intent_id, attempt, decision, control_id, tool_name, tool_call_id, arguments, arguments_sha256,
    arguments_redacted, trace_id, span_id, parent_span_id, principal_id, principal_name, principal_role,
    principal_chain, policy_id, agent_name, session_id, user_id,
    requested_at, received_at
"""


def _latest_asks(where: str) -> str:
    """SQL of the latest ask of each intent matching ``where`` (the highest attempt, the last
    acknowledged of equal attempts): what the tool ran on, or the pause that still holds it."""
    return f"""
        SELECT {_INTENT_FIELDS}
        FROM {INTENTS_VIEW}
        WHERE {where}
        ORDER BY attempt DESC, received_at DESC, body_sha256 DESC
        LIMIT 1 BY intent_id
    """


def _outcomes(store: Store, tenant: str, intent_ids: list[str]) -> dict[str, dict[str, Any]]:
    if not intent_ids:
        return {}
    rows = store.query_rows(
        f"""
        SELECT intent_id, status, result, result_sha256, error_type, error_message, duration_ms, paused_ms,
               finished_at
        FROM {OUTCOMES_VIEW}
        WHERE tenant = {{tenant:String}} AND intent_id IN {{ids:Array(String)}}
        ORDER BY received_at DESC, finished_at DESC, body_sha256 DESC
        LIMIT 1 BY intent_id
        """,
        {"tenant": tenant, "ids": intent_ids},
    )
    return {r.pop("intent_id"): r for r in rows}


def list_intents(
    store: Store,
    tenant: str,
    *,
    trace_id: str | None = None,
    session_id: str | None = None,
    tool_name: str | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Intents of ``tenant`` newest first, each with its ``outcome`` (None while none was recorded)."""
    where = ["tenant = {tenant:String}"]
    params: dict[str, Any] = {"tenant": tenant, "limit": int(limit)}
    for column, value in (
        ("trace_id", trace_id),
        ("session_id", session_id),
        ("tool_name", tool_name),
    ):
        if value:
            where.append(f"{column} = {{{column}:String}}")
            params[column] = value
    rows = store.query_rows(
        f"""
        SELECT {_INTENT_FIELDS}
        FROM ({_latest_asks(" AND ".join(where))})
        ORDER BY requested_at DESC, intent_id
        LIMIT {{limit:UInt32}}
        """,
        params,
    )
    outcomes = _outcomes(store, tenant, [r["intent_id"] for r in rows])
    for row in rows:
        row["outcome"] = outcomes.get(row["intent_id"])
    return rows


def get_intent(store: Store, tenant: str, intent_id: str) -> dict[str, Any] | None:
    """One intent with its outcome, or None."""
    rows = store.query_rows(
        _latest_asks("tenant = {tenant:String} AND intent_id = {intent_id:String}"),
        {"tenant": tenant, "intent_id": intent_id},
    )
    if not rows:
        return None
    row = rows[0]
    row["outcome"] = _outcomes(store, tenant, [intent_id]).get(intent_id)
    return row
