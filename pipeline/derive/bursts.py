"""Error bursts: more failed calls in a bucket than the baseline error rate makes plausible.

Errors are counted per group (agent, kind, provider, model, tool) and bucket,
in two phases (cheap counts, then exact distinct-span counts for candidates),
and tested against the Poisson tail under the group's smoothed baseline rate.
"""

from __future__ import annotations

import math
from datetime import timedelta

from agentledger.pipeline.derive.signals import (
    MODEL_SQL,
    Anomaly,
    Context,
    Found,
    poisson_sf,
    utc,
)
from agentledger.schemas.analytics import NOT_SPANS_LOST_SQL, USAGE_TABLE, AnomalyType

__all__ = ["error_bursts"]

_MODEL = MODEL_SQL

_GROUP = "agent_name, kind, provider, model, tool_name"
_BUCKET = "toUInt32(toStartOfInterval(start_time, INTERVAL {minutes:UInt32} MINUTE))"
_BURST_WHERE = f"""tenant = {{tenant:String}} AND start_time >= toDateTime64({{w0:Int64}}, 9, 'UTC')
  AND start_time < toDateTime64({{now:Int64}}, 9, 'UTC') AND {NOT_SPANS_LOST_SQL}"""
# phase 1: cheap counts per group and bucket (a redelivered span may count twice here)
_BURST_CANDIDATES = f"""
SELECT count() AS buckets,
       groupArrayIf(cityHash64(agent_name, kind, provider, model, tool_name, b), n_errors >= {{min_errors:UInt32}})
       AS candidates
FROM (
    SELECT agent_name, kind, provider, {_MODEL} AS model, tool_name, {_BUCKET} AS b, countIf(status_code = 'ERROR') AS n_errors
    FROM spans WHERE {_BURST_WHERE}
    GROUP BY {_GROUP}, b
)
"""
# phase 2: exact counts (distinct span ids) and examples, for the candidates only
_BURSTS = f"""
SELECT agent_name, kind, provider, {_MODEL} AS model, tool_name, {_BUCKET} AS b,
       uniqExact(span_id) AS calls, uniqExactIf(span_id, status_code = 'ERROR') AS errors,
       groupUniqArrayIf(3)(trace_id, status_code = 'ERROR') AS ex
FROM spans
WHERE {_BURST_WHERE}
  AND cityHash64(agent_name, kind, provider, model, tool_name, b) IN {{candidates:Array(UInt64)}}
GROUP BY {_GROUP}, b
"""
_BURST_BASE = f"""
SELECT {_GROUP}, sum(calls) AS n_calls, sum(errors) AS n_errors
FROM {USAGE_TABLE} FINAL
WHERE tenant = {{tenant:String}} AND hour >= toDateTime({{b0:UInt32}}, 'UTC') AND hour < toDateTime({{w0:UInt32}}, 'UTC')
GROUP BY {_GROUP}
"""


_KEY = ("agent_name", "kind", "provider", "model", "tool_name")


def error_bursts(ctx: Context) -> Found:
    """Errors per bucket (a few minutes, then a whole hour) against the Poisson tail of the baseline rate.

    The short buckets catch a sharp outage; the hourly ones catch a sustained
    failure of a share of calls (say 45% of one agent's calls for an hour)
    that never puts enough errors into any few minutes. An hourly burst is
    not reported again when a short burst of the same group already covers
    that hour.
    """
    s = ctx.settings
    found = Found()
    base = {
        tuple(r[c] for c in _KEY): (r["n_calls"], r["n_errors"])
        for r in ctx.store.query_rows(_BURST_BASE, ctx.params())
    }
    overall_calls = sum(c for c, _ in base.values())
    overall_rate = (sum(e for _, e in base.values()) + 0.5) / (overall_calls + 1)
    covered: set[tuple[tuple[str, ...], int]] = set()
    for minutes, min_errors, metric in (
        (s.burst_bucket_minutes, s.burst_min_errors, "errors"),
        (60, s.burst_hour_min_errors, "errors_1h"),
    ):
        for a in _bursts(ctx, base, overall_rate, minutes, min_errors, metric, found):
            key = tuple(a.dimensions.get(k, "") for k in _KEY)
            hour = int(a.window_start.timestamp()) // 3600
            if metric == "errors_1h" and (key, hour) in covered:
                continue
            covered.add((key, hour))
            found.anomalies.append(a)
    return found


def _bursts(
    ctx: Context,
    base: dict[tuple[str, ...], tuple[int, int]],
    overall_rate: float,
    minutes: int,
    min_errors: int,
    metric: str,
    found: Found,
) -> list[Anomaly]:
    s = ctx.settings
    out: list[Anomaly] = []
    phase1 = ctx.store.query_rows(
        _BURST_CANDIDATES, ctx.params(minutes=minutes, min_errors=min_errors)
    )
    found.tests += int(phase1[0]["buckets"]) if phase1 else 0
    candidates = list(phase1[0]["candidates"]) if phase1 else []
    if not candidates:
        return out
    for r in ctx.store.query_rows(_BURSTS, ctx.params(minutes=minutes, candidates=candidates)):
        if r["b"] + minutes * 60 > int(ctx.now.timestamp()):
            continue  # bucket not closed yet
        if r["errors"] < min_errors:
            continue
        key = tuple(r[c] for c in _KEY)
        calls_b, errors_b = base.get(key, (0, 0))
        # smoothed rate; a group with no baseline borrows the tenant's overall rate
        rate = (errors_b + 0.5) / (calls_b + 1) if calls_b >= 20 else overall_rate
        lam = r["calls"] * rate
        p = poisson_sf(r["errors"], lam)
        if p >= s.burst_p_value:
            continue
        start = utc(r["b"])
        dims = {k: v for k, v in zip(_KEY, key) if v}
        what = dims.get("tool_name") or dims.get("model") or dims.get("kind", "calls")
        out.append(
            Anomaly(
                ctx.tenant,
                AnomalyType.ERROR_BURST.value,
                metric,
                dims,
                start,
                start + timedelta(minutes=minutes),
                round(-math.log10(max(p, 1e-300)), 3),
                lam,
                float(r["errors"]),
                sorted(r["ex"]),
                f"{r['errors']} of {r['calls']} {what} calls of {dims.get('agent_name', 'an unnamed agent')} "
                f"failed within {minutes} minutes from {start:%Y-%m-%d %H:%M} UTC ({lam:.3g} expected at the "
                f"baseline rate {rate:.3%}): check the example traces' error messages and the upstream service.",
            )
        )
    return out
