"""The verifiable ledger for auditors: its status, a verification on demand, proof files.

A proof downloaded here is the file ``agentledger prove`` writes (``pipeline.tlog.proof``), so an
auditor hands it to anyone who holds the log's public key and ``agentledger verify-proof`` (or
``examples/verify_proof.py``) checks it without us. Verification recomputes the whole log: it
runs one at a time per process (a second ask is told to wait, never queued behind the first),
in a worker thread, streamed by ``tlog_verify`` in bounded memory.
"""

from __future__ import annotations

import re
import threading
from typing import Final

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from agentledger.collector.console import web
from agentledger.collector.console.sessions import PREFIX
from agentledger.collector.deps import ReadLogDep, StoreDep, TenantDep, read_errors
from agentledger.pipeline.services import ledger
from agentledger.pipeline.services.reads import ReadNotFound

__all__ = ["router"]

router = APIRouter(prefix=PREFIX)

_SPAN_ID: Final = re.compile(r"[0-9a-fA-F]{16}")
_VERIFYING = threading.Lock()
"""Held while a verification runs: the log is read end to end, once at a time."""


@router.get("/ledger")
async def ledger_page(
    request: Request, tenant: TenantDep, store: StoreDep, read_log: ReadLogDep
) -> Response:
    """The latest signed checkpoint, the witness's view, and the button that verifies."""
    state = await run_in_threadpool(ledger.status, store, tenant)
    await read_log.record([f"checkpoint:{state.tree_size}"], 1 if state.tree_size else 0)
    return web.page(request, "ledger.html", nav="ledger", state=state)


@router.get("/ledger/verify")
async def ledger_verify(
    request: Request, tenant: TenantDep, store: StoreDep, read_log: ReadLogDep
) -> Response:
    """Recompute the log against its signed checkpoints, keys and witness: OK or the problems
    (htmx swaps the answer into the status page; without script it is a page of its own)."""
    if not _VERIFYING.acquire(blocking=False):
        raise HTTPException(
            429, "a verification of the ledger is already running here: ask again when it ends"
        )
    try:
        report = await run_in_threadpool(ledger.verify_here, store, tenant)
    except ValueError as exc:  # the witness of AGENTLEDGER_WITNESS_URL did not answer
        raise HTTPException(503, f"not verified: the witness could not be asked: {exc}") from exc
    finally:
        _VERIFYING.release()
    await read_log.record([f"verify:{report.checkpoint_size}"], report.leaves)
    template = "ledger_verify.html" if request.headers.get("hx-request") else "ledger_verified.html"
    return web.page(request, template, nav="ledger", report=report)


@router.get("/audit/{ref}/proof")
async def proof_download(
    ref: str, tenant: TenantDep, store: StoreDep, read_log: ReadLogDep
) -> Response:
    """The inclusion proof of one action's span in the latest signed checkpoint, as a file."""
    if not _SPAN_ID.fullmatch(ref):
        raise HTTPException(
            400, f"a ledger proof is of one span: {ref!r} is not a span id (16 hex digits)"
        )
    span_id = ref.lower()
    with read_errors():
        try:
            proof = await run_in_threadpool(ledger.prove, store, tenant, "span", span_id)
        except ledger.LedgerMismatch as exc:
            raise HTTPException(409, str(exc)) from exc
        except ReadNotFound as exc:
            signed = await run_in_threadpool(ledger.signed_leaves, store, tenant, "span", [span_id])
            raise ReadNotFound(
                f"span {span_id} is not yet in a signed checkpoint: it is appended and signed "
                f"within {signed.interval_s:.0f} s of being stored ({exc})"
            ) from exc
    await read_log.record([span_id], 1)
    response = Response(proof.dumps(), media_type="application/json")
    response.headers["Content-Disposition"] = f'attachment; filename="proof-span-{span_id}.json"'
    return web.secure(response)
