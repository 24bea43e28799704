"""The Prometheus dashboard in deploy/grafana asks only for series that /metrics serves.

A panel over a renamed or never-served metric shows "No data" in Grafana without any error, so
the names in every query are checked against what the collector's ``GET /metrics`` and the
pipeline's metrics render (both in-process here: the collector over the in-memory transport,
the pipeline's renderer over a consumer's counters and a group lag read from that transport).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from agentledger.collector import CollectorSettings
from agentledger.compose import build_edge_app
from agentledger.pipeline.consumers.lag import GroupLag
from agentledger.pipeline.consumers.metrics import consumer_status, prometheus_text
from agentledger.pipeline.consumers.spans import ConsumerStats
from agentledger.pipeline.settings import KafkaSettings
from agentledger.pipeline.sinks.kafka import KafkaSink
from agentledger.pipeline.transport import MemoryTransport

GRAFANA = Path(__file__).resolve().parents[2] / "deploy" / "grafana"
DASHBOARD = GRAFANA / "agentledger-pipeline-dashboard.json"
_NAME = re.compile(r"\b(agentledger_[a-z_]+)\b")
_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}


def _served(text: str) -> set[str]:
    """Every series name the text can hold, also of families without a sample yet."""
    names: set[str] = set()
    for family in text_string_to_metric_families(text):
        names.update(s.name for s in family.samples)
        names.update(family.name + suffix for suffix in _SUFFIXES.get(family.type, ("",)))
    return names


def _collector_metrics() -> str:
    transport = MemoryTransport(KafkaSettings(partitions=2))
    with TestClient(
        build_edge_app(CollectorSettings(no_auth=True, port=0), KafkaSink(transport))
    ) as client:
        return client.get("/metrics").text


def _pipeline_metrics() -> str:
    settings = KafkaSettings(partitions=2)
    transport = MemoryTransport(settings)
    lag = GroupLag(transport, [(settings.group_id, settings.spans_topic)])
    with transport.admin() as admin:
        admin.ensure_topics()
        lag.refresh(admin)
    return prometheus_text(consumer_status(ConsumerStats(), lag))


def _queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (panel["title"], target["expr"])
        for panel in dashboard["panels"]
        if panel["type"] != "row"
        for target in panel["targets"]
    ]


def test_every_panel_queries_served_series() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    served = _served(_collector_metrics()) | _served(_pipeline_metrics())
    queries = _queries(dashboard)
    assert len(queries) >= 15
    for title, expr in queries:
        names = _NAME.findall(expr)
        assert names, f"panel {title!r} queries no AgentLedger series: {expr}"
        unknown = set(names) - served
        assert not unknown, f"panel {title!r} asks for series /metrics does not serve: {unknown}"


def test_the_issue_s_figures_each_have_a_panel() -> None:
    """Accepted, rejected, produced, consumed, lag per partition, batch latency, dead letters."""
    text = " ".join(expr for _, expr in _queries(json.loads(DASHBOARD.read_text())))
    for series in (
        "agentledger_collector_spans_accepted_total",
        "agentledger_collector_spans_rejected_total",
        "agentledger_collector_records_produced_total",
        "agentledger_collector_request_duration_seconds_bucket",
        "agentledger_pipeline_records_total",
        "agentledger_pipeline_lag_records",
        "agentledger_pipeline_batch_seconds_bucket",
        "agentledger_pipeline_dead_letters_total",
    ):
        assert series in text, series
    assert "by (group, topic, partition)" in text  # lag per partition, not only a total


def test_panels_use_the_datasource_variable() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["query"] == "prometheus"
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
