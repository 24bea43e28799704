"""What every detector shares: the ``Anomaly`` it reports, the ``Context`` it reads, the statistics.

Kept apart from the detectors so that each detector module imports only this
one, and ``detectors.py`` (the registry) imports them all without cycles.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from agentledger.pipeline.derive.settings import JobSettings
from agentledger.pipeline.derive.usage import floor_hour
from agentledger.pipeline.store import Store
from agentledger.schemas.analytics import NOT_SPANS_LOST_SQL, USAGE_TABLE

__all__ = [
    "Anomaly",
    "Context",
    "Found",
    "MODEL_SQL",
    "examples",
    "median",
    "poisson_sf",
    "robust_z",
    "tenant_has_baseline",
    "utc",
]

MODEL_SQL = "if(response_model != '', response_model, request_model)"
"""The model a span is counted under: the answered model, else the requested one."""


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


def utc(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, tz=timezone.utc)


def examples(
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
          AND {NOT_SPANS_LOST_SQL}
        GROUP BY v
        """,
        ctx.params(s=start, e=end, values=values),
    )
    return {r["v"]: sorted(r["ex"]) for r in rows}


def tenant_has_baseline(ctx: Context) -> bool:
    """Whether the tenant's first data is at least ``min_baseline_hours`` older than the window."""
    first = ctx.store.query_scalar(
        f"SELECT toUInt32(min(hour)) FROM {USAGE_TABLE} WHERE tenant = {{tenant:String}} AND calls > 0",
        ctx.params(),
    )
    return (
        bool(first)
        and first <= int(ctx.window_start.timestamp()) - ctx.settings.min_baseline_hours * 3600
    )
