"""Hourly spikes of cost, tokens, volume, latency and error rate, and single slow spans.

* ``hourly_spikes``: robust z-score, ``0.6745 (x - median) / MAD``, of hourly
  cost, tokens, volume (square-root scale), median latency (log scale) and
  error rate per dimension value, from the exact rollup, against a
  seasonality-aware baseline (``seasonal_baseline``: same hours of day, same
  day type). The MAD is floored so that a flat baseline does not turn noise
  into infinite scores, and the raw value must also exceed the baseline
  median by a ratio.
* ``span_outliers``: single LLM spans whose log latency lies ``outlier_z``
  robust deviations (IQR / 1.349, from the rollup's histogram) above their
  model's baseline.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from agentledger.pipeline.derive.signals import (
    MODEL_SQL,
    Anomaly,
    Context,
    Found,
    median,
    robust_z,
    utc,
)
from agentledger.schemas.analytics import (
    NOT_SPANS_LOST_SQL,
    USAGE_TABLE,
    AnomalyType,
    latency_quantile_sql,
)

__all__ = ["hourly_spikes", "seasonal_baseline", "span_outliers"]


_SERIES = (
    # (dimension column, rollup filter, metrics)
    ("principal_id", "", ("cost_usd", "tokens", "calls")),
    ("agent_name", "", ("cost_usd", "calls", "error_rate")),
    ("agent_name", "AND kind = 'LLM'", ("tokens", "latency_p50_ms")),
    ("model", "AND kind = 'LLM'", ("cost_usd", "tokens", "latency_p50_ms", "error_rate")),
    ("tool_name", "AND kind = 'TOOL'", ("latency_p50_ms", "error_rate", "calls")),
    ("provider", "AND kind = 'LLM'", ("error_rate",)),
)
_METRIC_TYPE = {
    "cost_usd": AnomalyType.COST_SPIKE,
    "tokens": AnomalyType.TOKENS_SPIKE,
    "calls": AnomalyType.VOLUME_SPIKE,
    "latency_p50_ms": AnomalyType.LATENCY_SPIKE,
    "error_rate": AnomalyType.ERROR_RATE_SPIKE,
}
_TRANSFORM: dict[str, tuple[Callable[[float], float], float, float]] = {
    # metric -> (variance-stabilising transform, relative and absolute floor of the MAD on that scale)
    "cost_usd": (math.sqrt, 0.05, 1e-9),
    "tokens": (math.sqrt, 0.05, 1e-9),
    "calls": (math.sqrt, 0.05, 1e-9),
    "latency_p50_ms": (lambda v: math.log(max(v, 1e-3)), 0.0, 0.05),
    "error_rate": (lambda v: v, 0.0, 0.05),
}
"""Sums of counts are right-skewed and their spread grows with their level: on the square-root
scale (Anscombe) and, for latency, the log scale, a robust z-score means the same at any volume."""
_SERIES_SQL = f"""
SELECT {{col:Identifier}} AS value, toUInt32(hour) AS h, sum(calls) AS n_calls, sum(errors) AS n_errors,
       sum(cost_usd) AS n_cost, sum(input_tokens) + sum(output_tokens) AS n_tokens,
       {latency_quantile_sql("sumMap(latency_ms_hist)", 0.5)} AS p50
FROM {USAGE_TABLE} FINAL
WHERE tenant = {{tenant:String}} AND hour >= toDateTime({{b0:UInt32}}, 'UTC') AND hour < toDateTime({{w1:UInt32}}, 'UTC')
  AND value != '' {{filter}}
GROUP BY value, h
HAVING n_calls > 0
"""


def _scale_floor(metric: str, base: list[float]) -> float:
    """Smallest MAD (on the transformed scale) a series may claim.

    Counts and sums of costs arrive in units (one run's spans, one run's cost);
    for a compound-Poisson count of units of size u the standard deviation of
    ``sqrt(x)`` is about ``sqrt(u) / 2`` at any level, i.e. a MAD of
    ``0.6745 sqrt(u) / 2``. ``u`` is estimated as the smallest active-hour value
    of the baseline. Without this floor a sparse series (one run in most active
    hours) has a MAD near zero and calls every hour with two runs a spike.
    """
    fn, rel_floor, abs_floor = _TRANSFORM[metric]
    if fn is math.sqrt:
        unit = min(v for v in base if v > 0) if any(v > 0 for v in base) else 0.0
        return max(abs_floor, 0.6745 * 0.5 * math.sqrt(unit))
    return abs_floor


def _day_type(epoch: int) -> bool:
    """True on Saturday and Sunday (UTC): weekends are their own season."""
    return bool(utc(epoch).weekday() >= 5)


def seasonal_baseline(
    hour: int, history: list[tuple[int, float]], min_points: int
) -> tuple[list[float], str]:
    """The baseline values an hour is compared with, and which season they are.

    Agent traffic follows the working day and week: comparing 10:00 on a
    Tuesday with the median of a whole week (nights and weekends included)
    calls every busy hour a spike, and hides a night-time surge. So an hour is
    compared with the same hours of day (+-1) of the same day type (weekday or
    weekend) when the baseline has ``min_points`` of them, else with the same
    hours of day of any day, else with every baseline hour (a young series).
    """
    hod = (hour // 3600) % 24
    weekend = _day_type(hour)

    def near(h: int) -> bool:
        d = abs((h // 3600) % 24 - hod)
        return min(d, 24 - d) <= 1

    same_type = [v for h, v in history if near(h) and _day_type(h) == weekend]
    if len(same_type) >= min_points:
        return same_type, "same-hour " + ("weekend" if weekend else "weekday")
    same_hour = [v for h, v in history if near(h)]
    if len(same_hour) >= min_points:
        return same_hour, "same-hour"
    return [v for _, v in history], "baseline"


def hourly_spikes(ctx: Context) -> Found:
    """Hourly cost, tokens, volume, latency and error rate per dimension value against its season."""
    s = ctx.settings
    found = Found()
    w0, w1 = int(ctx.window_start.timestamp()), int(ctx.window_end.timestamp())
    for col, filt, metrics in _SERIES:
        rows = ctx.store.query_rows(_SERIES_SQL.replace("{filter}", filt), ctx.params(col=col))
        series: dict[str, list[dict[str, Any]]] = {}
        for r in rows:
            r = {
                "value": r["value"],
                "h": r["h"],
                "calls": r["n_calls"],
                "errors": r["n_errors"],
                "cost_usd": r["n_cost"],
                "tokens": r["n_tokens"],
                "latency_p50_ms": r["p50"],
                "error_rate": r["n_errors"] / r["n_calls"],
            }
            series.setdefault(r["value"], []).append(r)
        flagged: list[Anomaly] = []
        for value, points in series.items():
            for metric in metrics:
                rate_like = metric in ("latency_p50_ms", "error_rate")
                usable = [p for p in points if not rate_like or p["calls"] >= s.min_hour_calls]
                history = [
                    (p["h"], float(p[metric]))
                    for p in usable
                    if p["h"] < w0 and not math.isnan(p[metric])
                ]
                if len(history) < s.min_baseline_hours:
                    continue
                fn, rel_floor, _ = _TRANSFORM[metric]
                floor = _scale_floor(metric, [v for _, v in history])
                ratio = s.latency_min_ratio if metric == "latency_p50_ms" else s.min_ratio
                for p in usable:
                    if not w0 <= p["h"] < w1:
                        continue
                    x = float(p[metric])
                    found.tests += 1
                    base, season = seasonal_baseline(p["h"], history, s.min_baseline_hours)
                    transformed = [fn(v) for v in base]
                    med = median(base)
                    if math.isnan(x) or x < ratio * med:
                        continue
                    if metric == "cost_usd" and x - med < s.cost_min_excess_usd:
                        continue  # a tenfold rise from a cent is not worth a page
                    z, _ = robust_z(fn(x), transformed, rel_floor=rel_floor, abs_floor=floor)
                    if z < s.z_threshold or (
                        metric == "error_rate" and p["errors"] < s.burst_min_errors
                    ):
                        continue
                    start = utc(p["h"])
                    flagged.append(
                        Anomaly(
                            ctx.tenant,
                            _METRIC_TYPE[metric].value,
                            metric,
                            {col: value},
                            start,
                            start + timedelta(hours=1),
                            round(z, 3),
                            med,
                            x,
                            detail=f"{col}={value}: {metric} {x:.6g} in the hour from {start:%Y-%m-%d %H:%M} UTC, "
                            f"baseline median {med:.6g} over {len(base)} {season} hours (robust z {z:.1f})",
                        )
                    )
        if flagged:
            examples = _hour_examples(
                ctx, col, [(a.dimensions[col], int(a.window_start.timestamp())) for a in flagged]
            )
            for a in flagged:
                ex, errors = examples.get(
                    (a.dimensions[col], int(a.window_start.timestamp())), ([], [])
                )
                a.example_trace_ids = errors if a.metric == "error_rate" else ex
            found.anomalies.extend(flagged)
    found.anomalies = _fold_principals(found.anomalies, ctx.settings.first_seen_max_principals // 3)
    return found


def _fold_principals(anomalies: list[Anomaly], most: int) -> list[Anomaly]:
    """Principal spikes that an agent spike of the same type and hour already explains, folded into it.

    A token spike of one agent makes each of its active principals spike too:
    one page per principal says nothing more than the agent's own. When more
    than ``most`` principals spike with an agent in the same hour, the agent's
    anomaly names how many and the principals' are dropped; a lone
    principal's spike (one account running up the bill) is kept.
    """
    by_key: dict[tuple[str, datetime], list[Anomaly]] = {}
    for a in anomalies:
        if "principal_id" in a.dimensions:
            by_key.setdefault((a.type, a.window_start), []).append(a)
    drop: set[int] = set()
    for a in anomalies:
        principals = by_key.get((a.type, a.window_start), [])
        if "agent_name" in a.dimensions and len(principals) > most:
            a.detail += f"; {len(principals)} principals spiked with it"
            drop.update(id(p) for p in principals)
    return [a for a in anomalies if id(a) not in drop]


def _hour_examples(
    ctx: Context, col: str, pairs: list[tuple[str, int]]
) -> dict[tuple[str, int], tuple[list[str], list[str]]]:
    """For each (value of ``col``, hour): up to three traces, and up to three with an error, in one query."""
    span_col = _MODEL if col == "model" else col
    kind = {
        "model": "AND kind = 'LLM'",
        "provider": "AND kind = 'LLM'",
        "tool_name": "AND kind = 'TOOL'",
    }.get(col, "")
    hours = sorted({h for _, h in pairs})
    rows = ctx.store.query_rows(
        f"""
        SELECT {span_col} AS v, toUInt32(toStartOfHour(start_time)) AS h,
               groupUniqArray(3)(trace_id) AS ex, groupUniqArrayIf(3)(trace_id, status_code = 'ERROR') AS err
        FROM spans
        WHERE tenant = {{tenant:String}} AND start_time >= toDateTime64({{s:Int64}}, 9, 'UTC')
          AND start_time < toDateTime64({{e:Int64}}, 9, 'UTC') {kind} AND {NOT_SPANS_LOST_SQL}
          AND v IN {{values:Array(String)}} AND h IN {{hours:Array(UInt32)}}
        GROUP BY v, h
        """,
        ctx.params(
            s=hours[0], e=hours[-1] + 3600, values=sorted({v for v, _ in pairs}), hours=hours
        ),
    )
    return {(r["v"], r["h"]): (sorted(r["ex"]), sorted(r["err"])) for r in rows}


# --- per-span outliers -----------------------------------------------------------------------

_MODEL = MODEL_SQL
_OUTLIER_BASE = f"""
SELECT model, sum(calls) AS n,
       {latency_quantile_sql("sumMap(latency_ms_hist)", 0.25)} AS q1,
       {latency_quantile_sql("sumMap(latency_ms_hist)", 0.5)} AS q2,
       {latency_quantile_sql("sumMap(latency_ms_hist)", 0.75)} AS q3
FROM {USAGE_TABLE} FINAL
WHERE tenant = {{tenant:String}} AND kind = 'LLM' AND model != ''
  AND hour >= toDateTime({{b0:UInt32}}, 'UTC') AND hour < toDateTime({{w0:UInt32}}, 'UTC')
GROUP BY model
HAVING n >= 20
"""
_OUTLIER_TESTS = f"""
SELECT sum(calls) FROM {USAGE_TABLE} FINAL
WHERE tenant = {{tenant:String}} AND kind = 'LLM' AND model IN {{models:Array(String)}}
  AND hour >= toDateTime({{w0:UInt32}}, 'UTC') AND hour <= toDateTime({{now:UInt32}}, 'UTC')
"""
_OUTLIER_FIND = f"""
SELECT {_MODEL} AS model, toUInt32(toStartOfHour(start_time)) AS h,
       uniqExact(span_id) AS n, max(duration_ms) AS worst, groupUniqArray(3)(trace_id) AS ex
FROM spans
WHERE tenant = {{tenant:String}} AND kind = 'LLM' AND model IN {{models:Array(String)}}
  AND start_time >= toDateTime64({{w0:Int64}}, 9, 'UTC') AND start_time < toDateTime64({{now:Int64}}, 9, 'UTC')
  AND duration_ms > arrayElement({{limits:Array(Float64)}}, indexOf({{models:Array(String)}}, model))
GROUP BY model, h
"""


def span_outliers(ctx: Context) -> Found:
    """LLM spans far slower than their model's baseline (log scale, robust sigma from the IQR)."""
    s = ctx.settings
    found = Found()
    models, limits, medians = [], [], {}
    for r in ctx.store.query_rows(_OUTLIER_BASE, ctx.params()):
        q1, q2, q3 = (math.log(r[k]) for k in ("q1", "q2", "q3"))
        sigma = max((q3 - q1) / 1.349, 0.05)
        models.append(r["model"])
        limits.append(math.exp(q2 + s.outlier_z * sigma))
        medians[r["model"]] = r["q2"]
    if not models:
        return found
    found.tests = int(ctx.store.query_scalar(_OUTLIER_TESTS, ctx.params(models=models)) or 0)
    for r in ctx.store.query_rows(_OUTLIER_FIND, ctx.params(models=models, limits=limits)):
        if r["n"] < s.outlier_min_spans:
            continue
        start = utc(r["h"])
        med, limit = medians[r["model"]], limits[models.index(r["model"])]
        found.anomalies.append(
            Anomaly(
                ctx.tenant,
                AnomalyType.SPAN_OUTLIER.value,
                "duration_ms",
                {"model": r["model"]},
                start,
                start + timedelta(hours=1),
                float(r["n"]),
                med,
                float(r["worst"]),
                sorted(r["ex"]),
                f"{r['n']} {r['model']} spans slower than {limit:.6g} ms (baseline median {med:.6g} ms); "
                f"slowest {r['worst']:.6g} ms",
            )
        )
    return found
