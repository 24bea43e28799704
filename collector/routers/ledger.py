"""The verifiable ledger over HTTP (auditor role): the latest signed checkpoint, inclusion proofs,
consistency proofs. Everything an outsider checks offline (``agentledger verify-proof``,
``examples/verify_proof.py``) with the log's public key alone."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import PlainTextResponse
from starlette.concurrency import run_in_threadpool

from agentledger.collector.deps import ReadLogDep, StoreDep, TenantDep, read_errors
from agentledger.pipeline.services import ledger
from agentledger.schemas.read.proofs import ConsistencyProofFile, InclusionProofFile

__all__ = ["router"]

router = APIRouter(prefix="/api/v1/ledger", tags=["ledger"])


@router.get(
    "/checkpoint",
    summary="The latest signed checkpoint of the tenant's log (C2SP signed note)",
    response_class=PlainTextResponse,
    responses={404: {}},
)
async def get_checkpoint(tenant: TenantDep, store: StoreDep) -> PlainTextResponse:
    with read_errors():
        note = await run_in_threadpool(ledger.checkpoint, store, tenant)
    return PlainTextResponse(note, media_type="text/plain; charset=utf-8")


@router.get(
    "/proof",
    summary="Inclusion proof of a span or record in the latest signed checkpoint",
    response_model=InclusionProofFile,
    responses={400: {}, 404: {}, 409: {}},
)
async def get_proof(
    tenant: TenantDep,
    store: StoreDep,
    read_log: ReadLogDep,
    span_id: str | None = Query(None, description="Span id (16 hex digits)."),
    record: str | None = Query(None, description="KIND:ID, e.g. intent:<intent id>."),
) -> InclusionProofFile:
    """The proof file of ``agentledger prove``: checkpoint, tree_size, leaf_index, record
    (base64 canonical JSON), inclusion_path. 409 when the stored row no longer matches its
    leaf."""
    if (span_id is None) == (record is None):
        raise HTTPException(400, "give exactly one of span_id or record=KIND:ID")
    with read_errors():
        kind, record_id = ("span", span_id) if span_id else ledger.parse_record_ref(record or "")
        try:
            proof = await run_in_threadpool(ledger.prove, store, tenant, kind, record_id)
        except ledger.LedgerMismatch as exc:
            raise HTTPException(409, str(exc)) from exc
    await read_log.record([record_id], 1)
    return InclusionProofFile.model_validate(proof.to_json())


@router.get(
    "/consistency",
    summary="Consistency proof between two sizes of the tenant's log",
    response_model=ConsistencyProofFile,
    responses={400: {}, 409: {}},
)
async def get_consistency(
    tenant: TenantDep,
    store: StoreDep,
    first: int = Query(..., ge=0, description="Older tree size."),
    second: int = Query(..., ge=0, description="Newer tree size."),
) -> ConsistencyProofFile:
    with read_errors():
        try:
            proof = await run_in_threadpool(ledger.consistency, store, tenant, first, second)
        except ledger.LedgerMismatch as exc:
            raise HTTPException(409, str(exc)) from exc
    return ConsistencyProofFile.model_validate(proof.to_json())
