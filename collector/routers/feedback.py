"""Feedback in (``POST /v1/feedback``); datasets and their lineage out (``/api/v1/datasets``...).

Feedback is durable before the answer: embedded, it is in the store; with
Kafka, the broker acknowledged it (acks=all) on the feedback topic, which the
pipeline's ``FeedbackConsumer`` stores. Errors: 422 for feedback that is not
valid, 404 for a span-only feedback naming a span the store does not know
(embedded), 503 with ``Retry-After`` when the store or broker is unavailable.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Body, HTTPException, Query, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from agentledger.collector.deps import FeedbackLogDep, StoreDep, TenantDep
from agentledger.pipeline.services.datasets import export as dataset_export
from agentledger.pipeline.services.datasets import feedback as fb
from agentledger.pipeline.services.datasets import lineage

__all__ = ["router"]

router = APIRouter(tags=["feedback", "datasets"])

_MAX_BATCH = 1000


def _unavailable(message: str) -> HTTPException:
    return HTTPException(503, message, headers={"Retry-After": "2"})


class FeedbackAccepted(BaseModel):
    """What ``POST /v1/feedback`` answers."""

    accepted: int
    ids: list[str]
    durable_in: str = Field(description="store (embedded) or kafka (the feedback topic).")


@router.post(
    "/v1/feedback", summary="Attach scores, labels, comments or corrections to a trace or span"
)
async def post_feedback(
    tenant: TenantDep,
    feedback_log: FeedbackLogDep,
    body: fb.FeedbackIn | list[fb.FeedbackIn] = Body(...),
) -> FeedbackAccepted:
    items = body if isinstance(body, list) else [body]
    if not items or len(items) > _MAX_BATCH:
        raise HTTPException(422, f"send 1 to {_MAX_BATCH} feedback items")
    records = [fb.to_record(tenant, item, "api") for item in items]
    try:
        await run_in_threadpool(feedback_log.append, records, time.time_ns())
    except fb.FeedbackUnknownSpan as exc:
        raise HTTPException(404, str(exc)) from exc
    except fb.FeedbackRejected as exc:
        raise HTTPException(400, str(exc)) from exc
    except fb.FeedbackUnavailable as exc:
        raise _unavailable(str(exc)) from exc
    return FeedbackAccepted(
        accepted=len(records),
        ids=[r.feedback_id for r in records],
        durable_in=feedback_log.durable_in,
    )


@router.get("/api/v1/feedback", summary="Feedback on a trace (and its spans) or on one span")
async def get_feedback(
    tenant: TenantDep,
    store: StoreDep,
    trace_id: str | None = None,
    span_id: str | None = None,
    limit: int = Query(1000, ge=1, le=10_000),
) -> list[dict[str, Any]]:
    if not trace_id and not span_id:
        raise HTTPException(400, "give trace_id or span_id")
    return await run_in_threadpool(
        fb.list_feedback, store, tenant, trace_id=trace_id, span_id=span_id, limit=limit
    )


class ExportBody(BaseModel):
    """``POST /api/v1/datasets``: an export request and where (on the server) to write it."""

    out_dir: str = Field(
        description="Directory on the server's machine; created, must not hold a dataset. "
        "With API keys, relative to $AGENTLEDGER_DATASETS_DIR/<tenant>."
    )
    request: dict[str, Any] = Field(
        default_factory=dict, description="ExportRequest as JSON (format, filters...)."
    )


DATASETS_DIR_ENV = "AGENTLEDGER_DATASETS_DIR"
"""Where authenticated clients' exports go on the server (``<dir>/<tenant>/<out_dir>``)."""


def _export_dir(request: Request, tenant: str, out_dir: str) -> Path:
    """The directory to export into. Without auth (local single-user mode) any path; with API keys
    only inside the tenant's folder of the datasets directory, so no client writes elsewhere."""
    if request.app.state.settings.no_auth:
        return Path(out_dir)
    root = (Path(os.environ.get(DATASETS_DIR_ENV, "datasets")) / tenant).resolve()
    path = (root / out_dir).resolve()
    if path == root or root not in path.parents:
        raise HTTPException(
            403,
            f"exports go inside ${DATASETS_DIR_ENV}/<tenant> on this server; "
            f"give a relative directory name, not {out_dir!r}",
        )
    return path


@router.post(
    "/api/v1/datasets",
    summary="Export a dataset (files written on the server), returns its manifest",
)
async def create_dataset(
    request: Request, body: ExportBody, tenant: TenantDep, store: StoreDep
) -> dict[str, Any]:
    out = _export_dir(request, tenant, body.out_dir)
    try:
        req = dataset_export.ExportRequest.from_json(body.request)
        return await run_in_threadpool(dataset_export.export_dataset, store, tenant, out, req)
    except (dataset_export.ExportError, ValueError, TypeError) as exc:
        raise HTTPException(400, str(exc)) from exc


@router.get("/api/v1/datasets", summary="Recorded datasets, newest first")
async def list_datasets(
    tenant: TenantDep, store: StoreDep, limit: int = Query(50, ge=1, le=1000)
) -> list[dict[str, Any]]:
    return await run_in_threadpool(lineage.list_datasets, store, tenant, limit)


async def _manifest(store: Any, tenant: str, dataset_id: str) -> dict[str, Any]:
    manifest = await run_in_threadpool(lineage.get_dataset, store, tenant, dataset_id)
    if manifest is None:
        raise HTTPException(404, f"no dataset {dataset_id} for this tenant")
    return manifest


@router.get(
    "/api/v1/datasets/{dataset_id}", summary="A dataset's manifest, with what the store recorded"
)
async def get_dataset(dataset_id: str, tenant: TenantDep, store: StoreDep) -> dict[str, Any]:
    return await _manifest(store, tenant, dataset_id)


@router.get("/api/v1/datasets/{dataset_id}/spans", summary="The production spans in a dataset")
async def get_dataset_spans(
    dataset_id: str, tenant: TenantDep, store: StoreDep, limit: int = Query(1000, ge=1, le=100_000)
) -> list[dict[str, Any]]:
    await _manifest(store, tenant, dataset_id)
    return await run_in_threadpool(lineage.dataset_spans, store, tenant, dataset_id, limit=limit)


@router.get("/api/v1/datasets/{dataset_id}/files/{name}", summary="Download one file of a dataset")
async def get_dataset_file(
    dataset_id: str, name: str, tenant: TenantDep, store: StoreDep
) -> FileResponse:
    manifest = await _manifest(store, tenant, dataset_id)
    listed = {f["path"] for f in manifest["files"]} | {dataset_export.MANIFEST_NAME}
    if name not in listed:
        raise HTTPException(404, f"dataset {dataset_id} has no file {name!r}")
    path = Path(manifest["recorded"]["path"]) / name
    if not path.is_file():
        raise HTTPException(410, f"{name} is no longer at {path.parent}")
    return FileResponse(path, filename=name)


@router.get("/api/v1/spans/{span_id}/datasets", summary="The datasets that contain a span")
async def get_span_datasets(
    span_id: str, tenant: TenantDep, store: StoreDep
) -> list[dict[str, Any]]:
    return await run_in_threadpool(lineage.datasets_of_span, store, tenant, span_id)
