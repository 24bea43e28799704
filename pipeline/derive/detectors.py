"""The anomaly detectors: each reads the store for one tenant and returns candidate anomalies.

Every detector compares the detection window with the baseline before it
and counts the tests it made (series-hours, span groups, buckets...), so the
false-positive rate on clean traffic can be measured as anomalies / tests.

* ``hourly_spikes``: robust z-score, ``0.6745 (x - median) / MAD``, of hourly
  cost, tokens, volume (square-root scale), median latency (log scale) and
  error rate per dimension value, from the exact rollup; the MAD is floored
  so that a flat baseline does not turn noise into infinite scores, and the
  raw value must also exceed the baseline median by a ratio.
* ``span_outliers``: single LLM spans whose log latency lies ``outlier_z``
  robust deviations (IQR / 1.349, from the rollup's histogram) above their
  model's baseline.
* ``error_bursts``: errors per few-minute bucket against the Poisson tail
  under the group's smoothed baseline error rate.
* ``first_seen``: principals, agents, models, providers, tools whose first
  hour ever falls in the window (only once the tenant has a baseline).
* ``new_sequences``: tool sequences an agent ran in the window, never in the baseline.
* ``sensitive_egress``: LLM/embedding inputs sent to an external provider that
  hold PII or secrets (``sensitive.py``), per provider, detector and hour.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from agentledger.pipeline.derive.patterns import SEQUENCE_SEPARATOR, tool_sequences
from agentledger.pipeline.derive.sensitive import SQL_PREFILTER, detect_content
from agentledger.pipeline.derive.settings import JobSettings
from agentledger.pipeline.derive.usage import floor_hour
from agentledger.pipeline.store import Store
from agentledger.schemas.analytics import USAGE_TABLE, AnomalyType, latency_quantile_sql

__all__ = ["Anomaly", "Context", "Found", "DETECTORS", "robust_z", "poisson_sf", "median"]


@dataclass
class Anomaly:
    """One anomaly; its id is a hash of what identifies it, so detection is idempotent."""

    tenant: str
    type: str
    metric: str
    dimensions: dict[str, str]
    window_start: datetime
    window_end: datetime
    score: float
    expected: float
    observed: float
    example_trace_ids: list[str] = field(default_factory=list)
    detail: str = ""

    @property
    def anomaly_id(self) -> str:
        key = "\x1f".join(
            [
                self.tenant,
                self.type,
                self.metric,
                *(f"{k}={v}" for k, v in sorted(self.dimensions.items())),
                self.window_start.isoformat(),
            ]
        )
        return hashlib.sha256(key.encode()).hexdigest()[:32]


@dataclass
class Context:
    """What a detector needs: the store, one tenant, the clock and the thresholds."""

    store: Store
    tenant: str
    now: datetime
    settings: JobSettings

    @property
    def window_end(self) -> datetime:
        """End of the last closed hour."""
        return floor_hour(self.now)

    @property
    def window_start(self) -> datetime:
        return self.window_end - timedelta(hours=self.settings.window_hours)

    @property
    def baseline_start(self) -> datetime:
        return self.window_start - timedelta(hours=self.settings.baseline_hours)

    def params(self, **extra: Any) -> dict[str, Any]:
        return {
            "tenant": self.tenant,
            "b0": int(self.baseline_start.timestamp()),
            "w0": int(self.window_start.timestamp()),
            "w1": int(self.window_end.timestamp()),
            "now": int(self.now.timestamp()),
            **extra,
        }


@dataclass
class Found:
    """A detector's output: candidate anomalies and how many tests it made."""

    anomalies: list[Anomaly] = field(default_factory=list)
    tests: int = 0


# --- statistics ----------------------------------------------------------------------------


def median(values: list[float]) -> float:
    s = sorted(values)
    n = len(s)
    if not n:
        return math.nan
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


def robust_z(
    x: float, baseline: list[float], rel_floor: float = 0.05, abs_floor: float = 1e-9
) -> tuple[float, float]:
    """(z, median): 0.6745 (x - median) / max(MAD, rel_floor * |median|, abs_floor)."""
    med = median(baseline)
    mad = median([abs(v - med) for v in baseline])
    scale = max(mad, rel_floor * abs(med), abs_floor)
    return 0.6745 * (x - med) / scale, med


def poisson_sf(k: int, lam: float) -> float:
    """P(X >= k) for X ~ Poisson(lam), summed in log space (no SciPy needed)."""
    if k <= 0:
        return 1.0
    if lam <= 0:
        return 0.0
    # P(X >= k) = 1 - sum_{i<k} pmf(i); for small tails sum the upper terms instead
    if k > lam:
        log_pmf = -lam + k * math.log(lam) - math.lgamma(k + 1)
        total, term, i = 0.0, math.exp(log_pmf), k
        while term > total * 1e-12 and i < k + 10_000:
            total += term
            i += 1
            term *= lam / i
        return min(1.0, total)
    cdf = sum(math.exp(-lam + i * math.log(lam) - math.lgamma(i + 1)) for i in range(k))
    return max(0.0, 1.0 - cdf)


def _utc(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, tz=timezone.utc)


def _examples(
    store: Store, ctx: Context, col: str, values: list[str], start: int, end: int, extra: str = ""
) -> dict[str, list[str]]:
    """Up to three trace ids per value of ``col`` among spans in [start, end)."""
    if not values:
        return {}
    rows = ctx.store.query_rows(
        f"""
        SELECT {col} AS v, groupUniqArray(3)(trace_id) AS ex FROM spans
        WHERE tenant = {{tenant:String}} AND start_time >= toDateTime64({{s:Int64}}, 9, 'UTC')
          AND start_time < toDateTime64({{e:Int64}}, 9, 'UTC') AND v IN {{values:Array(String)}} {extra}
        GROUP BY v
        """,
        ctx.params(s=start, e=end, values=values),
    )
    return {r["v"]: sorted(r["ex"]) for r in rows}


# --- hourly robust z-scores ------------------------------------------------------------------

_SERIES = (
    # (dimension column, rollup filter, metrics)
    ("principal_id", "", ("cost_usd", "tokens", "calls")),
    ("agent_name", "", ("cost_usd", "calls", "error_rate")),
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


def hourly_spikes(ctx: Context) -> Found:
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
                base = [
                    float(p[metric]) for p in usable if p["h"] < w0 and not math.isnan(p[metric])
                ]
                if len(base) < s.min_baseline_hours:
                    continue
                fn, rel_floor, _ = _TRANSFORM[metric]
                transformed = [fn(v) for v in base]
                floor = _scale_floor(metric, base)
                med = median(base)
                ratio = s.latency_min_ratio if metric == "latency_p50_ms" else s.min_ratio
                for p in usable:
                    if not w0 <= p["h"] < w1:
                        continue
                    x = float(p[metric])
                    found.tests += 1
                    if math.isnan(x) or x < ratio * med:
                        continue
                    z, _ = robust_z(fn(x), transformed, rel_floor=rel_floor, abs_floor=floor)
                    if z < s.z_threshold or (
                        metric == "error_rate" and p["errors"] < s.burst_min_errors
                    ):
                        continue
                    start = _utc(p["h"])
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
                            f"baseline median {med:.6g} over {len(base)} hours (robust z {z:.1f})",
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
    return found


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
          AND start_time < toDateTime64({{e:Int64}}, 9, 'UTC') {kind}
          AND v IN {{values:Array(String)}} AND h IN {{hours:Array(UInt32)}}
        GROUP BY v, h
        """,
        ctx.params(
            s=hours[0], e=hours[-1] + 3600, values=sorted({v for v, _ in pairs}), hours=hours
        ),
    )
    return {(r["v"], r["h"]): (sorted(r["ex"]), sorted(r["err"])) for r in rows}


# --- per-span outliers -----------------------------------------------------------------------

_MODEL = "if(response_model != '', response_model, request_model)"
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
        start = _utc(r["h"])
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


# --- error bursts ----------------------------------------------------------------------------

_GROUP = "agent_name, kind, provider, model, tool_name"
_BUCKET = "toUInt32(toStartOfInterval(start_time, INTERVAL {minutes:UInt32} MINUTE))"
_BURST_WHERE = """tenant = {tenant:String} AND start_time >= toDateTime64({w0:Int64}, 9, 'UTC')
  AND start_time < toDateTime64({now:Int64}, 9, 'UTC')"""
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


def error_bursts(ctx: Context) -> Found:
    s = ctx.settings
    found = Found()
    minutes = s.burst_bucket_minutes
    base = {
        tuple(r[c] for c in ("agent_name", "kind", "provider", "model", "tool_name")): (
            r["n_calls"],
            r["n_errors"],
        )
        for r in ctx.store.query_rows(_BURST_BASE, ctx.params())
    }
    overall_calls = sum(c for c, _ in base.values())
    overall_rate = (sum(e for _, e in base.values()) + 0.5) / (overall_calls + 1)
    phase1 = ctx.store.query_rows(
        _BURST_CANDIDATES, ctx.params(minutes=minutes, min_errors=s.burst_min_errors)
    )
    found.tests = int(phase1[0]["buckets"]) if phase1 else 0
    candidates = list(phase1[0]["candidates"]) if phase1 else []
    if not candidates:
        return found
    for r in ctx.store.query_rows(_BURSTS, ctx.params(minutes=minutes, candidates=candidates)):
        if r["b"] + minutes * 60 > int(ctx.now.timestamp()):
            continue  # bucket not closed yet
        if r["errors"] < s.burst_min_errors:
            continue
        key = tuple(r[c] for c in ("agent_name", "kind", "provider", "model", "tool_name"))
        calls_b, errors_b = base.get(key, (0, 0))
        # smoothed rate; a group with no baseline borrows the tenant's overall rate
        rate = (errors_b + 0.5) / (calls_b + 1) if calls_b >= 20 else overall_rate
        lam = r["calls"] * rate
        p = poisson_sf(r["errors"], lam)
        if p >= s.burst_p_value:
            continue
        start = _utc(r["b"])
        dims = {
            k: v for k, v in zip(("agent_name", "kind", "provider", "model", "tool_name"), key) if v
        }
        found.anomalies.append(
            Anomaly(
                ctx.tenant,
                AnomalyType.ERROR_BURST.value,
                "errors",
                dims,
                start,
                start + timedelta(minutes=minutes),
                round(-math.log10(max(p, 1e-300)), 3),
                lam,
                float(r["errors"]),
                sorted(r["ex"]),
                f"{r['errors']} errors in {r['calls']} calls within {minutes} minutes from {start:%Y-%m-%d %H:%M} UTC; "
                f"{lam:.3g} expected at the baseline rate {rate:.3%}",
            )
        )
    return found


# --- first-seen entities ---------------------------------------------------------------------

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


def _tenant_has_baseline(ctx: Context) -> bool:
    first = ctx.store.query_scalar(
        f"SELECT toUInt32(min(hour)) FROM {USAGE_TABLE} WHERE tenant = {{tenant:String}} AND calls > 0",
        ctx.params(),
    )
    return (
        bool(first)
        and first <= int(ctx.window_start.timestamp()) - ctx.settings.min_baseline_hours * 3600
    )


def first_seen(ctx: Context) -> Found:
    found = Found()
    if not _tenant_has_baseline(ctx):
        return found
    for col, span_col in _ENTITIES.items():
        rows = ctx.store.query_rows(_FIRST_SEEN, ctx.params(col=col))
        found.tests += 1
        if not rows:
            continue
        ex = _examples(
            ctx.store,
            ctx,
            span_col,
            [r["value"] for r in rows],
            int(ctx.window_start.timestamp()),
            int(ctx.now.timestamp()),
        )
        for r in rows:
            start = _utc(r["first"])
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
                    f"{col}={r['value']} first seen in the hour from {start:%Y-%m-%d %H:%M} UTC ({r['n_calls']} spans since)",
                )
            )
    return found


# --- new tool sequences ----------------------------------------------------------------------


def new_sequences(ctx: Context) -> Found:
    found = Found()
    if not _tenant_has_baseline(ctx):
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
                f"never in the {ctx.settings.baseline_hours} hours before",
            )
        )
    return found


# --- sensitive-data egress -------------------------------------------------------------------

_EGRESS_SPANS = """
    tenant = {tenant:String} AND kind IN ('LLM', 'EMBEDDING') AND provider != ''
    AND lower(provider) NOT IN {internal:Array(String)}
    AND start_time >= toDateTime64({w0:Int64}, 9, 'UTC') AND start_time < toDateTime64({now:Int64}, 9, 'UTC')
"""
_EGRESS_CANDIDATES = f"""
SELECT hash, any(content) AS body FROM contents
WHERE tenant = {{tenant:String}} AND hash IN (SELECT input_hash FROM spans WHERE {_EGRESS_SPANS} AND input_hash != '')
  AND match(content, {{prefilter:String}})
GROUP BY hash
"""
_EGRESS_PREVIEWS = f"""
SELECT DISTINCT input_preview AS content FROM spans
WHERE {_EGRESS_SPANS} AND input_hash = '' AND match(input_preview, {{prefilter:String}})
"""
_EGRESS_HITS = f"""
SELECT provider, toUInt32(toStartOfHour(start_time)) AS h, if(input_hash != '', input_hash, input_preview) AS ref,
       uniqExact(span_id) AS spans, groupUniqArray(3)(trace_id) AS ex
FROM spans
WHERE {_EGRESS_SPANS} AND ref IN {{refs:Array(String)}}
GROUP BY provider, h, ref
"""


def sensitive_egress(ctx: Context) -> Found:
    found = Found()
    params = ctx.params(
        internal=sorted(ctx.settings.internal_provider_set), prefilter=SQL_PREFILTER
    )
    findings: dict[str, list[Any]] = {}
    for r in ctx.store.query_rows(_EGRESS_CANDIDATES, params):
        hits = detect_content(r["body"])
        if hits:
            findings[r["hash"]] = hits
    for r in ctx.store.query_rows(_EGRESS_PREVIEWS, params):
        hits = detect_content(r["content"])
        if hits:
            findings[r["content"]] = hits
    found.tests = int(
        ctx.store.query_scalar(f"SELECT count() FROM spans WHERE {_EGRESS_SPANS}", params) or 0
    )
    if not findings:
        return found
    groups: dict[tuple[str, int, str], dict[str, Any]] = {}
    for r in ctx.store.query_rows(_EGRESS_HITS, {**params, "refs": sorted(findings)}):
        for kind in sorted({f.kind for f in findings[r["ref"]]}):
            g = groups.setdefault(
                (r["provider"], r["h"], kind), {"spans": 0, "ex": set(), "masked": set()}
            )
            g["spans"] += r["spans"]
            g["ex"].update(r["ex"])
            g["masked"].update(f.masked for f in findings[r["ref"]] if f.kind == kind)
    for (provider, h, kind), g in sorted(groups.items()):
        start = _utc(h)
        masked = sorted(g["masked"])
        found.anomalies.append(
            Anomaly(
                ctx.tenant,
                AnomalyType.SENSITIVE_EGRESS.value,
                "spans",
                {"provider": provider, "detector": kind},
                start,
                start + timedelta(hours=1),
                float(g["spans"]),
                0.0,
                float(g["spans"]),
                sorted(g["ex"])[:5],
                f"{g['spans']} spans sent {kind} data to {provider} ({len(masked)} distinct values, e.g. "
                f"{', '.join(masked[:3])})",
            )
        )
    return found


DETECTORS: dict[str, Callable[[Context], Found]] = {
    "hourly_spikes": hourly_spikes,
    "span_outliers": span_outliers,
    "error_bursts": error_bursts,
    "first_seen": first_seen,
    "new_sequences": new_sequences,
    "sensitive_egress": sensitive_egress,
}
"""Detector name -> function; the detection job runs them in this order."""
