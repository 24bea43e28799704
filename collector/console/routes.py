"""The console's routes in one router, left out of the OpenAPI document (they are pages, not
the API; ``collector/policy.py`` lists each one with the permission it needs)."""

from __future__ import annotations

from fastapi import APIRouter

from agentledger.collector.console import ops, signin, traces
from agentledger.collector.console.sessions import SessionBook
from agentledger.collector.console.web import error_page, owns

__all__ = ["SessionBook", "error_page", "owns", "router"]

router = APIRouter(include_in_schema=False, tags=["console"])
for _part in (signin.router, traces.router, ops.router):
    router.include_router(_part)
