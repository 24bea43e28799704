"""``GET /metrics`` of the collector: what it counts, who may read it, one registry per app.

The embedded app stores into chDB (the session's data directory, a database of this module's
own); the Kafka sink runs over the in-memory transport here (tests/kafka/test_metrics_kafka.py
runs it against a broker)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from agentledger.collector import CollectorSettings
from agentledger.compose import build_edge_app, build_embedded_app
from agentledger.pipeline.settings import KafkaSettings, StoreSettings
from agentledger.pipeline.sinks.kafka import KafkaSink
from agentledger.pipeline.store.embedded import EmbeddedStore
from agentledger.pipeline.transport import MemoryTransport
from tests.collector.test_bad_input import PB, _request

KEYS = {
    "ingest": "secret-ingest-0123456789",
    "reader": "secret-reader-0123456789",
    "operator": "secret-operator-0123456789",
}
BOOTSTRAP = ",".join(f"acme:{role}:{role}-key={secret}" for role, secret in KEYS.items())


def _as(role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {KEYS[role]}"}


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """(sample name, sorted labels) -> value, parsed as Prometheus parses the text."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(text: str, name: str, **labels: str) -> float:
    return samples(text).get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture(scope="module")
def store(chdb_path: Path) -> Iterator[EmbeddedStore]:
    s = EmbeddedStore(chdb_path, database=f"metrics_{uuid.uuid4().hex[:10]}")
    yield s
    s.command(f"DROP DATABASE IF EXISTS {s.database}")
    s.close()


@pytest.fixture
def client(store: EmbeddedStore) -> Iterator[TestClient]:
    app = build_embedded_app(CollectorSettings(api_keys=BOOTSTRAP, port=0), StoreSettings(), store)
    with TestClient(app) as c:
        yield c


def _metrics(client: TestClient) -> str:
    resp = client.get("/metrics", headers=_as("reader"))
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/plain")
    return resp.text


def test_accepted_spans_and_requests_by_route_and_status(client: TestClient) -> None:
    before = _metrics(client)
    body = _request(3, name=f"op-{uuid.uuid4().hex[:6]}").SerializeToString()
    ok = client.post("/v1/traces", content=body, headers={**_as("ingest"), "Content-Type": PB})
    assert ok.status_code == 200
    bad = client.post(
        "/v1/traces", content=b"x", headers={**_as("ingest"), "Content-Type": "text/csv"}
    )
    assert bad.status_code == 415
    assert client.get("/no/such/path", headers=_as("reader")).status_code == 404
    after = _metrics(client)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    route = {"method": "POST", "route": "/v1/traces"}
    assert delta("agentledger_collector_spans_accepted_total") == 3
    assert delta("agentledger_collector_requests_total", **route, status="200") == 1
    assert delta("agentledger_collector_requests_total", **route, status="415") == 1
    assert delta("agentledger_collector_request_duration_seconds_count", **route) == 2
    assert delta("agentledger_collector_request_duration_seconds_sum", **route) > 0
    unmatched = {"method": "GET", "route": "unmatched", "status": "404"}
    assert delta("agentledger_collector_requests_total", **unmatched) == 1
    # the embedded sink produces no Kafka record: no such series
    assert "agentledger_collector_records_produced_total" not in after


def test_a_changed_resend_counts_as_a_conflict(client: TestClient) -> None:
    name = f"op-{uuid.uuid4().hex[:6]}"
    headers = {**_as("ingest"), "Content-Type": PB}
    first = _request(2, name=name, value="first")
    changed = _request(2, name=name, value="second")
    for span in (*first.resource_spans[0].scope_spans[0].spans,):
        span.trace_id = bytes.fromhex(uuid.uuid4().hex)
    for mine, theirs in zip(
        changed.resource_spans[0].scope_spans[0].spans,
        first.resource_spans[0].scope_spans[0].spans,
        strict=True,
    ):
        mine.trace_id = theirs.trace_id
    before = value(
        _metrics(client), "agentledger_collector_spans_rejected_total", reason="conflict"
    )
    assert client.post("/v1/traces", content=first.SerializeToString(), headers=headers).is_success
    assert client.post(
        "/v1/traces", content=changed.SerializeToString(), headers=headers
    ).is_success
    after = _metrics(client)
    assert (
        value(after, "agentledger_collector_spans_rejected_total", reason="conflict") == before + 2
    )


def test_who_may_scrape(client: TestClient) -> None:
    assert client.get("/metrics").status_code == 401
    refused = client.get("/metrics", headers=_as("ingest"))
    assert refused.status_code == 403 and "metrics" in refused.text
    for role in ("reader", "operator"):
        assert client.get("/metrics", headers=_as(role)).status_code == 200


def test_openmetrics_when_asked(client: TestClient) -> None:
    resp = client.get(
        "/metrics", headers={**_as("reader"), "Accept": "application/openmetrics-text"}
    )
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("application/openmetrics-text")
    assert resp.text.rstrip().endswith("# EOF")


def _kafka_client(transport: MemoryTransport) -> TestClient:
    settings = CollectorSettings(no_auth=True, port=0)
    return TestClient(build_edge_app(settings, KafkaSink(transport)))


def test_kafka_records_produced_and_spans_refused_while_kafka_is_down() -> None:
    transport = MemoryTransport(KafkaSettings(partitions=2))
    with _kafka_client(transport) as client:
        request = _request(4)
        spans = request.resource_spans[0].scope_spans[0].spans
        for i, span in enumerate(spans):  # two traces: two records
            span.trace_id = bytes([i % 2 + 1] * 16)
        body = request.SerializeToString()
        assert client.post("/v1/traces", content=body, headers={"Content-Type": PB}).is_success
        transport.available = False
        down = client.post("/v1/traces", content=body, headers={"Content-Type": PB})
        assert down.status_code == 503
        text = client.get("/metrics").text
    assert value(text, "agentledger_collector_records_produced_total") == 2
    assert value(text, "agentledger_collector_spans_accepted_total") == 4
    assert value(text, "agentledger_collector_spans_rejected_total", reason="unavailable") == 4
    route = {"method": "POST", "route": "/v1/traces"}
    assert value(text, "agentledger_collector_requests_total", **route, status="503") == 1


def test_each_app_counts_its_own() -> None:
    one, two = (_kafka_client(MemoryTransport()) for _ in range(2))
    with one, two:
        assert one.post(
            "/v1/traces", content=_request(2).SerializeToString(), headers={"Content-Type": PB}
        ).is_success
        assert value(one.get("/metrics").text, "agentledger_collector_spans_accepted_total") == 2
        assert value(two.get("/metrics").text, "agentledger_collector_spans_accepted_total") == 0
