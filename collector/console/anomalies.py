"""Anomalies and Patterns pages.

Anomalies lists what the detectors stored, each with its evidence (observed against expected, the
score, the detector's own sentence) and links to example traces; operators acknowledge, mute,
unmute or label an anomaly and run a detection pass, through the same service calls as
``POST /api/v1/anomalies/...`` (recorded under the signed-in key's name). Patterns shows the
patterns report: tool sequences, n-grams, input topics and what is new against the baseline.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from functools import partial
from typing import Annotated, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from agentledger.collector.console import web
from agentledger.collector.console.sessions import PREFIX
from agentledger.collector.deps import IdentityDep, ReadLogDep, StoreDep, TenantDep, read_errors
from agentledger.pipeline.services import reads
from agentledger.schemas.analytics import AnomalyType
from agentledger.schemas.read import AnomalyActionIn

__all__ = ["router"]

router = APIRouter(prefix=PREFIX)

WINDOWS: dict[str, timedelta] = {
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
}
PATTERN_WINDOWS = {"1h": 1, "24h": 24, "7d": 168}
"""The patterns report's window, in hours (its baseline is the same length before it)."""


@router.get("/anomalies")
async def anomalies_page(
    request: Request,
    tenant: TenantDep,
    store: StoreDep,
    read_log: ReadLogDep,
    range: Literal["24h", "7d", "30d"] = "7d",
    type: Annotated[str, Query(max_length=32)] = "",
    message: Annotated[str, Query(max_length=200)] = "",
) -> Response:
    """``type`` empty is any type (what the filter form's "any" sends)."""
    types = [t.value for t in AnomalyType]
    if type and type not in types:
        raise HTTPException(400, f"unknown anomaly type {type!r}; one of {', '.join(types)}")
    since = datetime.now(timezone.utc) - WINDOWS[range]
    with read_errors():
        found = await run_in_threadpool(
            partial(
                reads.anomalies,
                store,
                tenant,
                since=since,
                type=type or None,
                limit=200,
            )
        )
    await read_log.record([a.anomaly_id for a in found], len(found))
    return web.page(
        request,
        "anomalies.html",
        nav="anomalies",
        anomalies=found,
        range=range,
        ranges=list(WINDOWS),
        type=type,
        types=types,
        message=message,
    )


def _back(range: str, type: str, message: str) -> RedirectResponse:
    asked = {"range": range, "type": type, "message": message[:200]}
    query = urlencode({k: v for k, v in asked.items() if v})
    return RedirectResponse(f"{PREFIX}/anomalies?{query}", status_code=303)


@router.post("/anomalies/{anomaly_id}/actions", dependencies=[Depends(web.require_csrf)])
async def anomaly_action(
    anomaly_id: str,
    identity: IdentityDep,
    store: StoreDep,
    action: Annotated[str, Form(max_length=16)] = "",
    label: Annotated[str, Form(max_length=16)] = "",
    note: Annotated[str, Form(max_length=4096)] = "",
    range: Annotated[str, Form(max_length=8)] = "7d",
    type: Annotated[str, Form(max_length=32)] = "",
) -> Response:
    """Ack, mute, unmute or label, as ``POST /api/v1/anomalies/{id}/actions`` does."""
    try:
        body = AnomalyActionIn.model_validate({"action": action, "label": label, "note": note})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise HTTPException(400, f"invalid anomaly action: {problems}") from exc
    if body.action == "label" and not body.label:
        raise HTTPException(400, "choose true alarm or false alarm to label an anomaly")
    with read_errors():
        done = await run_in_threadpool(
            partial(
                reads.anomaly_action, store, identity.tenant, anomaly_id, body, actor=identity.actor
            )
        )
    said = f"{done.action}{' ' + done.label.replace('_', ' ') if done.label else ''}"
    return _back(range if range in WINDOWS else "7d", type, f"{said}: {done.type} {anomaly_id}")


@router.post("/anomalies/detect", dependencies=[Depends(web.require_csrf)])
async def detect(identity: IdentityDep, store: StoreDep) -> Response:
    """One detection pass now, as ``POST /api/v1/anomalies/detect`` runs it."""
    with read_errors():
        result = await run_in_threadpool(reads.detect_anomalies, store, identity.tenant)
    return _back(
        "7d", "", f"detection ran: {len(result.new)} new, {sum(result.anomalies.values())} in all"
    )


@router.get("/patterns")
async def patterns_page(
    request: Request,
    tenant: TenantDep,
    store: StoreDep,
    read_log: ReadLogDep,
    window: Literal["1h", "24h", "7d"] = "24h",
    agent: Annotated[str, Query(max_length=512)] = "",
) -> Response:
    hours = PATTERN_WINDOWS[window]
    with read_errors():
        report = await run_in_threadpool(
            partial(
                reads.patterns,
                store,
                tenant,
                baseline_hours=hours * 7,
                since=datetime.now(timezone.utc) - timedelta(hours=hours),
                agent=agent.strip() or None,
            )
        )
    examples = {t for s in report.sequences for t in s.example_trace_ids}
    await read_log.record(sorted(examples), len(report.sequences) + len(report.topics))
    return web.page(
        request,
        "patterns.html",
        nav="anomalies",
        report=report,
        window=window,
        windows=list(PATTERN_WINDOWS),
        agent=agent.strip(),
    )
