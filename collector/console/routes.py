"""The console's routes in one router, left out of the OpenAPI document (they are pages, not
the API; ``collector/policy.py`` lists each one with the permission it needs)."""

from __future__ import annotations

from fastapi import APIRouter

from agentledger.collector.console import (
    anomalies,
    conversations,
    datasets,
    graph,
    ledger,
    ops,
    replays,
    signin,
    sql,
    traces,
    waterfall,
)
from agentledger.collector.console.sessions import SessionBook
from agentledger.collector.console.web import error_page, owns

__all__ = ["SessionBook", "error_page", "owns", "router"]

router = APIRouter(include_in_schema=False, tags=["console"])
# step 2 pages (issue 18): sessions, agent graph, anomalies and patterns, datasets, replays
_STEP2 = (conversations.router, graph.router, anomalies.router, datasets.router, replays.router)
for _part in (signin.router, traces.router, ops.router, *_STEP2):
    router.include_router(_part)
router.include_router(sql.router)  # the SQL page (issue 18, item 4)
router.include_router(ledger.router)  # ledger status, verification, proof files (issue 18)
router.include_router(waterfall.router)  # pages of a large trace's virtualized waterfall
