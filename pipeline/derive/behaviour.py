"""Per-principal behaviour baselines: a known principal acting outside their usual hours or agents.

A stolen credential, or a person doing something they do not usually do,
looks normal in every aggregate: the volume is small and the agent is busy
anyway. Against the principal's own history it stands out:

* ``off_hours``: runs in an hour of day (+-1 h) in which the principal's
  baseline has (almost) none. Expected runs in that hour are the baseline's
  runs in those three hours of day, smoothed by half a run, per day and per
  hour; the hour is reported when the Poisson tail of the observed count is
  below ``behaviour_p_value``.
* ``unusual_agent``: a principal with a history runs an agent they never ran
  in the baseline, ``behaviour_min_runs`` times or more.

Both need ``behaviour_min_baseline_runs`` baseline runs: a principal without a
history has no usual hours (new principals are ``first_seen`` and ``cohort``).
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

from agentledger.pipeline.derive.signals import Anomaly, Context, Found, poisson_sf, utc
from agentledger.schemas.analytics import NOT_SPANS_LOST_SQL, AnomalyType

__all__ = ["principal_behaviour"]

_RUNS = f"""
SELECT principal_id AS principal, agent_name AS agent, toUInt32(toStartOfHour(start_time)) AS h,
       uniqExact(trace_id) AS runs, groupUniqArray(3)(trace_id) AS ex
FROM spans
WHERE tenant = {{tenant:String}} AND parent_span_id = '' AND principal_id != '' AND {NOT_SPANS_LOST_SQL}
  AND start_time >= toDateTime64({{lo:Int64}}, 9, 'UTC') AND start_time < toDateTime64({{hi:Int64}}, 9, 'UTC')
GROUP BY principal, agent, h
"""


def _near(a: int, b: int) -> bool:
    d = abs(a - b)
    return min(d, 24 - d) <= 1


def principal_behaviour(ctx: Context) -> Found:
    """Off-hours activity and first use of an agent, each against the principal's own baseline."""
    s = ctx.settings
    found = Found()
    w0, w1 = int(ctx.window_start.timestamp()), int(ctx.window_end.timestamp())
    base_rows = ctx.store.query_rows(
        _RUNS, ctx.params(lo=int(ctx.baseline_start.timestamp()), hi=w0)
    )
    if not base_rows:
        return found
    days = max(1.0, (w0 - min(r["h"] for r in base_rows)) / 86400)
    by_hod: dict[str, list[int]] = {}
    agents: dict[str, set[str]] = {}
    total: dict[str, int] = {}
    for r in base_rows:
        p = r["principal"]
        by_hod.setdefault(p, [0] * 24)[(r["h"] // 3600) % 24] += r["runs"]
        agents.setdefault(p, set()).add(r["agent"])
        total[p] = total.get(p, 0) + r["runs"]
    window: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for r in ctx.store.query_rows(_RUNS, ctx.params(lo=w0, hi=w1)):
        if total.get(r["principal"], 0) >= s.behaviour_min_baseline_runs:
            window.setdefault((r["principal"], r["h"]), []).append(r)
    for (principal, h), rows in sorted(window.items()):
        runs = sum(r["runs"] for r in rows)
        hod = (h // 3600) % 24
        usual = sum(n for i, n in enumerate(by_hod[principal]) if _near(i, hod))
        lam = (usual + 0.5) / days / 3
        found.tests += 1
        start = utc(h)
        ex = sorted({t for r in rows for t in r["ex"]})[:5]
        p = poisson_sf(runs, lam)
        if runs >= s.behaviour_min_runs and p < s.behaviour_p_value:
            peak = max(range(24), key=lambda i: by_hod[principal][i])
            found.anomalies.append(
                Anomaly(
                    ctx.tenant,
                    AnomalyType.OFF_HOURS.value,
                    "runs",
                    {"principal_id": principal},
                    start,
                    start + timedelta(hours=1),
                    round(-math.log10(max(p, 1e-300)), 3),
                    lam,
                    float(runs),
                    ex,
                    f"{principal} made {runs} runs at {start:%H}:00 UTC on {start:%Y-%m-%d}, an hour in which "
                    f"they made {usual} runs in {days:.0f} days (busiest hour {peak:02d}:00): confirm with them "
                    "that it was them, else revoke their sessions.",
                )
            )
        for r in rows:
            found.tests += 1
            if r["agent"] in agents[principal] or r["runs"] < s.behaviour_min_runs:
                continue
            usual_agents = ", ".join(sorted(a or "(unnamed)" for a in agents[principal]))
            found.anomalies.append(
                Anomaly(
                    ctx.tenant,
                    AnomalyType.UNUSUAL_AGENT.value,
                    "runs",
                    {"principal_id": principal, "agent_name": r["agent"]},
                    start,
                    start + timedelta(hours=1),
                    float(r["runs"]),
                    0.0,
                    float(r["runs"]),
                    sorted(r["ex"]),
                    f"{principal} ran {r['agent'] or 'an unnamed agent'} {r['runs']} times in the hour from "
                    f"{start:%Y-%m-%d %H:%M} UTC, an agent they never used before (usual: {usual_agents}): "
                    "check that their role allows it.",
                )
            )
    return found
