"""Traces found by what their spans hold: the console's trace list, paged on the server.

A trace matches when any of its spans matches every filter given (agent, principal, model
requested or answered, tool, free text in the span's name and input/output previews) inside the
time range; the status filter applies to the trace as a whole (``ERROR`` when any span failed),
the anomaly filter to the traces an anomaly names as its examples (of any kind, or of one).
The inner query reads matching spans newest first along the ``spans`` ordering key (tenant, then
time), a bounded number of them within the newest days that hold a page (``recent``), and returns
their trace ids; the outer one summarizes those traces exactly (``FINAL``), as
``queries.list_traces`` does.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal

from agentledger.pipeline.services.queries import _TRACE_COLUMNS, _plain
from agentledger.pipeline.services.recent import newest_first
from agentledger.pipeline.store import Store
from agentledger.schemas.analytics import NOT_SPANS_LOST_SQL
from agentledger.schemas.read import TraceSummary

__all__ = ["TraceFilters", "TracePage", "facets", "search_traces"]

PAGE_MAX = 200
"""Most traces on one page (a larger ask is cut to this)."""
SPANS_PER_TRACE = 200
"""How many matching spans are read, newest first, per trace the page needs: the inner query
stops there instead of collecting every trace id of the range (``queries.list_traces`` bounds its
scan alike). Traces of more spans than this on average may end a page early."""


@dataclass(frozen=True)
class TraceFilters:
    """What the trace list is narrowed to; empty strings and None mean "any"."""

    since: datetime | None = None
    until: datetime | None = None
    agent: str = ""
    principal: str = ""
    model: str = ""
    tool: str = ""
    status: Literal["", "OK", "ERROR"] = ""
    text: str = ""
    anomaly: str = ""
    """``any``: traces some anomaly names as an example; an ``AnomalyType`` value: of that kind."""


@dataclass(frozen=True)
class TracePage:
    """One page of matching traces, newest first."""

    traces: list[TraceSummary]
    offset: int
    limit: int
    more: bool
    """Whether an older page exists."""


def _at(t: datetime) -> str:
    utc = t.astimezone(timezone.utc) if t.tzinfo else t
    return utc.strftime("%Y-%m-%d %H:%M:%S.%f")


def search_traces(
    store: Store, tenant: str, filters: TraceFilters, *, offset: int = 0, limit: int = 50
) -> TracePage:
    """The page of traces matching ``filters`` that starts ``offset`` traces from the newest."""
    limit = max(1, min(int(limit), PAGE_MAX))
    offset = max(0, int(offset))
    where = ["tenant = {tenant:String}", NOT_SPANS_LOST_SQL]
    params: dict[str, Any] = {
        "tenant": tenant,
        "limit": limit + 1,
        "offset": offset,
        "scan": (offset + limit + 1) * SPANS_PER_TRACE,
    }
    if filters.since is not None:
        where.append("start_time >= {since:DateTime64(9, 'UTC')}")
        params["since"] = _at(filters.since)
    if filters.until is not None:
        where.append("start_time < {until:DateTime64(9, 'UTC')}")
        params["until"] = _at(filters.until)
    for column, name, value in (
        ("agent_name", "agent", filters.agent),
        ("principal_id", "principal", filters.principal),
        ("tool_name", "tool", filters.tool),
    ):
        if value:
            where.append(f"{column} = {{{name}:String}}")
            params[name] = value
    if filters.model:
        where.append("(request_model = {model:String} OR response_model = {model:String})")
        params["model"] = filters.model
    if filters.text:
        where.append(
            "positionCaseInsensitiveUTF8(concat(name, '\\n', input_preview, '\\n', "
            "output_preview, '\\n', status_message), {text:String}) > 0"
        )
        params["text"] = filters.text
    if filters.anomaly:
        kind = "" if filters.anomaly == "any" else " AND type = {anomaly:String}"
        where.append(
            "trace_id IN (SELECT arrayJoin(example_trace_ids) FROM anomalies FINAL "
            f"WHERE tenant = {{tenant:String}}{kind})"
        )
        params["anomaly"] = filters.anomaly
    having = ""
    if filters.status:
        having = "HAVING status = {status:String}"
        params["status"] = filters.status
    cond = " AND ".join(where)

    def run(inner: str, outer: str, bound: dict[str, Any]) -> list[dict[str, Any]]:
        return store.query_rows(
            f"""
            SELECT {_TRACE_COLUMNS}
            FROM spans FINAL
            WHERE tenant = {{tenant:String}} AND {NOT_SPANS_LOST_SQL} AND {outer}
              AND trace_id IN (
                  SELECT trace_id FROM spans WHERE {cond} AND {inner}
                  ORDER BY start_time DESC LIMIT {{scan:UInt32}}
              )
            GROUP BY trace_id
            {having}
            ORDER BY trace_start DESC, trace_id
            LIMIT {{limit:UInt32}} OFFSET {{offset:UInt32}}
            """,
            bound,
        )

    # a full page (one more than asked: "is there an older page") ends the widening
    rows = [_plain(r) for r in newest_first(store, cond, params, run, limit + 1)]
    for r in rows:
        r["start_time"] = r.pop("trace_start")
    found = [TraceSummary.model_validate(r) for r in rows[:limit]]
    return TracePage(found, offset, limit, more=len(rows) > limit)


def facets(store: Store, tenant: str, since: datetime | None) -> dict[str, list[str]]:
    """The agents, principals, models and tools seen since ``since``: the filters' choices."""
    params: dict[str, Any] = {"tenant": tenant}
    cond = "tenant = {tenant:String}"
    if since is not None:
        cond += " AND start_time >= {since:DateTime64(9, 'UTC')}"
        params["since"] = _at(since)
    sql = f"""
        SELECT
            arraySort(groupUniqArrayIf(100)(agent_name, agent_name != '')) AS agents,
            arraySort(groupUniqArrayIf(100)(principal_id, principal_id != '')) AS principals,
            arraySort(groupUniqArrayIf(100)(
                if(response_model != '', response_model, request_model),
                request_model != '' OR response_model != '')) AS models,
            arraySort(groupUniqArrayIf(100)(tool_name, tool_name != '')) AS tools
        FROM spans WHERE {cond}
    """
    rows = store.query_rows(sql, params)
    row = rows[0] if rows else {}
    return {k: list(row.get(k) or []) for k in ("agents", "principals", "models", "tools")}
