"""Sessions (conversations): the traces that share a ``session.id``, listed and read turn by turn.

A session is whatever the agent stamped as ``session.id`` (OpenInference ``using_attributes``,
Langfuse's session, the GenAI conversation id: the normalizer maps them all to ``session_id``);
a turn is one trace of it. Both queries read ``spans`` with ``FINAL`` (rows delivered twice count
once) and leave out the agents' reports of lost spans, as the trace list does.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from agentledger.pipeline.services.queries import _plain
from agentledger.pipeline.services.reads import ReadNotFound, ReadRejected
from agentledger.pipeline.store import Store
from agentledger.schemas.analytics import NOT_SPANS_LOST_SQL
from agentledger.schemas.read.sessions import SessionPage, SessionSummary, SessionTurn, SessionTurns

__all__ = ["PAGE_MAX", "TURNS_MAX", "list_sessions", "session_turns"]

PAGE_MAX = 200
"""Most sessions on one page."""
TURNS_MAX = 1000
"""Most turns read of one session (a longer one says ``more``)."""
SESSION_ID_MAX = 1024


def _at(t: datetime) -> str:
    utc = t.astimezone(timezone.utc) if t.tzinfo else t
    return utc.strftime("%Y-%m-%d %H:%M:%S.%f")


def list_sessions(
    store: Store,
    tenant: str,
    *,
    since: datetime | None = None,
    agent: str = "",
    offset: int = 0,
    limit: int = 50,
) -> SessionPage:
    """Sessions active since ``since`` (of ``agent``, if given), most recently active first."""
    limit = max(1, min(int(limit), PAGE_MAX))
    offset = max(0, int(offset))
    where = ["tenant = {tenant:String}", "session_id != ''", NOT_SPANS_LOST_SQL]
    params: dict[str, Any] = {"tenant": tenant, "limit": limit + 1, "offset": offset}
    if since is not None:
        where.append("start_time >= {since:DateTime64(9, 'UTC')}")
        params["since"] = _at(since)
    having = ""
    if agent:
        having = "HAVING has(agents, {agent:String})"
        params["agent"] = agent
    sql = f"""
        SELECT session_id, uniqExact(trace_id) AS turns, count() AS spans,
               min(start_time) AS first_at, max(end_time) AS last_at,
               argMin(agent_name, start_time) AS first_agent,
               argMin(principal_id, start_time) AS first_principal,
               argMin(user_id, start_time) AS first_user,
               sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
               sum(cost_usd) AS cost_usd, countIf(status_code = 'ERROR') AS errors,
               groupUniqArray(agent_name) AS agents
        FROM spans FINAL
        WHERE {" AND ".join(where)}
        GROUP BY session_id
        {having}
        ORDER BY last_at DESC, session_id
        LIMIT {{limit:UInt32}} OFFSET {{offset:UInt32}}
    """
    rows = [_plain(r) for r in store.query_rows(sql, params)]
    for r in rows:
        r.pop("agents", None)
        r["agent_name"] = r.pop("first_agent")
        r["principal_id"] = r.pop("first_principal")
        r["user_id"] = r.pop("first_user")
    found = [SessionSummary.model_validate(r) for r in rows[:limit]]
    return SessionPage(sessions=found, offset=offset, limit=limit, more=len(rows) > limit)


def session_turns(
    store: Store, tenant: str, session_id: str, *, limit: int = TURNS_MAX
) -> SessionTurns:
    """The turns of one session in the order they started. Raises ``ReadNotFound`` for a
    session id the tenant never recorded, ``ReadRejected`` for one no agent could have sent."""
    if not session_id or len(session_id) > SESSION_ID_MAX:
        raise ReadRejected(f"a session id has 1 to {SESSION_ID_MAX} characters")
    limit = max(1, min(int(limit), TURNS_MAX))
    root = "parent_span_id = ''"
    sql = f"""
        SELECT trace_id,
            if(countIf({root}) > 0, argMinIf(name, start_time, {root}), argMin(name, start_time))
                AS root_name,
            argMin(agent_name, start_time) AS first_agent,
            min(start_time) AS started,
            (toUnixTimestamp64Nano(max(end_time)) - toUnixTimestamp64Nano(min(start_time))) / 1e6
                AS duration_ms,
            count() AS spans, countIf(kind = 'LLM') AS llm_calls,
            sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
            sum(cost_usd) AS cost_usd,
            if(countIf(status_code = 'ERROR') > 0, 'ERROR', 'OK') AS status,
            argMinIf(input_hash, start_time, {root} AND input_hash != '') AS root_in,
            argMinIf(output_hash, start_time, {root} AND output_hash != '') AS root_out,
            argMinIf(input_preview, start_time, {root} AND input_hash != '') AS root_in_text,
            argMinIf(output_preview, start_time, {root} AND output_hash != '') AS root_out_text,
            argMinIf(input_hash, start_time, kind = 'LLM' AND input_hash != '') AS llm_in,
            argMaxIf(output_hash, end_time, kind = 'LLM' AND output_hash != '') AS llm_out,
            argMinIf(input_preview, start_time, kind = 'LLM' AND input_hash != '') AS llm_in_text,
            argMaxIf(output_preview, end_time, kind = 'LLM' AND output_hash != '') AS llm_out_text
        FROM spans FINAL
        WHERE tenant = {{tenant:String}} AND session_id = {{session:String}} AND {NOT_SPANS_LOST_SQL}
        GROUP BY trace_id
        ORDER BY started, trace_id
        LIMIT {{limit:UInt32}}
    """
    rows = store.query_rows(sql, {"tenant": tenant, "session": session_id, "limit": limit + 1})
    if not rows:
        raise ReadNotFound(f"no session {session_id!r} for tenant {tenant!r}")
    turns = []
    for raw in rows[:limit]:
        r = _plain(raw)
        r["agent_name"], r["start_time"] = r.pop("first_agent"), r.pop("started")
        from_root = bool(r["root_in"] or r["root_out"])
        side = "root" if from_root else "llm"
        turns.append(
            SessionTurn.model_validate(
                {
                    **{k: r[k] for k in SessionTurn.model_fields if k in r},
                    "input_hash": r[f"{side}_in"],
                    "output_hash": r[f"{side}_out"],
                    "input_preview": r[f"{side}_in_text"],
                    "output_preview": r[f"{side}_out_text"],
                }
            )
        )
    return SessionTurns(session_id=session_id, turns=turns, more=len(rows) > limit)
