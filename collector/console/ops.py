"""Governance, Usage and Audit pages.

Governance lists intents and outcomes and the pauses in force, refreshed live by polling so an
operator watches a parked tool call leave the list when its run is resumed; operators get the
controls form. Usage asks the usage service exactly as ``agentledger usage`` and the API do, so
the numbers agree. Audit renders the audit service's report and offers it as Markdown and HTML.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from functools import partial
from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from agentledger.collector.console import web
from agentledger.collector.console.sessions import PREFIX
from agentledger.collector.deps import (
    GovernanceDep,
    IdentityDep,
    ReadLogDep,
    StoreDep,
    TenantDep,
    read_errors,
)
from agentledger.pipeline.derive.usage import READ_TAIL_HOURS
from agentledger.pipeline.governance import (
    ControlIn,
    GovernanceRejected,
    GovernanceUnavailable,
)
from agentledger.pipeline.services import ledger, reads
from agentledger.schemas.read import UsageRow

__all__ = ["router"]

router = APIRouter(prefix=PREFIX)

BREAKDOWNS = ("model", "agent", "principal", "tool")
USAGE_RANGES = {"24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30)}


# -- governance ---------------------------------------------------------------------------------


async def _governance_state(service: GovernanceDep, tenant: str) -> dict[str, Any]:
    try:
        intents = await run_in_threadpool(partial(reads.intents, service, tenant, limit=50))
        paused = await run_in_threadpool(partial(reads.controls, service, tenant))
        history = await run_in_threadpool(
            partial(reads.controls, service, tenant, everything=True, limit=20)
        )
    except GovernanceUnavailable as exc:
        raise HTTPException(503, f"governance records unavailable: {exc}") from exc
    parked = [i for i in intents if i.decision == "paused" and i.outcome is None]
    return {
        "intents": intents,
        "parked": parked,
        "paused": paused.controls,
        "history": history.controls,
        "shared": paused.shared,
    }


@router.get("/governance")
async def governance_page(
    request: Request, tenant: TenantDep, service: GovernanceDep, message: str = ""
) -> Response:
    state = await _governance_state(service, tenant)
    return web.page(request, "governance.html", nav="governance", message=message[:200], **state)


@router.get("/governance/live")
async def governance_live(request: Request, tenant: TenantDep, service: GovernanceDep) -> Response:
    """The live part of the page: pauses in force, parked calls, intents (polled by htmx)."""
    state = await _governance_state(service, tenant)
    return web.page(request, "governance_live.html", **state)


@router.post("/governance/controls", dependencies=[Depends(web.require_csrf)])
async def set_control(
    identity: IdentityDep,
    service: GovernanceDep,
    action: Annotated[str, Form(max_length=16)] = "",
    scope: Annotated[str, Form(max_length=16)] = "",
    target: Annotated[str, Form(max_length=1024)] = "",
    reason: Annotated[str, Form(max_length=4096)] = "",
) -> Response:
    """Pause or resume, recorded under the signed-in key's name (never a name from the form)."""
    if not reason.strip():
        raise HTTPException(400, f"give a reason to {action or 'pause or resume'}: it is recorded")
    try:
        control = ControlIn.model_validate(
            {"action": action, "scope": scope, "target": target, "reason": reason.strip()}
        )
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise HTTPException(400, f"invalid control: {problems}") from exc
    try:
        await run_in_threadpool(
            partial(service.control, identity.tenant, control, actor=identity.actor)
        )
    except GovernanceRejected as exc:
        raise HTTPException(exc.status, str(exc)) from exc
    except GovernanceUnavailable as exc:
        raise HTTPException(503, f"not recorded, try again: {exc}") from exc
    done = f"{control.action.value}d {control.scope.value} {control.target}"
    return RedirectResponse(f"{PREFIX}/governance?message={done}", status_code=303)


# -- usage --------------------------------------------------------------------------------------


@router.get("/usage")
async def usage_page(
    request: Request,
    tenant: TenantDep,
    store: StoreDep,
    range: Literal["24h", "7d", "30d"] = "24h",
) -> Response:
    """The totals, a series over time and the top groups of each breakdown, with the API's
    defaults otherwise (ordered by cost, the rollup plus its unrolled tail)."""
    end = datetime.now(timezone.utc)
    start = end - USAGE_RANGES[range]
    interval = "hour" if range == "24h" else "day"
    ask = partial(reads.usage, store, tenant, since=start, until=end, tail_hours=READ_TAIL_HOURS)
    with read_errors():
        totals = await run_in_threadpool(ask)
        series = await run_in_threadpool(partial(ask, interval=interval, top=0))
        by = {
            dim: await run_in_threadpool(partial(ask, group_by=[dim], top=10)) for dim in BREAKDOWNS
        }
    points = _every_bucket(series.rows, start, end, interval)
    return web.page(
        request,
        "usage.html",
        nav="usage",
        range=range,
        ranges=list(USAGE_RANGES),
        total=totals.rows[0] if totals.rows else None,
        points=points,
        by=by,
        start=start,
        end=end,
    )


def _every_bucket(
    rows: list[UsageRow], start: datetime, end: datetime, interval: str
) -> list[dict[str, float | None]]:
    """The series with a point for every bucket of the range (zero where nothing ran), so the
    chart's time axis is the range asked, not the span of the buckets that had traffic."""
    step = timedelta(hours=1) if interval == "hour" else timedelta(days=1)
    floor = start.replace(minute=0, second=0, microsecond=0)
    if interval == "day":
        floor = floor.replace(hour=0)
    found = {datetime.fromisoformat(str(r.bucket)).timestamp(): r for r in rows if r.bucket}
    points: list[dict[str, float | None]] = []
    at = floor
    while at <= end:
        t = at.timestamp()
        r = found.get(t)
        points.append(
            {
                "t": t,
                "calls": r.calls if r else 0,
                "tokens": r.tokens if r else 0,
                "cost": r.cost_usd if r else 0.0,
                "errors": r.errors if r else 0,
                "p95": r.latency_p95_ms if r else None,
            }
        )
        at += step
    return points


# -- audit --------------------------------------------------------------------------------------


@router.get("/audit")
async def audit_index(
    request: Request, tenant: TenantDep, store: StoreDep, service: GovernanceDep, ref: str = ""
) -> Response:
    """Pick an action: recent governed tool calls and recent traces, or any id."""
    if ref.strip():
        return RedirectResponse(f"{PREFIX}/audit/{quote(ref.strip(), safe='')}", status_code=303)
    try:
        intents = await run_in_threadpool(partial(reads.intents, service, tenant, limit=20))
    except GovernanceUnavailable:
        intents = []
    recent = await run_in_threadpool(partial(reads.traces, store, tenant, limit=20))
    return web.page(request, "audit_index.html", nav="audit", intents=intents, recent=recent)


@router.get("/audit/{ref}")
async def audit_page(
    request: Request, ref: str, tenant: TenantDep, store: StoreDep, read_log: ReadLogDep
) -> Response:
    with read_errors():
        report = await run_in_threadpool(reads.audit, store, tenant, ref)
    # whether each action's span is in a signed checkpoint yet (its proof can be downloaded)
    spans = [a.action.span_id for a in report.actions]
    signed = await run_in_threadpool(ledger.signed_leaves, store, tenant, "span", spans)
    await read_log.record([ref], len(report.actions))
    return web.page(request, "audit.html", nav="audit", report=report, ref=ref, signed=signed)


@router.get("/audit/{ref}/download")
async def audit_download(
    ref: str,
    tenant: TenantDep,
    store: StoreDep,
    read_log: ReadLogDep,
    format: Literal["markdown", "html"] = "markdown",
    inline: bool = False,
) -> Response:
    """The report as a file (``inline``: the HTML shown in the audit page's frame)."""
    from agentledger.pipeline.services.audit import to_html, to_markdown

    with read_errors():
        report = await run_in_threadpool(reads.audit, store, tenant, ref)
    await read_log.record([ref], len(report.actions))
    data = report.model_dump(mode="json")
    name = "audit-" + "".join(c for c in report.query if c.isalnum())[:64]
    response: Response
    if format == "markdown":
        response = PlainTextResponse(to_markdown(data), media_type="text/markdown; charset=utf-8")
        response.headers["Content-Disposition"] = f'attachment; filename="{name}.md"'
    else:
        response = HTMLResponse(to_html(data))
        if not inline:
            response.headers["Content-Disposition"] = f'attachment; filename="{name}.html"'
    # the report's own stylesheet is inline; nothing in it may run
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'self'; sandbox"
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "no-store"
    return response
