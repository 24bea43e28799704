"""Feedback in (``POST /v1/feedback``); datasets and their lineage out (``/api/v1/datasets``...).

Feedback is durable before the answer: embedded, it is in the store; with
Kafka, the broker acknowledged it (acks=all) on the feedback topic, which the
pipeline's ``FeedbackConsumer`` stores. Errors: 422 for feedback that is not
valid, 404 for a span-only feedback naming a span the store does not know
(embedded), 409 for feedback sent under an ``id`` (idempotency key) already used for
other feedback (where the store can be read), 503 with ``Retry-After`` when the store or
broker is unavailable.
"""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Body, HTTPException, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from agentledger.collector.deps import (
    ActorDep,
    FeedbackLogDep,
    IdentityDep,
    ReadLogDep,
    StoreDep,
    TenantDep,
    read_errors,
)
from agentledger.collector.policy import forbid_unless
from agentledger.collector.routers.params import page_size
from agentledger.pipeline.services import reads
from agentledger.pipeline.services.datasets import export as dataset_export
from agentledger.pipeline.services.datasets import feedback as fb
from agentledger.pipeline.services.datasets import files as dataset_files
from agentledger.schemas.access import Permission
from agentledger.schemas.names import validate_name
from agentledger.schemas.read import (
    DatasetManifest,
    DatasetSpan,
    DatasetSummary,
    FeedbackAccepted,
    FeedbackItem,
    SpanDataset,
)
from agentledger.schemas.read import defaults as D

__all__ = ["router"]

router = APIRouter(tags=["feedback", "datasets"])

_MAX_BATCH = 1000


def _unavailable(message: str) -> HTTPException:
    return HTTPException(503, message, headers={"Retry-After": "2"})


@router.post(
    "/v1/feedback", summary="Attach scores, labels, comments or corrections to a trace or span"
)
async def post_feedback(
    tenant: TenantDep,
    actor: ActorDep,
    feedback_log: FeedbackLogDep,
    body: fb.FeedbackIn | list[fb.FeedbackIn] = Body(...),
) -> FeedbackAccepted:
    items = body if isinstance(body, list) else [body]
    if not items or len(items) > _MAX_BATCH:
        raise HTTPException(422, f"send 1 to {_MAX_BATCH} feedback items")
    try:
        with read_errors():
            return await run_in_threadpool(
                partial(reads.add_feedback, feedback_log, tenant, items, actor=actor)
            )
    except fb.FeedbackUnavailable as exc:
        raise _unavailable(str(exc)) from exc
    except fb.FeedbackConflict as exc:  # the idempotency key was used for other feedback
        raise HTTPException(409, str(exc)) from exc


@router.get(
    "/api/v1/feedback",
    summary="Feedback on a trace (and its spans) or on one span",
    response_model=list[FeedbackItem],
    responses={400: {}},
)
async def get_feedback(
    tenant: TenantDep,
    store: StoreDep,
    trace_id: str | None = None,
    span_id: str | None = None,
    limit: int = page_size(D.FEEDBACK_LIMIT, D.FEEDBACK_MAX),
) -> list[FeedbackItem]:
    with read_errors():
        return await run_in_threadpool(
            reads.feedback, store, tenant, trace_id=trace_id, span_id=span_id, limit=limit
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
    if "\x00" in out_dir:
        raise HTTPException(400, "out_dir must not contain a NUL character")
    if request.app.state.settings.no_auth:
        return Path(out_dir)
    try:
        validate_name("tenant", tenant)  # it becomes a folder name: never '..' or a path
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from exc
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
    response_model=DatasetManifest,
    responses={400: {}, 403: {}},
)
async def create_dataset(
    request: Request,
    body: ExportBody,
    identity: IdentityDep,
    store: StoreDep,
    read_log: ReadLogDep,
) -> DatasetManifest:
    redact = body.request.get("redact", "all")
    if redact != "all":  # a reader exports redacted data only; anything less is an admin's
        forbid_unless(identity, Permission.ADMIN, f"an export with redact={redact!r}")
    tenant = identity.tenant
    out = _export_dir(request, tenant, body.out_dir)
    with read_errors():
        manifest = await run_in_threadpool(
            partial(reads.export_dataset, store, tenant, out, body.request, actor=identity.actor)
        )
    await read_log.record([manifest.id], manifest.counts.examples)
    return manifest


@router.get(
    "/api/v1/datasets",
    summary="Recorded datasets, newest first",
    response_model=list[DatasetSummary],
)
async def list_datasets(
    tenant: TenantDep,
    store: StoreDep,
    limit: int = page_size(D.DATASETS_LIMIT, D.DATASETS_MAX),
) -> list[DatasetSummary]:
    return await run_in_threadpool(reads.datasets, store, tenant, limit=limit)


async def _manifest(store: Any, tenant: str, dataset_id: str) -> DatasetManifest:
    with read_errors():
        return await run_in_threadpool(reads.dataset, store, tenant, dataset_id)


@router.get(
    "/api/v1/datasets/{dataset_id}",
    summary="A dataset's manifest, with what the store recorded",
    response_model=DatasetManifest,
    responses={404: {}},
)
async def get_dataset(dataset_id: str, tenant: TenantDep, store: StoreDep) -> DatasetManifest:
    return await _manifest(store, tenant, dataset_id)


@router.get(
    "/api/v1/datasets/{dataset_id}/spans",
    summary="The production spans in a dataset",
    response_model=list[DatasetSpan],
    responses={404: {}},
)
async def get_dataset_spans(
    dataset_id: str,
    tenant: TenantDep,
    store: StoreDep,
    limit: int = page_size(D.DATASET_SPANS_LIMIT, D.DATASET_SPANS_MAX),
) -> list[DatasetSpan]:
    with read_errors():
        return await run_in_threadpool(reads.dataset_spans, store, tenant, dataset_id, limit=limit)


@router.get(
    "/api/v1/datasets/{dataset_id}/files/{name}",
    summary="Download one file of a dataset",
    response_class=FileResponse,
    responses={
        200: {"content": {"application/octet-stream": {}}, "description": "The file's bytes."},
        400: {},
        404: {},
        410: {},
    },
)
async def get_dataset_file(
    dataset_id: str, name: str, tenant: TenantDep, store: StoreDep
) -> FileResponse:
    """Only a file the manifest lists, directly in the dataset's folder (``datasets.files``)."""
    try:
        dataset_files.check_name(name)
    except dataset_files.FileNameRejected as exc:
        raise HTTPException(400, str(exc)) from exc
    manifest = await _manifest(store, tenant, dataset_id)
    listed = {f.path for f in manifest.files} | {dataset_export.MANIFEST_NAME}
    if name not in listed:
        raise HTTPException(404, f"dataset {dataset_id} has no file {name!r}")
    if manifest.recorded is None:
        raise HTTPException(410, f"dataset {dataset_id} has no recorded location")
    try:
        path = dataset_files.dataset_file(manifest.recorded.path, name, listed)
    except dataset_files.DatasetFileError as exc:
        status = {dataset_files.FileNameRejected: 400, dataset_files.FileGone: 410}
        raise HTTPException(status.get(type(exc), 404), f"dataset {dataset_id}: {exc}") from exc
    return FileResponse(path, filename=path.name)


@router.get(
    "/api/v1/spans/{span_id}/datasets",
    summary="The datasets that contain a span",
    response_model=list[SpanDataset],
)
async def get_span_datasets(span_id: str, tenant: TenantDep, store: StoreDep) -> list[SpanDataset]:
    return await run_in_threadpool(reads.span_datasets, store, tenant, span_id)
