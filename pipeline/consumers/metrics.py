"""The pipeline's metrics endpoint: Prometheus text at ``/metrics``, JSON at ``/status``,
liveness at ``/healthz`` (stdlib HTTP server in a daemon thread).

The figures are read when scraped, from the counters the consumer loop keeps anyway
(``BatchStats``) and from the group-lag poller (``lag.GroupLag``): the loop itself never calls
into prometheus-client. Each server has a registry of its own rather than the library's global
one, so a process (or a test) can run several and none reports another's figures.

Series (all ``agentledger_pipeline_``): ``records_total`` (consumed), ``spans_stored_total``,
``spans_unchanged_total``, ``span_conflicts_total``, ``batches_total``, ``dead_letters_total``,
``store_retries_total``, ``commit_failures_total``, ``batch_seconds`` (histogram),
``last_batch_seconds``, ``store_available``, ``spans_per_second``; per partition
``lag_records``, ``committed_offset`` and ``end_offset`` (the group's, labelled ``group``,
``topic``, ``partition``), ``lag_age_seconds``, and ``fetch_lag_records`` (this member's
assigned partitions, from its fetch position).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from agentledger.pipeline.consumers.lag import GroupLag

__all__ = [
    "HEALTH_PATH",
    "METRICS_PATH",
    "STATUS_PATH",
    "MetricsServer",
    "StatusCollector",
    "consumer_status",
    "prometheus_text",
]

METRICS_PATH = "/metrics"
STATUS_PATH = "/status"
HEALTH_PATH = "/healthz"
PREFIX = "agentledger_pipeline_"

_COUNTERS = (
    ("records", "records", "Kafka records consumed (read from the spans topic)."),
    ("spans", "spans_stored", "Spans inserted into the store."),
    ("unchanged", "spans_unchanged", "Spans re-sent unchanged: dropped, stored once."),
    (
        "conflicts",
        "span_conflicts",
        "Spans re-sent with a stored span's ids but other content, kept as conflicts.",
    ),
    ("batches", "batches", "Batches inserted and committed."),
    ("dead_letters", "dead_letters", "Records sent to the dead-letter topic."),
    ("store_retries", "store_retries", "Inserts retried while the store was unavailable."),
    ("commit_failures", "commit_failures", "Offset commits that failed (records re-read)."),
)
_GAUGES = (
    ("last_batch_seconds", "Duration of the last batch, poll end to commit."),
    ("spans_per_second", "Spans stored per second since start."),
)
_PARTITION = ["group", "topic", "partition"]


class StatusCollector(Collector):
    """Renders a ``consumer_status`` dict, taken afresh at every scrape, as metric families."""

    def __init__(self, status: Callable[[], dict[str, Any]]) -> None:
        self._status = status

    def collect(self) -> Iterable[Metric]:
        status = self._status()
        for key, name, help_ in _COUNTERS:
            yield CounterMetricFamily(PREFIX + name, help_, value=status.get(key, 0))
        for key, help_ in _GAUGES:
            yield GaugeMetricFamily(PREFIX + key, help_, value=status[key])
        yield GaugeMetricFamily(
            PREFIX + "store_available",
            "1 when the last insert succeeded.",
            value=int(status["store_available"]),
        )
        yield _histogram(status["batch_seconds"])
        yield from _group_lag(status)
        fetch = GaugeMetricFamily(
            PREFIX + "fetch_lag_records",
            "Records between this member's fetch position and the end, per assigned partition.",
            labels=["topic", "partition"],
        )
        for tp, lag in sorted(status["lag"].items()):
            topic, _, partition = tp.rpartition("/")
            fetch.add_metric([topic, partition], lag)
        yield fetch


def _histogram(batches: dict[str, Any]) -> HistogramMetricFamily:
    cumulative, buckets = 0, []
    for bound, count in zip([*batches["bounds"], float("inf")], batches["counts"], strict=True):
        cumulative += count
        buckets.append(("+Inf" if bound == float("inf") else repr(float(bound)), cumulative))
    return HistogramMetricFamily(
        PREFIX + "batch_seconds",
        "Duration of each batch, poll end to commit (insert, dead letters, offset commit).",
        buckets=buckets,
        sum_value=batches["sum"],
    )


def _group_lag(status: dict[str, Any]) -> Iterable[Metric]:
    lag = GaugeMetricFamily(
        PREFIX + "lag_records",
        "Records past the group's committed offset, per partition: the backlog not yet stored.",
        labels=_PARTITION,
    )
    committed = GaugeMetricFamily(
        PREFIX + "committed_offset",
        "The group's committed offset (the next record it reads), per partition.",
        labels=_PARTITION,
    )
    end = GaugeMetricFamily(
        PREFIX + "end_offset",
        "The offset the next record written to the partition gets.",
        labels=_PARTITION,
    )
    for row in status["group_lag"]:
        labels = [row["group"], row["topic"], str(row["partition"])]
        lag.add_metric(labels, row["lag"])
        committed.add_metric(labels, row["committed"])
        end.add_metric(labels, row["end"])
    yield from (lag, committed, end)
    if status["lag_age_seconds"] is not None:
        yield GaugeMetricFamily(
            PREFIX + "lag_age_seconds",
            "Seconds since the group lag was last read from Kafka (grows while it cannot be).",
            value=status["lag_age_seconds"],
        )


def prometheus_text(status: dict[str, Any]) -> str:
    """``status`` in the Prometheus text format."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StatusCollector(lambda: status))
    return generate_latest(registry).decode()


class MetricsServer:
    """Serves ``status()`` over HTTP, and runs the group-lag poller (``lag``) while it serves."""

    def __init__(
        self,
        status: Callable[[], dict[str, Any]],
        host: str,
        port: int,
        *,
        lag: GroupLag | None = None,
    ) -> None:
        self.status = status
        self.lag = lag
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(StatusCollector(status))
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server naming)
                path = self.path.split("?")[0]
                if path == HEALTH_PATH:
                    self._send(200, "application/json", b'{"status":"ok"}')
                elif path == STATUS_PATH:
                    self._send(200, "application/json", json.dumps(outer.status()).encode())
                elif path == METRICS_PATH:
                    encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
                    self._send(200, content_type, encoder(outer.registry))
                else:
                    self._send(404, "text/plain", b"not found")

            def _send(self, code: int, ctype: str, body: bytes) -> None:
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:  # quiet
                pass

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="agentledger-metrics", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> MetricsServer:
        if self.lag is not None:
            self.lag.start()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self.lag is not None:
            self.lag.stop()


def consumer_status(stats: Any, lag: GroupLag | None = None) -> dict[str, Any]:
    """The consumer's counters (``ConsumerStats``) and the group lag, as JSON-ready values."""
    elapsed = max(1e-9, time.time() - stats.started_at)
    histogram = stats.batch_seconds
    snapshot = lag.snapshot if lag is not None else None
    age = snapshot.age_seconds() if snapshot is not None else None
    return {
        "records": stats.records,
        "spans": stats.spans,
        "unchanged": getattr(stats, "unchanged", 0),
        "conflicts": getattr(stats, "conflicts", 0),
        "batches": stats.batches,
        "dead_letters": stats.dead_letters,
        "store_retries": stats.store_retries,
        "commit_failures": stats.commit_failures,
        "last_batch_seconds": round(stats.last_batch_seconds, 4),
        "last_batch_spans": getattr(stats, "last_batch_spans", 0),
        "batch_seconds": {
            "bounds": list(histogram.bounds),
            "counts": list(histogram.counts),
            "sum": round(histogram.total, 6),
        },
        "store_available": stats.store_available,
        "spans_per_second": round(getattr(stats, "spans", 0) / elapsed, 1),
        "lag": dict(stats.lag),
        "group_lag": [
            {
                "group": group,
                "topic": p.topic,
                "partition": p.partition,
                "committed": p.committed,
                "end": p.end,
                "lag": p.lag,
            }
            for group, p in (snapshot.partitions if snapshot is not None else ())
        ],
        "lag_age_seconds": None if age is None else round(age, 3),
        "uptime_seconds": round(elapsed, 1),
    }
