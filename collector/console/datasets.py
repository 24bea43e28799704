"""The Datasets pages: the list, one manifest, lineage both ways, and the export form.

Exports follow ``POST /api/v1/datasets`` exactly: a reader exports redacted data only (every
preset the redactor knows, ``redact=all``), anything less needs the admin role; files are written
on the server inside the tenant's folder of ``$AGENTLEDGER_DATASETS_DIR`` (the same check as the
API, imported from its router, so the two cannot drift apart); the export is logged as a read.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from functools import partial
from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request
from fastapi.responses import RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from agentledger.collector.console import web
from agentledger.collector.console.sessions import PREFIX
from agentledger.collector.deps import IdentityDep, ReadLogDep, StoreDep, TenantDep, read_errors
from agentledger.collector.policy import forbid_unless
from agentledger.collector.routers.feedback import _export_dir
from agentledger.pipeline.services import reads
from agentledger.pipeline.services.datasets.export import FORMATS
from agentledger.schemas.access import Permission

__all__ = ["router"]

router = APIRouter(prefix=PREFIX)

SINCE = {"24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30)}
REDACTIONS = ("all", "secret,iban,card,email,phone", "secret", "none")
"""What the form offers; only ``all`` is a reader's (the API's rule)."""


@router.get("/datasets")
async def datasets_page(
    request: Request,
    tenant: TenantDep,
    store: StoreDep,
    read_log: ReadLogDep,
    span: Annotated[str, Query(max_length=64)] = "",
) -> Response:
    """The list and the export form; ``span`` (the lineage form) leads to that span's datasets."""
    if span.strip():
        return RedirectResponse(
            f"{PREFIX}/spans/{quote(span.strip(), safe='')}/datasets", status_code=303
        )
    found = await run_in_threadpool(partial(reads.datasets, store, tenant, limit=200))
    await read_log.record([d.dataset_id for d in found], len(found))
    return web.page(
        request,
        "datasets.html",
        nav="datasets",
        datasets=found,
        formats=FORMATS,
        redactions=REDACTIONS,
        since=list(SINCE),
    )


@router.get("/datasets/{dataset_id}")
async def dataset_page(
    request: Request,
    dataset_id: str,
    tenant: TenantDep,
    store: StoreDep,
    read_log: ReadLogDep,
    message: Annotated[str, Query(max_length=200)] = "",
) -> Response:
    """A manifest, and the production spans it was made from (lineage dataset -> spans)."""
    with read_errors():
        manifest = await run_in_threadpool(reads.dataset, store, tenant, dataset_id)
        spans = await run_in_threadpool(
            partial(reads.dataset_spans, store, tenant, dataset_id, limit=500)
        )
    await read_log.record([dataset_id, *[s.span_id for s in spans]], len(spans))
    return web.page(
        request,
        "dataset.html",
        nav="datasets",
        m=manifest,
        spans=spans,
        message=message,
    )


@router.get("/spans/{span_id}/datasets")
async def span_datasets_page(
    request: Request, span_id: str, tenant: TenantDep, store: StoreDep, read_log: ReadLogDep
) -> Response:
    """Lineage span -> datasets: every dataset that holds the span, with its split and role."""
    span_id = span_id.strip().lower()
    if len(span_id) != 16 or any(c not in "0123456789abcdef" for c in span_id):
        raise HTTPException(400, f"a span id is 16 hex digits, not {span_id[:40]!r}")
    found = await run_in_threadpool(reads.span_datasets, store, tenant, span_id)
    await read_log.record([span_id, *[d.dataset_id for d in found]], len(found))
    return web.page(request, "span_datasets.html", nav="datasets", span_id=span_id, datasets=found)


@router.post("/datasets", dependencies=[Depends(web.require_csrf)])
async def export(
    request: Request,
    identity: IdentityDep,
    store: StoreDep,
    read_log: ReadLogDep,
    out_dir: Annotated[str, Form(max_length=512)] = "",
    name: Annotated[str, Form(max_length=256)] = "",
    format: Annotated[str, Form(max_length=32)] = "chat",
    since: Annotated[Literal["24h", "7d", "30d", "all"], Form()] = "7d",
    agent: Annotated[str, Form(max_length=512)] = "",
    model: Annotated[str, Form(max_length=512)] = "",
    sample_size: Annotated[int | None, Form(ge=1, le=10_000_000)] = None,
    redact: Annotated[str, Form(max_length=256)] = "all",
) -> Response:
    """Export as the API does, then open the new dataset's manifest."""
    if not out_dir.strip():
        raise HTTPException(400, "give a directory name for the dataset's files")
    if format not in FORMATS:
        raise HTTPException(400, f"unknown format {format!r}; one of {', '.join(FORMATS)}")
    redact = redact.strip() or "all"
    if redact != "all":  # a reader exports redacted data only; anything less is an admin's
        forbid_unless(identity, Permission.ADMIN, f"an export with redact={redact!r}")
    filters: dict[str, Any] = {}
    if since in SINCE:
        filters["since"] = (datetime.now(timezone.utc) - SINCE[since]).isoformat()
    if agent.strip():
        filters["agents"] = [agent.strip()]
    if model.strip():
        filters["models"] = [model.strip()]
    if sample_size:
        filters["sample_size"] = sample_size
    body = {"format": format, "name": name.strip(), "redact": redact, "filters": filters}
    out = _export_dir(request, identity.tenant, out_dir.strip())
    with read_errors():
        manifest = await run_in_threadpool(
            partial(reads.export_dataset, store, identity.tenant, out, body, actor=identity.actor)
        )
    await read_log.record([manifest.id], manifest.counts.examples)
    done = quote(f"exported {manifest.counts.examples} examples", safe="")
    return RedirectResponse(f"{PREFIX}/datasets/{manifest.id}?message={done}", status_code=303)
