"""The pipeline's metrics endpoint: Prometheus text at ``/metrics``, JSON at ``/status``,
liveness at ``/healthz`` (stdlib HTTP server in a daemon thread)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["MetricsServer", "consumer_status", "METRICS_PATH", "STATUS_PATH", "HEALTH_PATH"]

METRICS_PATH = "/metrics"
STATUS_PATH = "/status"
HEALTH_PATH = "/healthz"


def _prometheus(status: dict[str, Any]) -> str:
    lines = []

    def metric(name: str, kind: str, help_: str, value: Any, labels: str = "") -> None:
        lines.append(f"# HELP agentledger_pipeline_{name} {help_}")
        lines.append(f"# TYPE agentledger_pipeline_{name} {kind}")
        lines.append(f"agentledger_pipeline_{name}{labels} {value}")

    metric("records_total", "counter", "Kafka records consumed.", status["records"])
    metric("spans_stored_total", "counter", "Spans inserted into the store.", status["spans"])
    metric("batches_total", "counter", "Batches inserted and committed.", status["batches"])
    metric(
        "span_conflicts_total",
        "counter",
        "Spans re-sent with a stored span's ids but other content, kept as conflicts.",
        status.get("conflicts", 0),
    )
    metric(
        "dead_letters_total",
        "counter",
        "Records sent to the dead-letter topic.",
        status["dead_letters"],
    )
    metric(
        "store_retries_total",
        "counter",
        "Inserts retried while the store was unavailable.",
        status["store_retries"],
    )
    metric(
        "commit_failures_total",
        "counter",
        "Offset commits that failed (records re-read).",
        status["commit_failures"],
    )
    metric(
        "last_batch_seconds", "gauge", "Duration of the last batch.", status["last_batch_seconds"]
    )
    metric(
        "store_available",
        "gauge",
        "1 when the last insert succeeded.",
        int(status["store_available"]),
    )
    metric(
        "spans_per_second",
        "gauge",
        "Spans stored per second since start.",
        status["spans_per_second"],
    )
    lines.append(
        "# HELP agentledger_pipeline_lag_records Records behind the end of each partition."
    )
    lines.append("# TYPE agentledger_pipeline_lag_records gauge")
    for tp, lag in sorted(status["lag"].items()):
        topic, _, partition = tp.rpartition("/")
        lines.append(
            f'agentledger_pipeline_lag_records{{topic="{topic}",partition="{partition}"}} {lag}'
        )
    return "\n".join(lines) + "\n"


class MetricsServer:
    """Serves ``status()`` (a dict of counters) over HTTP."""

    def __init__(self, status: Callable[[], dict[str, Any]], host: str, port: int) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server naming)
                path = self.path.split("?")[0]
                if path == HEALTH_PATH:
                    self._send(200, "application/json", b'{"status":"ok"}')
                elif path == STATUS_PATH:
                    self._send(200, "application/json", json.dumps(outer.status()).encode())
                elif path == METRICS_PATH:
                    self._send(
                        200, "text/plain; version=0.0.4", _prometheus(outer.status()).encode()
                    )
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

        self.status = status
        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="agentledger-metrics", daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> MetricsServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def consumer_status(stats: Any) -> dict[str, Any]:
    elapsed = max(1e-9, time.time() - stats.started_at)
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
        "last_batch_spans": stats.last_batch_spans,
        "store_available": stats.store_available,
        "spans_per_second": round(stats.spans / elapsed, 1),
        "lag": dict(stats.lag),
        "uptime_seconds": round(elapsed, 1),
    }
