"""Analytics API: usage, patterns of use, anomalies (reads ``agentledger.pipeline.derive``).

Every route serves the caller's tenant only. Usage reads the exact hourly
rollup and never runs it (the background job does; one pass per request would
let readers drive the store's load). By default it adds the spans not rolled
up yet, aggregated from the raw table over a bounded number of recent hours,
so a reader sees what was ingested a moment ago even between background passes.
"""

from __future__ import annotations

from datetime import datetime, timezone
from functools import partial
from typing import Literal

from fastapi import APIRouter, HTTPException, Query
from starlette.concurrency import run_in_threadpool

from agentledger.collector.deps import ActorDep, StoreDep, TenantDep, read_errors
from agentledger.collector.routers.params import page_size
from agentledger.pipeline.derive.usage import READ_TAIL_HOURS
from agentledger.pipeline.services import graph, reads
from agentledger.schemas.analytics import USAGE_DIMENSIONS, USAGE_METRICS, AnomalyType
from agentledger.schemas.read import (
    AgentGraph,
    Anomaly,
    AnomalyActionDone,
    AnomalyActionIn,
    DetectionResult,
    PatternsReport,
    UsageReport,
)
from agentledger.schemas.read import defaults as D

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["analytics"])


@router.get(
    "/usage",
    summary="Usage over a time range, grouped by dimensions, optionally as a time series",
    response_model=UsageReport,
    responses={400: {}},
)
async def usage(
    tenant: TenantDep,
    store: StoreDep,
    since: datetime | None = Query(
        None,
        description=f"Range start (default: {D.USAGE_WINDOW_HOURS} hours before its end); "
        "floored to the hour.",
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
    top: int = page_size(
        D.USAGE_TOP,
        D.USAGE_TOP_MAX,
        name="top",
        minimum=0,
        description="Keep the N groups with the highest order_by (0: all).",
    ),
    order_by: str = Query(D.USAGE_ORDER_BY, description=f"One of {', '.join(USAGE_METRICS)}."),
    principal: str | None = None,
    agent: str | None = None,
    provider: str | None = None,
    model: str | None = None,
    kind: str | None = None,
    tool: str | None = None,
    refresh: bool = Query(
        True,
        description="Also count spans the rollup does not hold yet (read raw, at most the "
        f"last {READ_TAIL_HOURS} hours); false: the rollup as the background job left it.",
    ),
) -> UsageReport:
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
    with read_errors():
        return await run_in_threadpool(
            reads.usage,
            store,
            tenant,
            since=since,
            until=until,
            group_by=[d.strip() for d in group_by.split(",") if d.strip()],
            interval=interval,
            top=top,
            order_by=order_by,
            filters=filters,
            tail_hours=READ_TAIL_HOURS if refresh else None,
        )


@router.get(
    "/agents/graph",
    summary="Agents and the handoffs between them: counts, latency, errors, tokens and cost",
    response_model=AgentGraph,
    responses={400: {}, 404: {}},
)
async def agents_graph(
    tenant: TenantDep,
    store: StoreDep,
    since: datetime | None = Query(
        None, description=f"Range start (default: {D.GRAPH_WINDOW_HOURS} hours before its end)."
    ),
    until: datetime | None = Query(None, description="Range end (default: now)."),
    trace_id: str | None = Query(
        None,
        description="One trace and the runs it belongs to (across asynchronous handoffs) "
        "instead of a time range.",
    ),
) -> AgentGraph:
    with read_errors():
        return await run_in_threadpool(
            partial(graph.agents_graph, store, tenant, since=since, until=until, trace_id=trace_id)
        )


@router.get(
    "/patterns",
    summary="Tool sequences, n-grams, input topics and new or unexpected use",
    response_model=PatternsReport,
    responses={400: {}},
)
async def patterns(
    tenant: TenantDep,
    store: StoreDep,
    since: datetime | None = Query(
        None,
        description=f"Current window start (default: {D.PATTERNS_WINDOW_HOURS} hours before "
        "its end).",
    ),
    until: datetime | None = Query(None, description="Current window end (default: now)."),
    baseline_hours: int = Query(
        D.PATTERNS_BASELINE_HOURS,
        ge=1,
        le=D.PATTERNS_BASELINE_MAX_HOURS,
        description="Baseline: this many hours before the window.",
    ),
    agent: str | None = None,
    n: int = Query(D.PATTERNS_NGRAM, ge=1, le=D.PATTERNS_NGRAM_MAX, description="Longest n-gram."),
    top: int = page_size(D.PATTERNS_TOP, D.PATTERNS_TOP_MAX, name="top"),
    k: int | None = Query(
        None, ge=1, le=D.PATTERNS_TOPICS_MAX, description="Topics (default: chosen by silhouette)."
    ),
) -> PatternsReport:
    with read_errors():
        return await run_in_threadpool(
            reads.patterns,
            store,
            tenant,
            since=since,
            until=until,
            baseline_hours=baseline_hours,
            agent=agent,
            n=n,
            top=top,
            k=k,
        )


@router.get(
    "/anomalies",
    summary="Stored anomalies, newest window first",
    response_model=list[Anomaly],
    responses={400: {}},
)
async def anomalies(
    tenant: TenantDep,
    store: StoreDep,
    since: datetime | None = None,
    until: datetime | None = None,
    type: AnomalyType | None = None,
    limit: int = page_size(D.ANOMALIES_LIMIT, D.ANOMALIES_MAX),
) -> list[Anomaly]:
    with read_errors():
        return await run_in_threadpool(
            reads.anomalies,
            store,
            tenant,
            since=since,
            until=until,
            type=type.value if type else None,
            limit=limit,
        )


_DETECT_CLOCK = (
    datetime(2000, 1, 1, tzinfo=timezone.utc),
    datetime(2100, 1, 1, tzinfo=timezone.utc),
)


def _as_utc(t: datetime) -> datetime:
    return t.replace(tzinfo=timezone.utc) if t.tzinfo is None else t


@router.post(
    "/anomalies/{anomaly_id}/actions",
    summary="Acknowledge, mute, unmute or label (true or false alarm) an anomaly",
    response_model=AnomalyActionDone,
    responses={400: {}, 404: {}},
)
async def anomaly_action(
    anomaly_id: str, body: AnomalyActionIn, tenant: TenantDep, actor: ActorDep, store: StoreDep
) -> AnomalyActionDone:
    with read_errors():
        return await run_in_threadpool(
            partial(reads.anomaly_action, store, tenant, anomaly_id, body, actor=actor)
        )


@router.post(
    "/anomalies/detect",
    summary="Run one detection pass for this tenant now",
    response_model=DetectionResult,
    responses={400: {}},
)
async def detect(
    tenant: TenantDep,
    store: StoreDep,
    now: datetime | None = Query(None, description="The clock to detect at (default: now)."),
    window_hours: int | None = Query(None, ge=1, le=D.DETECT_WINDOW_MAX_HOURS),
    baseline_hours: int | None = Query(None, ge=1, le=D.DETECT_BASELINE_MAX_HOURS),
) -> DetectionResult:
    if now is not None and not _DETECT_CLOCK[0] <= _as_utc(now) <= _DETECT_CLOCK[1]:
        # the windows reach back from ``now``; before 2000 they would leave the store's time range
        raise HTTPException(400, "now must lie between 2000-01-01 and 2100-01-01 (UTC)")
    with read_errors():
        return await run_in_threadpool(
            reads.detect_anomalies,
            store,
            tenant,
            now=now,
            window_hours=window_hours,
            baseline_hours=baseline_hours,
        )
