"""Novelty: what the window has that the baseline never had.

* ``first_seen``: principals, agents, models, providers, tools whose first
  hour ever falls in the window (only once the tenant has a baseline); more
  than ``first_seen_max_principals`` new principals in one hour are one
  anomaly, not a page each.
* ``new_sequences``: tool sequences an agent ran in the window, never in the baseline.
* ``new_topics``: clusters of user inputs that fit no baseline topic (``topics.py``).
* ``model_changes``: calls that asked for a model the agent used before and
  were answered by a model never seen answering that request: a provider
  silently swapping the pinned model.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from agentledger.pipeline.derive.patterns import SEQUENCE_SEPARATOR, tool_sequences, user_inputs
from agentledger.pipeline.derive.signals import (
    MODEL_SQL,
    Anomaly,
    Context,
    Found,
    examples,
    tenant_has_baseline,
    utc,
)
from agentledger.pipeline.derive.topics import find_topics
from agentledger.pipeline.derive.usage import floor_hour
from agentledger.schemas.analytics import USAGE_TABLE, AnomalyType

__all__ = ["first_seen", "model_changes", "new_sequences", "new_topics"]

_MODEL = MODEL_SQL
_FIRST_SEEN = f"""
SELECT {{col:Identifier}} AS value, toUInt32(min(hour)) AS first, sum(calls) AS n_calls
FROM {USAGE_TABLE} FINAL
WHERE tenant = {{tenant:String}} AND value != '' AND calls > 0
GROUP BY value
HAVING first >= {{w0:UInt32}} AND first < {{w1:UInt32}}
"""
_ENTITIES = {
    "principal_id": "principal_id",
    "agent_name": "agent_name",
    "model": _MODEL,
    "provider": "provider",
    "tool_name": "tool_name",
}


def first_seen(ctx: Context) -> Found:
    """Entities whose first hour ever is in the window; many new principals become one anomaly."""
    found = Found()
    if not tenant_has_baseline(ctx):
        return found
    for col, span_col in _ENTITIES.items():
        rows = ctx.store.query_rows(_FIRST_SEEN, ctx.params(col=col))
        found.tests += 1
        if not rows:
            continue
        ex = examples(
            ctx.store,
            ctx,
            span_col,
            [r["value"] for r in rows],
            int(ctx.window_start.timestamp()),
            int(ctx.now.timestamp()),
        )
        if col == "principal_id" and len(rows) > ctx.settings.first_seen_max_principals:
            found.anomalies.append(_many_new_principals(ctx, rows, ex))
            continue
        for r in rows:
            start = utc(r["first"])
            found.anomalies.append(
                Anomaly(
                    ctx.tenant,
                    AnomalyType.FIRST_SEEN.value,
                    "calls",
                    {col: r["value"]},
                    start,
                    start + timedelta(hours=1),
                    float(r["n_calls"]),
                    0.0,
                    float(r["n_calls"]),
                    ex.get(r["value"], []),
                    f"{col}={r['value']} first seen in the hour from {start:%Y-%m-%d %H:%M} UTC ({r['n_calls']} spans since): "
                    "confirm it is expected (a new user, model or tool) or revoke its access.",
                )
            )
    return found


def new_sequences(ctx: Context) -> Found:
    """Tool sequences an agent ran in the window and never in the baseline, named in the anomaly."""
    found = Found()
    if not tenant_has_baseline(ctx):
        return found
    known = {
        (r["agent"], tuple(r["sequence"]))
        for r in tool_sequences(
            ctx.store, ctx.tenant, ctx.baseline_start, ctx.window_start, tools_only=True
        )
    }
    for r in tool_sequences(ctx.store, ctx.tenant, ctx.window_start, ctx.now, tools_only=True):
        found.tests += 1
        if (r["agent"], tuple(r["sequence"])) in known or r[
            "traces"
        ] < ctx.settings.sequence_min_traces:
            continue
        seq = SEQUENCE_SEPARATOR.join(r["sequence"]) or "(no tools)"
        start = floor_hour(datetime.fromisoformat(r["first_seen"]))
        found.anomalies.append(
            Anomaly(
                ctx.tenant,
                AnomalyType.NEW_SEQUENCE.value,
                "traces",
                {"agent_name": r["agent"], "sequence": seq},
                start,
                start + timedelta(hours=1),
                float(r["traces"]),
                0.0,
                float(r["traces"]),
                sorted(r["example_trace_ids"]),
                f"agent {r['agent'] or '(unnamed)'} ran the tool sequence {seq} in {r['traces']} traces; "
                f"never in the {ctx.settings.baseline_hours} hours before: check that the agent is allowed to chain these tools.",
            )
        )
    return found


def _many_new_principals(
    ctx: Context, rows: list[dict[str, Any]], ex: dict[str, list[str]]
) -> Anomaly:
    first = min(r["first"] for r in rows)
    start = utc(first)
    calls = sum(r["n_calls"] for r in rows)
    names = sorted(r["value"] for r in rows)
    traces = sorted({t for r in rows for t in ex.get(r["value"], [])[:1]})[:5]
    return Anomaly(
        ctx.tenant,
        AnomalyType.FIRST_SEEN.value,
        "principals",
        {"principal_id": f"{len(rows)} new principals"},
        start,
        start + timedelta(hours=1),
        float(len(rows)),
        0.0,
        float(len(rows)),
        traces,
        f"{len(rows)} principals never seen before appeared from {start:%Y-%m-%d %H:%M} UTC ({calls} spans; "
        f"e.g. {', '.join(names[:3])}): confirm an onboarding, else look for a campaign (type cohort).",
    )


def new_topics(ctx: Context) -> Found:
    """Groups of at least ``topic_min_size`` user inputs of the window that resemble no baseline topic."""
    s = ctx.settings
    found = Found()
    if not tenant_has_baseline(ctx):
        return found
    baseline = user_inputs(
        ctx.store, ctx.tenant, ctx.baseline_start, ctx.window_start, limit=s.topic_baseline_sample
    )
    current = user_inputs(ctx.store, ctx.tenant, ctx.window_start, ctx.window_end)
    found.tests = len(current)
    if len(current) < s.topic_min_size or not baseline:
        return found
    report = find_topics(baseline, current, min_size=s.topic_min_size)
    if not report.new_topics:
        return found
    firsts = {
        r["trace_id"]: r["first"]
        for r in ctx.store.query_rows(
            "SELECT trace_id, toUInt32(min(start_time)) AS first FROM spans "
            "WHERE tenant = {tenant:String} AND trace_id IN {ids:Array(String)} GROUP BY trace_id",
            ctx.params(ids=sorted({t for topic in report.new_topics for t in topic.examples})),
        )
    }
    for topic in report.new_topics:
        known = [firsts[t] for t in topic.examples if t in firsts]
        start = floor_hour(utc(min(known))) if known else ctx.window_start
        terms = ", ".join(topic.terms[:5])
        found.anomalies.append(
            Anomaly(
                ctx.tenant,
                AnomalyType.NEW_TOPIC.value,
                "inputs",
                {"topic": " ".join(topic.terms[:3])},
                start,
                start + timedelta(hours=1),
                float(topic.current),
                0.0,
                float(topic.current),
                sorted(topic.examples),
                f"{topic.current} user inputs about a new topic ({terms}) that matches nothing asked in the "
                f"{s.baseline_hours} hours before: read the example traces and decide whether the agents should "
                "serve it.",
            )
        )
    return found


_ANSWERED = """
SELECT agent_name AS agent, provider, request_model AS requested, response_model AS answered,
       uniqExact(span_id) AS calls, groupUniqArray(3)(trace_id) AS ex, toUInt32(min(start_time)) AS first
FROM spans
WHERE tenant = {tenant:String} AND kind = 'LLM' AND request_model != '' AND response_model != ''
  AND start_time >= toDateTime64({lo:Int64}, 9, 'UTC') AND start_time < toDateTime64({hi:Int64}, 9, 'UTC')
GROUP BY agent, provider, requested, answered
"""


def model_changes(ctx: Context) -> Found:
    """Requests for a known model answered by a model never seen answering it before."""
    s = ctx.settings
    found = Found()
    before: dict[tuple[str, str, str], set[str]] = {}
    for r in ctx.store.query_rows(
        _ANSWERED,
        ctx.params(lo=int(ctx.baseline_start.timestamp()), hi=int(ctx.window_start.timestamp())),
    ):
        before.setdefault((r["agent"], r["provider"], r["requested"]), set()).add(r["answered"])
    for r in ctx.store.query_rows(
        _ANSWERED, ctx.params(lo=int(ctx.window_start.timestamp()), hi=int(ctx.now.timestamp()))
    ):
        known = before.get((r["agent"], r["provider"], r["requested"]))
        if known is None:
            continue  # a request never made before: first_seen's business
        found.tests += 1
        if r["answered"] in known or r["calls"] < s.model_change_min_calls:
            continue
        start = floor_hour(utc(r["first"]))
        usual = ", ".join(sorted(known))
        found.anomalies.append(
            Anomaly(
                ctx.tenant,
                AnomalyType.MODEL_CHANGED.value,
                "calls",
                {
                    "agent_name": r["agent"],
                    "provider": r["provider"],
                    "requested": r["requested"],
                    "answered": r["answered"],
                },
                start,
                start + timedelta(hours=1),
                float(r["calls"]),
                0.0,
                float(r["calls"]),
                sorted(r["ex"]),
                f"{r['provider']} answered {r['calls']} {r['requested']} requests of {r['agent'] or 'an unnamed agent'} "
                f"with {r['answered']} (before: {usual}): the provider changed the model; re-run your evaluations "
                "or pin a dated model version.",
            )
        )
    return found
