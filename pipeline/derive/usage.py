"""Hourly usage: the exact rollup job and the queries that read it.

Why a job and not a materialized view: a view aggregates every inserted
block, so a span that reaches ``spans`` twice (redelivered under a new insert
token) is counted twice, while ``spans FINAL`` counts it once. The job keeps
the rollup equal to ``spans FINAL``:

1. fingerprint every (tenant, hour) of the raw table: row count and the sum
   of ``cityHash64(start_time, duration_ms)`` (one scan of two numeric columns,
   duplicates included; ``lookback_hours`` can bound it to recent hours);
2. the hours whose fingerprint differs from the one recorded in
   ``usage_hourly_state`` are dirty (new spans, redeliveries, merges, late
   arrivals for old hours: all change it);
3. each dirty hour is recomputed whole from ``spans FINAL`` and inserted
   with a newer version into the ReplacingMergeTree ``usage_hourly``;
   groups that vanished from the hour get a zero row at that version;
4. the fingerprint read in step 1 is recorded. It was read before the
   recomputation, so anything that landed in between makes the next pass
   see the hour dirty again: passes converge, concurrent passes too.

Readers use ``usage_hourly FINAL``; latency is a log-bucket histogram
(``sumMap`` merges it), so quantiles are within 2.5%, built from deduplicated rows.
A read never runs the job (N readers would run N fingerprint scans and recomputations):
with ``tail_hours`` it reads the rollup for the hours before the tenant's latest rolled-up
hour and aggregates ``spans FINAL`` itself from that hour on, at most ``tail_hours`` back,
so spans ingested a moment ago show at once and the background job does the rest.

Agents report spans they had to drop as ``agentledger.spans_lost`` spans (issue 21): both sides
add their counts to ``spans_lost`` of the agent's hour and leave calls, tokens, cost, errors and
latency to agent activity alone (``_PER_HOUR``).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import pyarrow as pa

from agentledger.pipeline.derive.base import Job, JobResult
from agentledger.pipeline.store import Store
from agentledger.schemas.analytics import (
    IS_SPANS_LOST_SQL,
    NOT_SPANS_LOST_SQL,
    SPANS_LOST_COUNT,
    USAGE_DIMENSIONS,
    USAGE_METRICS,
    USAGE_STATE_TABLE,
    USAGE_TABLE,
    latency_bucket_sql,
    latency_quantile_sql,
)

__all__ = [
    "READ_TAIL_HOURS",
    "UsageRollupJob",
    "UsageQuery",
    "tail_start",
    "usage_report",
    "usage_totals",
    "floor_hour",
    "UsageQueryError",
]

log = logging.getLogger(__name__)

READ_TAIL_HOURS = 48
"""Most hours of raw spans a usage read aggregates itself (the hours since the tenant's latest
rolled-up one): recent data is fresh at once and the read stays bounded; older hours, and late
arrivals in hours already rolled up, wait for the background pass."""

_KEY = "tenant, hour, principal_id, agent_name, provider, model, kind, tool_name"
_COLUMNS = (
    f"{_KEY}, calls, errors, input_tokens, output_tokens, cache_read_tokens, reasoning_tokens, "
    "cost_usd, duration_ms_sum, duration_ms_max, latency_ms_hist, spans_lost"
)
"""The columns of ``usage_hourly`` but the version; ``_PER_HOUR`` yields the same ones."""
_VALUES = f"{_COLUMNS}, computed_at"
_VERSION = "fromUnixTimestamp64Micro({version:Int64}, 'UTC')"

_ACT, _LOST = NOT_SPANS_LOST_SQL, IS_SPANS_LOST_SQL
_PER_HOUR = f"""
SELECT tenant, toDateTime(toStartOfHour(start_time), 'UTC') AS hour, principal_id, agent_name,
       provider, if(response_model != '', response_model, request_model) AS model, kind,
       tool_name, countIf({_ACT}) AS calls, countIf(status_code = 'ERROR' AND {_ACT}) AS errors,
       sumIf(input_tokens, {_ACT}) AS input_tokens, sumIf(output_tokens, {_ACT}) AS output_tokens,
       sumIf(cache_read_tokens, {_ACT}) AS cache_read_tokens,
       sumIf(reasoning_tokens, {_ACT}) AS reasoning_tokens,
       toFloat64(sumIf(cost_usd, {_ACT})) AS cost_usd,
       toFloat64(sumIf(duration_ms, {_ACT})) AS duration_ms_sum,
       toFloat64(maxIf(duration_ms, {_ACT})) AS duration_ms_max,
       CAST(sumMapIf(map({latency_bucket_sql("duration_ms")}, toUInt64(1)), {_ACT}),
            'Map(Int16, UInt64)') AS latency_ms_hist,
       sumIf(toUInt64OrZero(attributes['{SPANS_LOST_COUNT}']), {_LOST}) AS spans_lost
FROM spans FINAL"""
"""One hour's usage per group from deduplicated raw spans, for the job and the read tail alike.
Loss reports (agents' ``agentledger.spans_lost`` spans) add to ``spans_lost`` only: they are
bookkeeping, not calls, and carry no tokens, cost, errors or latency."""

_FRESH = f"""
INSERT INTO {USAGE_TABLE} ({_VALUES})
SETTINGS async_insert = 0
SELECT *, {_VERSION} FROM ({_PER_HOUR}
WHERE tenant = {{tenant:String}}
  AND start_time >= toDateTime64({{lo:UInt32}}, 9, 'UTC') AND start_time < toDateTime64({{hi:UInt32}}, 9, 'UTC')
  AND toUInt32(toStartOfHour(start_time)) IN {{hours:Array(UInt32)}}
GROUP BY {_KEY})
"""

_TOMBSTONES = f"""
INSERT INTO {USAGE_TABLE} ({_VALUES})
SETTINGS async_insert = 0
SELECT {_KEY}, 0, 0, 0, 0, 0, 0, 0, 0, 0, CAST(map(), 'Map(Int16, UInt64)'), 0, {_VERSION}
FROM {USAGE_TABLE}
WHERE tenant = {{tenant:String}} AND toUInt32(hour) IN {{hours:Array(UInt32)}}
GROUP BY {_KEY}
HAVING max(computed_at) < {_VERSION}
   AND (argMax(calls, computed_at) > 0 OR argMax(spans_lost, computed_at) > 0)
"""

_FINGERPRINTS = """
SELECT tenant, toUInt32(toStartOfHour(start_time)) AS h, count() AS n, sum(cityHash64(start_time, duration_ms)) AS fp
FROM spans
WHERE start_time >= toDateTime64({since:Int64}, 9, 'UTC')
GROUP BY tenant, h
"""

_STATE = f"""
SELECT tenant, toUInt32(hour) AS h, span_rows AS n, fingerprint AS fp FROM {USAGE_STATE_TABLE} FINAL
WHERE hour >= toDateTime({{since:Int64}}, 'UTC')
"""

_STATE_SCHEMA = pa.schema(
    [
        pa.field("tenant", pa.string()),
        pa.field("hour", pa.timestamp("s", tz="UTC")),
        pa.field("span_rows", pa.uint64()),
        pa.field("fingerprint", pa.uint64()),
        pa.field("computed_at", pa.timestamp("us", tz="UTC")),
    ]
)

_STATE_INPUT = pa.schema(
    [
        pa.field(f.name, pa.int64() if f.name in ("hour", "computed_at") else f.type)
        for f in _STATE_SCHEMA
    ]
)
"""``_STATE_SCHEMA`` with times as epoch integers (seconds, microseconds), as the job has them."""

_version_lock = threading.Lock()
_last_version = 0


def _next_version() -> int:
    """Microseconds since the epoch, strictly increasing within the process."""
    global _last_version
    with _version_lock:
        _last_version = max(_last_version + 1, time.time_ns() // 1000)
        return _last_version


class UsageRollupJob(Job):
    """Brings ``usage_hourly`` up to date with ``spans FINAL`` (see the module docstring).

    ``hours_per_insert`` bounds how many hours one recomputation statement
    covers (the first pass over a large table recomputes everything).
    """

    name = "usage_rollup"

    def __init__(self, hours_per_insert: int = 24 * 7, lookback_hours: int = 0) -> None:
        self.hours_per_insert = hours_per_insert
        self.lookback_hours = lookback_hours

    def dirty_hours(
        self, store: Store, now: datetime | None = None
    ) -> dict[str, list[tuple[int, int, int]]]:
        """Per tenant, the (hour, rows, fingerprint) whose rollup is stale, hours ascending
        (only hours within ``lookback_hours`` of ``now`` when that is set)."""
        since = 0
        if self.lookback_hours and now is not None:
            since = int(floor_hour(now).timestamp()) - self.lookback_hours * 3600
        state = {
            (r["tenant"], r["h"]): (r["n"], r["fp"])
            for r in store.query_rows(_STATE, {"since": since})
        }
        dirty: dict[str, list[tuple[int, int, int]]] = {}
        for r in store.query_rows(_FINGERPRINTS, {"since": since}):
            if state.get((r["tenant"], r["h"])) != (r["n"], r["fp"]):
                dirty.setdefault(r["tenant"], []).append((r["h"], r["n"], r["fp"]))
        for hours in dirty.values():
            hours.sort()
        return dirty

    def run(self, store: Store, now: datetime) -> JobResult:
        started = time.monotonic()
        dirty = self.dirty_hours(store, now)
        recomputed = 0
        for tenant, hours in dirty.items():
            for start in range(0, len(hours), self.hours_per_insert):
                chunk = hours[start : start + self.hours_per_insert]
                self._recompute(store, tenant, chunk)
                recomputed += len(chunk)
        seconds = time.monotonic() - started
        if recomputed:
            log.info("usage rollup: recomputed %d hours in %.2fs", recomputed, seconds)
        return JobResult(
            self.name,
            rows_written=recomputed,
            seconds=seconds,
            info={"hours_recomputed": recomputed, "tenants": sorted(dirty)},
        )

    def _recompute(self, store: Store, tenant: str, chunk: list[tuple[int, int, int]]) -> None:
        version = _next_version()
        hours = [h for h, _, _ in chunk]
        params = {
            "tenant": tenant,
            "hours": hours,
            "lo": hours[0],
            "hi": hours[-1] + 3600,
            "version": version,
        }
        store.command(_FRESH, params)
        store.command(_TOMBSTONES, {"tenant": tenant, "hours": hours, "version": version})
        _, rows, fps = zip(*chunk)
        columns = [[tenant] * len(chunk), hours, list(rows), list(fps), [version] * len(chunk)]
        state = pa.table(columns, schema=_STATE_INPUT).cast(_STATE_SCHEMA)
        store.insert_arrow(USAGE_STATE_TABLE, state)


# --- queries ----------------------------------------------------------------------------------


class UsageQueryError(ValueError):
    """A usage query names an unknown dimension, metric or interval."""


def floor_hour(t: datetime) -> datetime:
    """``t`` in UTC, truncated to the hour (the rollup's granularity)."""
    t = t.astimezone(timezone.utc) if t.tzinfo else t.replace(tzinfo=timezone.utc)
    return t.replace(minute=0, second=0, microsecond=0)


def _ceil_hour(t: datetime) -> datetime:
    f = floor_hour(t)
    t = t.astimezone(timezone.utc) if t.tzinfo else t.replace(tzinfo=timezone.utc)
    return f if f == t else f + timedelta(hours=1)


@dataclass
class UsageQuery:
    """One usage question over the rollup.

    The range is widened to whole hours (``start`` floored, ``end`` ceiled).
    ``group_by`` names dimensions (``USAGE_DIMENSIONS`` keys); ``interval``
    adds a time bucket (a time series); ``top`` keeps the N groups with the
    highest ``order_by`` over the whole range; ``filters`` restrict
    dimensions to one value each.
    """

    start: datetime
    end: datetime
    group_by: tuple[str, ...] = ()
    interval: str | None = None  # "hour" or "day" (``validate``)
    top: int | None = 20
    order_by: str = "cost_usd"
    filters: dict[str, str] = field(default_factory=dict)

    def validate(self) -> None:
        unknown = [d for d in (*self.group_by, *self.filters) if d not in USAGE_DIMENSIONS]
        if unknown:
            raise UsageQueryError(f"unknown dimension(s) {unknown}; use {sorted(USAGE_DIMENSIONS)}")
        if len(set(self.group_by)) != len(self.group_by):
            raise UsageQueryError(f"dimension repeated in {list(self.group_by)}")
        if self.order_by not in USAGE_METRICS:
            raise UsageQueryError(
                f"unknown metric {self.order_by!r}; use one of {list(USAGE_METRICS)}"
            )
        if self.interval not in (None, "hour", "day"):
            raise UsageQueryError(f"interval must be hour or day, not {self.interval!r}")
        if self.top is not None and self.top < 1:
            raise UsageQueryError("top must be at least 1")
        if self.end <= self.start:
            raise UsageQueryError("end must be after start")


_AGGREGATES = """
    sum(calls) AS s_calls, sum(errors) AS s_errors,
    sum(input_tokens) AS s_input_tokens, sum(output_tokens) AS s_output_tokens,
    sum(cost_usd) AS s_cost_usd, sum(duration_ms_sum) AS s_duration,
    sumMap(latency_ms_hist) AS s_hist, sum(spans_lost) AS s_spans_lost
"""

_OUTER = f"""
    s_calls AS calls, s_errors AS errors, if(s_calls > 0, s_errors / s_calls, 0) AS error_rate,
    s_input_tokens AS input_tokens, s_output_tokens AS output_tokens,
    s_input_tokens + s_output_tokens AS tokens, s_cost_usd AS cost_usd,
    {latency_quantile_sql("s_hist", 0.5)} AS latency_p50_ms, {latency_quantile_sql("s_hist", 0.95)} AS latency_p95_ms,
    {latency_quantile_sql("s_hist", 0.99)} AS latency_p99_ms,
    if(s_calls > 0, s_duration / s_calls, 0) AS latency_avg_ms, s_spans_lost AS spans_lost
"""


def _where(q: UsageQuery, params: dict[str, Any]) -> str:
    params.update(lo=int(floor_hour(q.start).timestamp()), hi=int(_ceil_hour(q.end).timestamp()))
    cond = [
        "tenant = {tenant:String}",
        "hour >= toDateTime({lo:UInt32}, 'UTC')",
        "hour < toDateTime({hi:UInt32}, 'UTC')",
    ]
    for i, (dim, value) in enumerate(sorted(q.filters.items())):
        cond.append(f"{USAGE_DIMENSIONS[dim]} = {{f{i}:String}}")
        params[f"f{i}"] = value
    return " AND ".join(cond)


_LATEST_ROLLED = f"""
SELECT toUInt32(max(hour)) AS h, count() AS n FROM {USAGE_STATE_TABLE} FINAL
WHERE tenant = {{tenant:String}}
"""

_TAIL_SOURCE = f"""(
SELECT {_COLUMNS} FROM {USAGE_TABLE} FINAL
WHERE tenant = {{tenant:String}} AND hour < toDateTime({{tail:UInt32}}, 'UTC')
UNION ALL
{_PER_HOUR}
WHERE tenant = {{tenant:String}}
  AND start_time >= toDateTime64({{tail:UInt32}}, 9, 'UTC')
  AND start_time < toDateTime64({{hi:UInt32}}, 9, 'UTC')
GROUP BY {_KEY}
)"""
"""The rollup before the ``tail`` hour, the raw spans (deduplicated, aggregated per hour like
the job does) from it on: each hour comes from one side only, so nothing is counted twice."""


def tail_start(store: Store, tenant: str, tail_hours: int, now: datetime | None = None) -> int:
    """The first hour (epoch seconds) a read takes from raw spans: the tenant's latest
    rolled-up hour (spans may have reached it since), but no more than ``tail_hours`` before
    the current hour."""
    current = int(floor_hour(now or datetime.now(timezone.utc)).timestamp())
    earliest = current - tail_hours * 3600
    rows = store.query_rows(_LATEST_ROLLED, {"tenant": tenant})
    latest = int(rows[0]["h"]) if rows and rows[0]["n"] else 0
    return max(latest, earliest)


def usage_report(
    store: Store,
    tenant: str,
    q: UsageQuery,
    *,
    tail_hours: int | None = None,
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """Rows of dimension values (and ``bucket`` for a series) with every metric of ``USAGE_METRICS``.

    Without ``interval``: the top groups by ``order_by``, descending. With it:
    the series of the top groups, ordered by bucket then ``order_by``.
    ``tail_hours``: also count the spans not rolled up yet, from raw spans, over at most
    that many recent hours (:func:`tail_start`); None reads the rollup alone.
    """
    q.validate()
    params: dict[str, Any] = {"tenant": tenant}
    where = _where(q, params)
    source = f"{USAGE_TABLE} FINAL"
    if tail_hours is not None:
        tail = max(tail_start(store, tenant, tail_hours, now), params["lo"])
        if tail < params["hi"]:
            params["tail"] = tail
            source = _TAIL_SOURCE
    dims = [f"{USAGE_DIMENSIONS[d]} AS {d}" for d in q.group_by]
    names = list(q.group_by)
    bucket = {"hour": "hour", "day": "toStartOfDay(hour)"}.get(q.interval or "")
    inner_select = ", ".join([*dims, *([f"{bucket} AS t_bucket"] if bucket else []), _AGGREGATES])
    inner_group = ", ".join([*names, *(["t_bucket"] if bucket else [])])
    outer_cols = ", ".join(
        [*names, *([_ISO.format("t_bucket") + " AS bucket"] if bucket else []), _OUTER]
    )
    top_filter = ""
    if q.top is not None and names and bucket:
        # series of the top-N groups over the whole range
        params["top"] = int(q.top)
        key = f"({', '.join(USAGE_DIMENSIONS[d] for d in names)})"
        top_filter = (
            f" AND {key} IN (SELECT {', '.join(USAGE_DIMENSIONS[d] for d in names)} FROM ("
            f"SELECT {', '.join(USAGE_DIMENSIONS[d] for d in names)}, {_AGGREGATES} FROM {source} "
            f"WHERE {where} GROUP BY {', '.join(USAGE_DIMENSIONS[d] for d in names)}) "
            f"WHERE s_calls > 0 OR s_spans_lost > 0 ORDER BY {_SORT[q.order_by]} DESC LIMIT {{top:UInt32}})"
        )
    order = f"t_bucket, {q.order_by} DESC" if bucket else f"{q.order_by} DESC"
    limit = ""
    if q.top is not None and not bucket:
        params["top"] = int(q.top)
        limit = " LIMIT {top:UInt32}"
    sql = (
        f"SELECT {outer_cols} FROM (SELECT {inner_select} FROM {source} "
        f"WHERE {where}{top_filter}{(' GROUP BY ' + inner_group) if inner_group else ''}) "
        f"WHERE calls > 0 OR spans_lost > 0 ORDER BY {order}{', ' + ', '.join(names) if names else ''}{limit}"
    )
    return [_clean(r) for r in store.query_rows(sql, params)]


_ISO = "formatDateTime({}, '%Y-%m-%dT%H:%i:%SZ', 'UTC')"
"""A DateTime as ISO 8601 text (what the API returns for time buckets)."""

_SORT = {
    "calls": "s_calls",
    "errors": "s_errors",
    "error_rate": "if(s_calls > 0, s_errors / s_calls, 0)",
    "input_tokens": "s_input_tokens",
    "output_tokens": "s_output_tokens",
    "tokens": "s_input_tokens + s_output_tokens",
    "cost_usd": "s_cost_usd",
    "latency_p50_ms": latency_quantile_sql("s_hist", 0.5),
    "latency_p95_ms": latency_quantile_sql("s_hist", 0.95),
    "latency_p99_ms": latency_quantile_sql("s_hist", 0.99),
    "latency_avg_ms": "if(s_calls > 0, s_duration / s_calls, 0)",
    "spans_lost": "s_spans_lost",
}


def usage_totals(
    store: Store, tenant: str, start: datetime, end: datetime, **filters: str
) -> dict[str, Any]:
    """One row of every metric over the range (all groups together)."""
    rows = usage_report(store, tenant, UsageQuery(start, end, filters=dict(filters), top=None))
    if rows:
        return rows[0]
    return {m: 0 for m in USAGE_METRICS}


def _clean(row: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in row.items():
        if isinstance(value, float) and value != value:  # NaN: no latency known
            value = None
        elif key == "bucket" and isinstance(value, datetime):
            value = (value if value.tzinfo else value.replace(tzinfo=timezone.utc)).isoformat()
        elif hasattr(value, "isoformat") and hasattr(value, "value"):  # pandas Timestamp
            value = value.isoformat()
        out[key] = value
    return out
