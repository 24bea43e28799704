"""The SQL page: a query box, the answer as a table and, when it has a time column and numbers, a
chart; the example queries of ``docs/queries.md`` one click away.

The query runs through the same service as ``/clickhouse`` and ``agentledger sql`` (read-only,
bounded, the signed-in key's tenant only) and lands in the access log. It is a GET with the query
in the URL: a read that changes nothing, so it needs no CSRF token, and a result can be
bookmarked or shared. The page shows the first ``SHOWN_ROWS`` rows; the chart is drawn by
``static/sql.js`` with the vendored uPlot from the JSON the page embeds (no inline script: the
console's Content-Security-Policy forbids it).
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from agentledger.collector.console import web
from agentledger.collector.console.sessions import PREFIX
from agentledger.collector.deps import IdentityDep, ReadLogDep
from agentledger.collector.routers.clickhouse import SqlDep
from agentledger.pipeline.services.sql import EXAMPLES, SqlError

__all__ = ["SHOWN_ROWS", "router"]

router = APIRouter(prefix=PREFIX)

SHOWN_ROWS = 1000
"""Rows the page lists (the query's own bound is the service's ``max_result_rows``)."""

_TIME_TYPES = ("Date", "DateTime")
_NUMBER_TYPES = ("Int", "UInt", "Float", "Decimal")


def _base(type_name: str) -> str:
    """``Nullable(LowCardinality(T))`` -> ``T``."""
    for wrapper in ("Nullable(", "LowCardinality("):
        while type_name.startswith(wrapper) and type_name.endswith(")"):
            type_name = type_name[len(wrapper) : -1]
    return type_name


def chart_of(meta: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The chart a result allows: its first time column on x, its numeric columns as series."""
    types = [_base(str(m["type"])) for m in meta]
    x = next((i for i, t in enumerate(types) if t.startswith(_TIME_TYPES)), None)
    ys = [i for i, t in enumerate(types) if t.startswith(_NUMBER_TYPES) and i != x]
    if x is None or not ys:
        return None
    return {"x": x, "ys": ys}


def _cell(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


@router.get("/sql")
async def sql_page(
    request: Request,
    identity: IdentityDep,
    read_log: ReadLogDep,
    sql: SqlDep,
    q: Annotated[str, Query(max_length=256 * 1024)] = "",
) -> Response:
    context: dict[str, Any] = {
        "nav": "sql",
        "examples": EXAMPLES,
        "query": q,
        "database": await run_in_threadpool(sql.database, identity.tenant),
    }
    if not q.strip():
        return web.page(request, "sql.html", **context)
    try:
        answer = await run_in_threadpool(lambda: sql.run(identity.tenant, q, fmt="JSON"))
    except SqlError as exc:
        await read_log.record([f"sql refused: {q[:4000]}"], 0)
        return web.page(request, "sql.html", status=exc.status, error=str(exc), **context)
    await read_log.record([f"sql: {q[:4000]}"], answer.rows_read)
    try:
        result = json.loads(answer.body)
        meta, data = list(result["meta"]), list(result["data"])
    except (ValueError, KeyError, TypeError):  # the query named another FORMAT: show it as text
        text = answer.body.decode("utf-8", "replace")
        return web.page(request, "sql.html", text=text, **context)
    names = [str(m["name"]) for m in meta]
    rows = [[_cell(row.get(n)) for n in names] for row in data[:SHOWN_ROWS]]
    chart = chart_of(meta)
    series = None
    if chart is not None:
        series = {
            "names": [names[chart["x"]], *(names[i] for i in chart["ys"])],
            "x": [row.get(names[chart["x"]]) for row in data],
            "ys": [[row.get(names[i]) for row in data] for i in chart["ys"]],
        }
    return web.page(
        request,
        "sql.html",
        meta=meta,
        rows=rows,
        total=len(data),
        shown=len(rows),
        series=series,
        elapsed_ms=int(answer.summary.get("elapsed_ns", "0")) / 1e6,
        **context,
    )
