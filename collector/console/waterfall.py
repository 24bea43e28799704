"""The waterfall of a trace of any size: whole up to ``FULL`` spans, virtualized beyond.

Up to ``FULL`` spans the page holds every row (it works without script, and the browser lays out
2,000 rows well within a second). Beyond, it holds the first ``PAGE`` rows and the page's script
(``static/waterfall.js``, on the vendored ``@tanstack/virtual-core``) keeps only the rows in view in
the document, asking ``/rows`` for further pages of the outline as the list scrolls. The outline
of a trace is read once and kept for ``TTL_S`` seconds, so paging through it does not read the
trace again for every page.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Annotated, Final

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from agentledger.collector.console.sessions import PREFIX
from agentledger.collector.deps import ReadLogDep, StoreDep, TenantDep, read_errors
from agentledger.pipeline.services.waterfall import Outline, outline

__all__ = ["DRAWN", "FULL", "PAGE", "cached_outline", "router"]

router = APIRouter(prefix=PREFIX)

FULL: Final = 500
"""Most spans a waterfall renders whole; a larger trace is virtualized. Measured with
bench/console_scale.py over 10 M stored spans: a 2,000-span trace drawn whole took 1.3 s to
render, a 10,000-span one virtualized 0.54 s, so the whole drawing stops well before 2,000."""
PAGE: Final = 500
"""Rows of the outline per page (the first is in the page itself, as data)."""
DRAWN: Final = 100
"""Rows of a virtualized waterfall drawn on the server: a screenful, for a browser without
script (the script draws the rows in view from the page's data instead)."""
TTL_S: Final = 30.0
KEPT: Final = 8
"""Outlines kept (the traces being looked at now); a 10,000-span outline is ~2 MB."""

_kept: OrderedDict[tuple[str, str], tuple[float, Outline]] = OrderedDict()
_lock = threading.Lock()


def cached_outline(store: StoreDep, tenant: str, trace_id: str, *, fresh: bool = False) -> Outline:
    """The trace's outline, read again when ``fresh`` (a page load) or older than ``TTL_S``."""
    key = (tenant, trace_id.lower())
    now = time.monotonic()
    with _lock:
        hit = _kept.get(key)
        if hit is not None and not fresh and now - hit[0] < TTL_S:
            _kept.move_to_end(key)
            return hit[1]
    found = outline(store, tenant, trace_id)
    with _lock:
        _kept[key] = (now, found)
        _kept.move_to_end(key)
        while len(_kept) > KEPT:
            _kept.popitem(last=False)
    return found


@router.get("/traces/{trace_id}/rows")
async def waterfall_rows(
    trace_id: str,
    tenant: TenantDep,
    store: StoreDep,
    read_log: ReadLogDep,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=2000)] = PAGE,
) -> JSONResponse:
    """A page of the waterfall's rows, in tree order, for the virtualized list."""
    with read_errors():
        found = await run_in_threadpool(cached_outline, store, tenant, trace_id)
    rows = [b.as_json() for b in found.bars[offset : offset + limit]]
    await read_log.record([found.trace_id], len(rows))
    response = JSONResponse({"total": len(found.bars), "offset": offset, "rows": rows})
    response.headers["Cache-Control"] = "no-store"
    return response
