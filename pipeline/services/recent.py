"""Newest-first trace lists that read days, not the whole table.

``spans`` is ordered by tenant, then day, then trace: a query bounded to the last days of a
tenant skips every older part and granule, while "the newest N spans" without a bound sorts the
start times of all of them (about 0.5 s per 10 million spans here) and the exact summary of the
chosen traces (``FINAL``) then reads every part. So a trace list asks for the tenant's newest
day first, looks back one day from it, and widens (a week, a month, everything) only when that
window holds too few traces for the page. The summary reads one day more than the window, so a
trace that started just before midnight is still summarized whole; a trace longer than a day
at the edge of the oldest window may be summarized from its later spans only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import date, timedelta
from typing import Any, Final

from agentledger.pipeline.store import Store

__all__ = ["WIDENING_DAYS", "newest_first"]

WIDENING_DAYS: Final = (1, 7, 31)
"""How far back from the newest day each attempt looks, before the last one looks at all."""


def _windows(store: Store, cond: str, params: dict[str, Any]) -> Iterator[date | None]:
    rows = store.query_rows(
        f"SELECT toDate(max(start_time)) AS newest, count() AS n FROM spans WHERE {cond}", params
    )
    if not rows or not rows[0]["n"]:
        return
    newest = rows[0]["newest"]
    for days in WIDENING_DAYS:
        yield newest - timedelta(days=days)
    yield None


def newest_first(
    store: Store,
    cond: str,
    params: dict[str, Any],
    run: Callable[[str, str, dict[str, Any]], list[dict[str, Any]]],
    needed: int,
) -> list[dict[str, Any]]:
    """Rows of ``run(inner_bound, outer_bound, params)`` over the smallest window that yields
    ``needed`` of them (or everything). The bounds are SQL conditions on ``start_time`` to AND
    into the query choosing the traces (inner) and into the one summarizing them (outer)."""
    rows: list[dict[str, Any]] = []
    for floor in _windows(store, cond, params):
        if floor is None:
            return run("1", "1", params)
        bounded = {**params, "window_floor": floor, "summary_floor": floor - timedelta(days=1)}
        rows = run(
            "toDate(start_time) >= {window_floor:Date}",
            "toDate(start_time) >= {summary_floor:Date}",
            bounded,
        )
        if len(rows) >= needed:
            return rows
    return rows
