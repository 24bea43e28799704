"""The collector's own metrics, Prometheus text at ``GET /metrics`` (permission ``metrics``).

Series (all ``agentledger_collector_``):

* ``requests_total{method, route, status}`` and ``request_duration_seconds{method, route}``:
  every HTTP request, by route template (``unmatched`` for unknown paths, so a scanner cannot
  grow the label set), counted by an ASGI middleware outside every other one, so a 413 of the
  body limit or a 429 of the export gate is counted like any answer;
* ``spans_accepted_total``: spans the sink made durable (Kafka acknowledged them, or the
  embedded store inserted them) in requests answered 200;
* ``spans_rejected_total{reason}``: spans the sink did not take as sent: ``unavailable``
  (503, the client retries), ``too_large`` (413), ``refused`` (400), ``conflict`` (re-sent
  with a stored span's ids but other content, kept aside) and ``foreign_agent`` (a key bound
  to another agent). Invalid spans the collector drops before the sink show in the OTLP
  partial success only; requests refused whole show in ``requests_total`` by status;
* ``records_produced_total``: Kafka records acknowledged (``agentledger collector`` only: one
  per trace of each request).

Counters are per process and carry no tenant: the endpoint shows volumes, never whose. Each app
has a registry of its own, not prometheus-client's global one, so several apps in one process
(tests, the demo) keep separate figures.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from fastapi import APIRouter, FastAPI, Request, Response
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agentledger.collector.services import EdgeServices
from agentledger.pipeline.sinks import IngestBatch, Sink, SinkRejected, SinkUnavailable
from agentledger.pipeline.sinks.base import SinkResult

__all__ = [
    "METRICS_PATH",
    "CollectorMetrics",
    "MeteredSink",
    "RequestMetrics",
    "install_metrics",
    "router",
]

METRICS_PATH = "/metrics"
PREFIX = "agentledger_collector_"
UNMATCHED = "unmatched"
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
"""An ask answers in milliseconds; an export waits for Kafka's acks=all or the store's insert."""

router = APIRouter(tags=["health"])


class CollectorMetrics:
    """The counters of one collector app, in a registry of their own."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            PREFIX + "requests",
            "HTTP requests answered, by route template, method and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.duration = Histogram(
            PREFIX + "request_duration_seconds",
            "Time from request to the end of the answer, by route template and method.",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.spans_accepted = Counter(
            PREFIX + "spans_accepted",
            "Spans made durable by the sink (Kafka acknowledged, or the store inserted).",
            registry=self.registry,
        )
        self.spans_rejected = Counter(
            PREFIX + "spans_rejected",
            "Spans the sink did not take as sent, by reason.",
            ["reason"],
            registry=self.registry,
        )

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.duration.labels(method, route).observe(seconds)


class _Produced(Collector):
    """Kafka records the sink had acknowledged, read from the sink when scraped."""

    def __init__(self, sink: Sink) -> None:
        self._sink = sink

    def collect(self) -> Iterable[Metric]:
        sent = getattr(self._sink, "records_sent", None)
        if isinstance(sent, int):
            yield CounterMetricFamily(
                PREFIX + "records_produced",
                "Kafka records acknowledged by the brokers (acks=all), one per trace of a request.",
                value=sent,
            )


class MeteredSink(Sink):
    """Counts what the wrapped sink takes and refuses; changes nothing of what it does."""

    def __init__(self, inner: Sink, metrics: CollectorMetrics) -> None:
        self.inner = inner
        self._metrics = metrics

    def write(self, batch: IngestBatch) -> SinkResult | None:
        rejected = self._metrics.spans_rejected
        try:
            result = self.inner.write(batch)
        except SinkUnavailable:
            rejected.labels("unavailable").inc(batch.span_count)
            raise
        except SinkRejected as exc:
            rejected.labels("too_large" if exc.status == 413 else "refused").inc(batch.span_count)
            raise
        refused = result.rejected if result is not None else 0
        foreign = result.foreign_agent if result is not None else 0
        self._metrics.spans_accepted.inc(batch.span_count - refused)
        if foreign:
            rejected.labels("foreign_agent").inc(foreign)
        if refused - foreign:
            rejected.labels("conflict").inc(refused - foreign)
        return result

    def ready(self) -> bool:
        return self.inner.ready()

    def close(self) -> None:
        self.inner.close()


class RequestMetrics:
    """ASGI middleware: every HTTP request counted and timed by its route template."""

    def __init__(self, app: ASGIApp, metrics: CollectorMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets when the app raises before answering

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = getattr(scope.get("route"), "path", None)  # set by the router on a match
            self.metrics.observe(
                scope["method"],
                route if isinstance(route, str) else UNMATCHED,
                status,
                time.perf_counter() - started,
            )


@router.get(
    METRICS_PATH,
    summary="Prometheus metrics of this collector process",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}}},
)
async def metrics(request: Request) -> Response:
    collected: CollectorMetrics = request.app.state.metrics
    encoder, content_type = choose_encoder(request.headers.get("accept", ""))
    return Response(encoder(collected.registry), media_type=content_type)


def install_metrics(app: FastAPI, services: EdgeServices) -> CollectorMetrics:
    """The app's metrics: the sink metered, ``/metrics`` routed. The request middleware is added
    by the caller last (``RequestMetrics``), so that it is the outermost one."""
    collected = CollectorMetrics()
    collected.registry.register(_Produced(services.sink))
    services.sink = MeteredSink(services.sink, collected)
    app.state.metrics = collected
    app.include_router(router)
    return collected
