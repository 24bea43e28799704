"""The agent graph: which agents handed work to which, how often, how fast, at what cost.

Built from what the instrumentation stamps (``instrumentation.handoff``): the receiving agent's
``invoke_agent`` span names the sender (``agentledger.handoff.from_agent``) and the handoff id,
the sender's ``handoff`` span carries the same id, and every span recorded inside a received
handoff carries the delegation chain. An edge ``A -> B`` is therefore every span whose chain
ends ``A, B``: its tokens and cost are what B spent on A's behalf, and no span is counted on
two edges. Read straight from ``spans`` (one grouped scan per answer, bounded by the range), so
a handoff shows the moment it is stored.

For one trace, the graph covers the runs the trace belongs to: an asynchronous handoff gives
the receiver a trace of its own, and the run id (``agentledger.run.id``) joins them.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from agentledger.pipeline.services.reads import ReadNotFound, ReadRejected, _before, _now, _utc
from agentledger.pipeline.store import Store
from agentledger.schemas.attributes import AgentLedger as AL
from agentledger.schemas.read import AgentGraph
from agentledger.schemas.read import defaults as D

__all__ = ["agents_graph"]

_HEX32 = re.compile(r"[0-9a-fA-F]{32}")

_CHAIN = f"JSONExtract(attributes['{AL.DELEGATION_CHAIN}'], 'Array(String)')"
_FROM = f"attributes['{AL.HANDOFF_FROM_AGENT}']"
_HANDOFF = f"attributes['{AL.HANDOFF_ID}']"
_RUN = f"attributes['{AL.RUN_ID}']"

_NODES = """
SELECT agent_name AS agent, count() AS spans, uniqExact(trace_id) AS traces,
       countIf(status_code = 'ERROR') AS errors, sum(input_tokens) AS input_tokens,
       sum(output_tokens) AS output_tokens, sum(cost_usd) AS cost_usd
FROM spans FINAL
WHERE {scope} AND agent_name != ''
GROUP BY agent ORDER BY agent
"""

_EDGE_WORK = f"""
SELECT chain[-2] AS source, chain[-1] AS target, count() AS spans,
       sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
       sum(cost_usd) AS cost_usd
FROM (SELECT {_CHAIN} AS chain, input_tokens, output_tokens, cost_usd
      FROM spans FINAL WHERE {{scope}})
WHERE length(chain) >= 2
GROUP BY source, target
"""

_EDGE_HANDOFFS = f"""
SELECT r.source AS source, r.target AS target, uniqExact(r.hid) AS handoffs,
       uniqExactIf(r.hid, r.failed) AS errors,
       quantilesIf(0.5, 0.95)(dateDiff('microsecond', s.sent, r.started) / 1000.0, s.sent > 0) AS wait,
       quantiles(0.5, 0.95)(r.duration_ms) AS duration
FROM (SELECT {_FROM} AS source, agent_name AS target, {_HANDOFF} AS hid,
             start_time AS started, duration_ms, status_code = 'ERROR' AS failed
      FROM spans FINAL WHERE {{scope}} AND {_FROM} != '') AS r
LEFT JOIN (SELECT {_HANDOFF} AS hid, min(start_time) AS sent
           FROM spans FINAL
           WHERE tenant = {{{{tenant:String}}}} AND {_HANDOFF} != '' AND {_FROM} = ''
             AND {_HANDOFF} IN (SELECT {_HANDOFF} FROM spans FINAL WHERE {{scope}} AND {_FROM} != '')
           GROUP BY hid) AS s ON s.hid = r.hid
GROUP BY source, target
"""


def _window_scope(since: datetime, until: datetime) -> tuple[str, dict[str, Any]]:
    return (
        "tenant = {tenant:String} AND start_time >= {since:DateTime64(6)} "
        "AND start_time < {until:DateTime64(6)}",
        {"since": since.replace(tzinfo=None), "until": until.replace(tzinfo=None)},
    )


def _trace_scope(store: Store, tenant: str, trace_id: str) -> tuple[str, dict[str, Any]]:
    runs = [
        r["run"]
        for r in store.query_rows(
            f"SELECT DISTINCT {_RUN} AS run FROM spans FINAL "
            "WHERE tenant = {tenant:String} AND trace_id = {trace:String} AND run != ''",
            {"tenant": tenant, "trace": trace_id},
        )
    ]
    if not runs and not store.query_scalar(
        "SELECT count() FROM spans WHERE tenant = {tenant:String} AND trace_id = {trace:String}",
        {"tenant": tenant, "trace": trace_id},
    ):
        raise ReadNotFound(f"no trace {trace_id} for tenant {tenant!r}")
    return (
        "tenant = {tenant:String} AND (trace_id = {trace:String} "
        f"OR {_RUN} IN {{runs:Array(String)}})",
        {"trace": trace_id, "runs": runs},
    )


def _quantile(values: list[Any], i: int) -> float | None:
    if not values:
        return None
    value = float(values[i])
    return None if value != value else round(value, 3)  # NaN: no sample


def agents_graph(
    store: Store,
    tenant: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    trace_id: str | None = None,
) -> AgentGraph:
    """Agents and handoffs of ``[since, until)`` (default: the last ``GRAPH_WINDOW_HOURS``), or
    of one trace with the runs it belongs to."""
    if trace_id is not None:
        if not _HEX32.fullmatch(trace_id):
            raise ReadRejected(f"trace id {trace_id!r} must be 32 hex digits")
        trace_id = trace_id.lower()
        scope, params = _trace_scope(store, tenant, trace_id)
        start = end = None
    else:
        end = _utc(until, "until") or _now()
        start = _utc(since, "since") or _before(end, D.GRAPH_WINDOW_HOURS, "since")
        if start >= end:
            raise ReadRejected("since must be before until")
        scope, params = _window_scope(start, end)
    params["tenant"] = tenant
    nodes = store.query_rows(_NODES.format(scope=scope), params)
    work = {
        (r["source"], r["target"]): r
        for r in store.query_rows(_EDGE_WORK.format(scope=scope), params)
    }
    handoffs = {
        (r["source"], r["target"]): r
        for r in store.query_rows(_EDGE_HANDOFFS.format(scope=scope), params)
    }
    edges = []
    for key in sorted(work.keys() | handoffs.keys()):
        w, h = work.get(key, {}), handoffs.get(key, {})
        count = int(h.get("handoffs") or 0)
        errors = int(h.get("errors") or 0)
        wait, duration = list(h.get("wait") or []), list(h.get("duration") or [])
        edges.append(
            {
                "source": key[0],
                "target": key[1],
                "handoffs": count,
                "errors": errors,
                "error_rate": round(errors / count, 4) if count else 0.0,
                "wait_ms_p50": _quantile(wait, 0),
                "wait_ms_p95": _quantile(wait, 1),
                "duration_ms_p50": _quantile(duration, 0),
                "duration_ms_p95": _quantile(duration, 1),
                "spans": int(w.get("spans") or 0),
                "input_tokens": int(w.get("input_tokens") or 0),
                "output_tokens": int(w.get("output_tokens") or 0),
                "cost_usd": round(float(w.get("cost_usd") or 0.0), 6),
            }
        )
    known = {n["agent"] for n in nodes}
    for source, _ in work.keys() | handoffs.keys():  # a sender whose own spans are out of range
        if source and source not in known:
            known.add(source)
            nodes.append(
                {
                    "agent": source,
                    "spans": 0,
                    "traces": 0,
                    "errors": 0,
                    "input_tokens": 0,
                    "output_tokens": 0,
                    "cost_usd": 0.0,
                }
            )
    return AgentGraph.model_validate(
        {
            "since": start.isoformat() if start else None,
            "until": end.isoformat() if end else None,
            "trace_id": trace_id,
            "nodes": sorted(nodes, key=lambda n: n["agent"]),
            "edges": edges,
        }
    )
