"""The anomaly-detection job, the ``anomalies`` table it writes, and the reader.

One pass: bring the usage rollup up to date, run every detector for every
tenant with data in the window, write the anomalies, post the new ones to
the alert receivers (``webhook.py``). Rows are keyed by a deterministic id (``Anomaly.anomaly_id``) in
a ReplacingMergeTree, and ``first_detected`` is carried over from the row
already stored, so a second pass over the same data changes nothing that a
reader of ``anomalies FINAL`` can see, and the webhook hears of each id once
per process that detects it first.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timezone
from typing import Any

import pyarrow as pa

from agentledger.pipeline.derive.base import Job, JobResult
from agentledger.pipeline.derive.detectors import DETECTORS, Anomaly, Context
from agentledger.pipeline.derive.labels import anomaly_states, mute_key, muted_keys
from agentledger.pipeline.derive.settings import JobSettings
from agentledger.pipeline.derive.usage import UsageRollupJob, floor_hour
from agentledger.pipeline.derive.webhook import Notifier
from agentledger.pipeline.store import Store
from agentledger.schemas.analytics import ANOMALIES_TABLE, USAGE_TABLE

__all__ = ["AnomalyDetectionJob", "list_anomalies", "write_anomalies", "anomaly_record"]

log = logging.getLogger(__name__)

_ARROW = pa.schema(
    [
        pa.field("tenant", pa.string()),
        pa.field("window_start", pa.timestamp("s", tz="UTC")),
        pa.field("window_end", pa.timestamp("s", tz="UTC")),
        pa.field("type", pa.string()),
        pa.field("anomaly_id", pa.string()),
        pa.field("metric", pa.string()),
        pa.field("dimensions", pa.map_(pa.string(), pa.string())),
        pa.field("score", pa.float64()),
        pa.field("expected", pa.float64()),
        pa.field("observed", pa.float64()),
        pa.field("example_trace_ids", pa.list_(pa.string())),
        pa.field("detail", pa.string()),
        pa.field("first_detected", pa.timestamp("ms", tz="UTC")),
        pa.field("detected_at", pa.timestamp("ms", tz="UTC")),
    ]
)


def anomaly_record(a: Anomaly, first_detected: datetime, detected_at: datetime) -> dict[str, Any]:
    """An anomaly as a JSON-friendly row (what the table, API, CLI and webhook show)."""
    return {
        "anomaly_id": a.anomaly_id,
        "tenant": a.tenant,
        "type": a.type,
        "metric": a.metric,
        "dimensions": dict(sorted(a.dimensions.items())),
        "window_start": a.window_start.isoformat(),
        "window_end": a.window_end.isoformat(),
        "score": a.score,
        "expected": a.expected,
        "observed": a.observed,
        "example_trace_ids": list(a.example_trace_ids),
        "detail": a.detail,
        "first_detected": first_detected.isoformat(),
        "detected_at": detected_at.isoformat(),
    }


def write_anomalies(
    store: Store, anomalies: list[Anomaly], detected_at: datetime
) -> list[dict[str, Any]]:
    """Store ``anomalies`` (replacing rows with the same id); return the records of those never stored before."""
    if not anomalies:
        return []
    unique = {a.anomaly_id: a for a in anomalies}
    known: dict[str, datetime] = {}
    for tenant in sorted({a.tenant for a in unique.values()}):
        ids = [i for i, a in unique.items() if a.tenant == tenant]
        low = min(int(a.window_start.timestamp()) for a in unique.values() if a.tenant == tenant)
        for r in store.query_rows(
            f"SELECT anomaly_id, min(first_detected) AS first FROM {ANOMALIES_TABLE} "
            "WHERE tenant = {tenant:String} AND window_start >= toDateTime({low:UInt32}, 'UTC') "
            "AND anomaly_id IN {ids:Array(String)} GROUP BY anomaly_id",
            {"tenant": tenant, "low": low, "ids": ids},
        ):
            first = r["first"]
            known[r["anomaly_id"]] = first if first.tzinfo else first.replace(tzinfo=timezone.utc)
    rows = [anomaly_record(a, known.get(i, detected_at), detected_at) for i, a in unique.items()]
    table = pa.table(
        {
            "tenant": [a.tenant for a in unique.values()],
            "window_start": [a.window_start for a in unique.values()],
            "window_end": [a.window_end for a in unique.values()],
            "type": [a.type for a in unique.values()],
            "anomaly_id": list(unique),
            "metric": [a.metric for a in unique.values()],
            "dimensions": [list(sorted(a.dimensions.items())) for a in unique.values()],
            "score": [float(a.score) for a in unique.values()],
            "expected": [float(a.expected) for a in unique.values()],
            "observed": [float(a.observed) for a in unique.values()],
            "example_trace_ids": [list(a.example_trace_ids) for a in unique.values()],
            "detail": [a.detail for a in unique.values()],
            "first_detected": [known.get(i, detected_at) for i in unique],
            "detected_at": [detected_at] * len(unique),
        },
        schema=_ARROW,
    )
    store.insert_arrow(ANOMALIES_TABLE, table)
    return [r for r in rows if r["anomaly_id"] not in known]


class AnomalyDetectionJob(Job):
    """One detection pass over every tenant (or one), preceded by the usage rollup."""

    name = "anomaly_detection"

    def __init__(
        self,
        settings: JobSettings | None = None,
        *,
        tenant: str | None = None,
        detectors: list[str] | None = None,
        refresh_rollup: bool = True,
    ) -> None:
        self.settings = settings or JobSettings()
        self.tenant = tenant
        unknown = set(detectors or ()) - set(DETECTORS)
        if unknown:
            raise ValueError(f"unknown detectors {sorted(unknown)}; known: {sorted(DETECTORS)}")
        self.detectors = detectors or list(DETECTORS)
        self.refresh_rollup = refresh_rollup
        self._passes = 0
        s = self.settings
        self.notifier = (
            Notifier(
                s.webhook_url.get_secret_value() if s.webhook_url else None,
                secret=s.webhook_secret.get_secret_value() if s.webhook_secret else None,
                otlp_logs_url=s.alert_otlp_logs_url,
                max_per_minute=s.alert_max_per_minute,
                timeout=s.webhook_timeout_s,
            )
            if s.webhook_url or s.alert_otlp_logs_url
            else None
        )
        """Delivers new anomalies (signed webhook, OTLP logs), de-duplicated and rate-limited."""

    def _tenants(self, store: Store, now: datetime) -> list[str]:
        if self.tenant is not None:
            return [self.tenant]
        start = int(floor_hour(now).timestamp()) - self.settings.window_hours * 3600
        rows = store.query_rows(
            f"SELECT DISTINCT tenant FROM {USAGE_TABLE} WHERE hour >= toDateTime({{s:UInt32}}, 'UTC') ORDER BY tenant",
            {"s": start},
        )
        return [r["tenant"] for r in rows]

    def run(self, store: Store, now: datetime) -> JobResult:
        started = time.monotonic()
        timings: dict[str, float] = {}
        if self.refresh_rollup:
            # each pass makes the detection range exact; every Nth pass (and the first) the whole table
            s = self.settings
            full = self._passes % s.rollup_full_every == 0
            lookback = (
                0 if full else (s.rollup_lookback_hours or s.window_hours + s.baseline_hours + 1)
            )
            rollup = UsageRollupJob(lookback_hours=lookback)
            timings["usage_rollup"] = rollup.run(store, now).seconds
        found: list[Anomaly] = []
        tests: dict[str, int] = {}
        for tenant in self._tenants(store, now):
            ctx = Context(store, tenant, now, self.settings)
            for name in self.detectors:
                t0 = time.monotonic()
                result = DETECTORS[name](ctx)
                timings[name] = timings.get(name, 0.0) + time.monotonic() - t0
                tests[name] = tests.get(name, 0) + result.tests
                found.extend(result.anomalies)
        clock = datetime.now(timezone.utc)
        detected_at = clock.replace(
            microsecond=clock.microsecond // 1000 * 1000
        )  # the column keeps milliseconds
        new = write_anomalies(store, found, detected_at)
        muted = 0
        if new and self.notifier is not None:
            keys = {t: muted_keys(store, t, now) for t in {a["tenant"] for a in new}}
            loud = [a for a in new if mute_key(a["type"], a["dimensions"]) not in keys[a["tenant"]]]
            muted = len(new) - len(loud)
            self.notifier.notify(loud)
        self._passes += 1
        by_type: dict[str, int] = {}
        for a in {a.anomaly_id: a for a in found}.values():
            by_type[a.type] = by_type.get(a.type, 0) + 1
        seconds = time.monotonic() - started
        if found:
            log.info(
                "anomaly detection: %d anomalies (%d new) in %.2fs", len(found), len(new), seconds
            )
        return JobResult(
            self.name,
            rows_written=len(found),
            seconds=seconds,
            info={
                "anomalies": by_type,
                "new": new,
                "muted": muted,
                "tests": tests,
                "timings": {k: round(v, 4) for k, v in timings.items()},
            },
        )


def list_anomalies(
    store: Store,
    tenant: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    type: str | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Stored anomalies, newest window first, strongest first within a window."""
    cond = ["tenant = {tenant:String}"]
    params: dict[str, Any] = {"tenant": tenant, "limit": int(limit)}
    if since is not None:
        cond.append("window_end > toDateTime({since:UInt32}, 'UTC')")
        params["since"] = int(since.timestamp())
    if until is not None:
        cond.append("window_start < toDateTime({until:UInt32}, 'UTC')")
        params["until"] = int(until.timestamp())
    if type:
        cond.append("type = {type:String}")
        params["type"] = type
    rows = store.query_rows(
        f"""
        SELECT anomaly_id, tenant, type, metric, dimensions, window_start, window_end, score, expected, observed,
               example_trace_ids, detail, first_detected, detected_at
        FROM {ANOMALIES_TABLE} FINAL
        WHERE {" AND ".join(cond)}
        ORDER BY window_start DESC, score DESC, anomaly_id
        LIMIT {{limit:UInt32}}
        """,
        params,
    )
    out = []
    for r in rows:
        r["dimensions"] = dict(sorted(dict(r["dimensions"]).items()))
        r["example_trace_ids"] = list(r["example_trace_ids"])
        for key in ("window_start", "window_end", "first_detected", "detected_at"):
            v = r[key]
            if isinstance(v, int):  # DateTime may arrive as epoch seconds
                v = datetime.fromtimestamp(v, tz=timezone.utc)
            if isinstance(v, datetime):
                r[key] = (v if v.tzinfo else v.replace(tzinfo=timezone.utc)).isoformat()
            elif hasattr(v, "isoformat"):
                r[key] = v.isoformat()
        out.append(r)
    states = anomaly_states(store, tenant, out) if out else {}
    for r in out:
        r.update(states[r["anomaly_id"]])
    return out
