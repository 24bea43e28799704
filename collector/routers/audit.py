"""Audit routes: ledger verification (and, later, audit reports and replays)."""

from __future__ import annotations

from typing import Any, Optional

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from agentledger.collector.deps import StoreDep, TenantDep

__all__ = ["router"]

router = APIRouter(prefix="/api/v1", tags=["audit"])


@router.get("/ledger/verify", summary="Recompute the tenant's tamper-evident ledger")
async def verify_ledger(tenant: TenantDep, store: StoreDep, since: Optional[str] = None) -> dict[str, Any]:
    from agentledger.pipeline.ledger import verify
    from agentledger.pipeline.settings import StoreSettings

    settings = StoreSettings()
    key = settings.ledger_key.get_secret_value().encode() if settings.ledger_key else None
    report = await run_in_threadpool(verify, store, tenant, key=key, since=since)
    return report.as_dict()
