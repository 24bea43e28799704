"""Analytics API: usage, patterns of use, anomalies (reads ``agentledger.pipeline.derive``).

Every route serves the caller's tenant only. Usage reads the exact hourly
rollup; by default it first brings the rollup up to date (an incremental
pass that costs one fingerprint scan when nothing changed), so a reader
sees what was ingested a moment ago even between background passes.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any, Literal, TypeVar

from fastapi import APIRouter, HTTPException, Query
from starlette.concurrency import run_in_threadpool

from agentledger.collector.deps import StoreDep, TenantDep
from agentledger.pipeline.derive import (
    AnomalyDetectionJob,
    JobSettings,
    UsageQuery,
    UsageQueryError,
    UsageRollupJob,
    list_anomalies,
    patterns_report,
    usage_report,
)
from agentledger.pipeline.derive.usage import READ_REFRESH_LOOKBACK_HOURS
from agentledger.schemas.analytics import USAGE_DIMENSIONS, USAGE_METRICS, AnomalyType

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["analytics"])

T = TypeVar("T")


def _utc(t: datetime | None, default: datetime) -> datetime:
    if t is None:
        return default
    return t.astimezone(timezone.utc) if t.tzinfo else t.replace(tzinfo=timezone.utc)


def _opt_utc(t: datetime | None) -> datetime | None:
    return None if t is None else _utc(t, t)


async def _call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    try:
        return await run_in_threadpool(fn, *args, **kwargs)
    except UsageQueryError as exc:
        raise HTTPException(400, str(exc)) from exc


def _usage(store: Any, tenant: str, q: UsageQuery, refresh: bool) -> list[dict[str, Any]]:
    if refresh:
        UsageRollupJob(lookback_hours=READ_REFRESH_LOOKBACK_HOURS).run(
            store, datetime.now(timezone.utc)
        )
    return usage_report(store, tenant, q)


@router.get(
    "/usage", summary="Usage over a time range, grouped by dimensions, optionally as a time series"
)
async def usage(
    tenant: TenantDep,
    store: StoreDep,
    since: datetime | None = Query(
        None, description="Range start (default: 24 hours ago); floored to the hour."
    ),
    until: datetime | None = Query(
        None, description="Range end (default: now); ceiled to the hour."
    ),
    group_by: str = Query(
        "", description=f"Comma-separated dimensions: {', '.join(USAGE_DIMENSIONS)}."
    ),
    interval: Literal["hour", "day"] | None = Query(
        None, description="Add a time bucket: a series."
    ),
    top: int = Query(
        20, ge=0, le=10_000, description="Keep the N groups with the highest order_by (0: all)."
    ),
    order_by: str = Query("cost_usd", description=f"One of {', '.join(USAGE_METRICS)}."),
    principal: str | None = None,
    agent: str | None = None,
    provider: str | None = None,
    model: str | None = None,
    kind: str | None = None,
    tool: str | None = None,
    refresh: bool = Query(
        True, description="Bring the rollup up to date first (hours of the last 48)."
    ),
) -> dict[str, Any]:
    now = datetime.now(timezone.utc)
    end = _utc(until, now)
    start = _utc(since, end - timedelta(hours=24))
    filters = {
        k: v
        for k, v in (
            ("principal", principal),
            ("agent", agent),
            ("provider", provider),
            ("model", model),
            ("kind", kind),
            ("tool", tool),
        )
        if v is not None
    }
    dims = tuple(d.strip() for d in group_by.split(",") if d.strip())
    q = UsageQuery(start, end, dims, interval, top or None, order_by, filters)
    rows = await _call(_usage, store, tenant, q, refresh)
    return {
        "start": start.isoformat(),
        "end": end.isoformat(),
        "group_by": list(dims),
        "interval": interval,
        "order_by": order_by,
        "filters": filters,
        "rows": rows,
    }


@router.get("/patterns", summary="Tool sequences, n-grams, input topics and new or unexpected use")
async def patterns(
    tenant: TenantDep,
    store: StoreDep,
    since: datetime | None = Query(
        None, description="Current window start (default: 24 hours ago)."
    ),
    until: datetime | None = Query(None, description="Current window end (default: now)."),
    baseline_hours: int = Query(
        168, ge=1, le=24 * 366, description="Baseline: this many hours before the window."
    ),
    agent: str | None = None,
    n: int = Query(3, ge=1, le=6, description="Longest n-gram."),
    top: int = Query(10, ge=1, le=1000),
    k: int | None = Query(None, ge=1, le=50, description="Topics (default: chosen by silhouette)."),
) -> dict[str, Any]:
    now = datetime.now(timezone.utc)
    end = _utc(until, now)
    start = _utc(since, end - timedelta(hours=24))
    baseline = (start - timedelta(hours=baseline_hours), start)
    return await _call(
        patterns_report, store, tenant, (start, end), baseline, agent=agent, n_max=n, top=top, k=k
    )


@router.get("/anomalies", summary="Stored anomalies, newest window first")
async def anomalies(
    tenant: TenantDep,
    store: StoreDep,
    since: datetime | None = None,
    until: datetime | None = None,
    type: AnomalyType | None = None,
    limit: int = Query(100, ge=1, le=10_000),
) -> list[dict[str, Any]]:
    return await _call(
        list_anomalies,
        store,
        tenant,
        since=_opt_utc(since),
        until=_opt_utc(until),
        type=type.value if type else None,
        limit=limit,
    )


@router.post("/anomalies/detect", summary="Run one detection pass for this tenant now")
async def detect(
    tenant: TenantDep,
    store: StoreDep,
    now: datetime | None = Query(None, description="The clock to detect at (default: now)."),
    window_hours: int | None = Query(None, ge=1, le=24 * 31),
    baseline_hours: int | None = Query(None, ge=1, le=24 * 366),
) -> dict[str, Any]:
    overrides: dict[str, Any] = {
        k: v for k, v in (("window_hours", window_hours), ("baseline_hours", baseline_hours)) if v
    }
    settings = JobSettings(**overrides)
    at = _utc(now, datetime.now(timezone.utc))
    result = await _call(AnomalyDetectionJob(settings, tenant=tenant).run, store, at)
    return {"now": at.isoformat(), "seconds": round(result.seconds, 3), **result.info}
