"""The analytics HTTP API on the embedded server: usage, patterns, anomalies, per tenant."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import httpx
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from agentledger.pipeline.derive import UsageQuery, UsageRollupJob, usage_report
from bench.traffic import add_run
from tests.conftest import API_KEYS
from tests.derive import scenario

SINCE, UNTIL = scenario.NOW - timedelta(days=2), scenario.NOW
RANGE = {"since": SINCE.isoformat(), "until": UNTIL.isoformat()}


def test_usage_patterns_and_anomalies_over_http(server) -> None:
    generated = scenario.generate(server.store, inject=True, days=2)
    UsageRollupJob().run(
        server.store, scenario.NOW
    )  # a full background pass: the data is older than 48 h
    with httpx.Client(base_url=server.url, timeout=60) as client:
        usage = client.get(
            "/api/v1/usage", params={**RANGE, "group_by": "principal,model", "top": 3}
        )
        assert usage.status_code == 200, usage.text
        body = usage.json()
        assert body["group_by"] == ["principal", "model"] and len(body["rows"]) == 3
        direct = usage_report(
            server.store, "default", UsageQuery(SINCE, UNTIL, ("principal", "model"), top=3)
        )
        assert body["rows"] == direct
        assert (
            body["rows"][0]["principal"] == "bob@acme.example"
        )  # the injected cost spike tops the list

        series = client.get(
            "/api/v1/usage", params={**RANGE, "group_by": "kind", "interval": "day", "kind": "LLM"}
        )
        rows = series.json()["rows"]
        assert [r["kind"] for r in rows] == ["LLM", "LLM"] and rows[0]["bucket"] < rows[1]["bucket"]
        assert sum(r["calls"] for r in rows) == sum(1 for r in generated.rows if r["kind"] == "LLM")

        bad = client.get("/api/v1/usage", params={"group_by": "colour"})
        assert bad.status_code == 400 and "unknown dimension" in bad.json()["detail"]

        detect = client.post("/api/v1/anomalies/detect", params={"now": scenario.NOW.isoformat()})
        assert detect.status_code == 200, detect.text
        found = detect.json()
        assert {
            "error_burst",
            "sensitive_egress",
            "new_sequence",
            "cost_spike",
            "latency_spike",
        } <= set(found["anomalies"])
        listed = client.get(
            "/api/v1/anomalies", params={"since": SINCE.isoformat(), "type": "error_burst"}
        ).json()
        assert [a["dimensions"]["tool_name"] for a in listed] == ["match_purchase_order"]
        assert client.get("/api/v1/anomalies", params={"type": "nonsense"}).status_code == 422

        patterns = client.get(
            "/api/v1/patterns",
            params={
                "since": (UNTIL - timedelta(days=1)).isoformat(),
                "until": UNTIL.isoformat(),
                "baseline_hours": 24,
            },
        )
        assert patterns.status_code == 200, patterns.text
        new = patterns.json()["new_use"]
        assert [s["sequence"] for s in new["sequences"]] == [list(scenario.NEW_SEQUENCE)]
        assert [p["value"] for p in new["principals"]] == [scenario.MALLORY]


def _otlp(principal: str, n: int, start: datetime) -> bytes:
    req = ExportTraceServiceRequest()
    scope = req.resource_spans.add().scope_spans.add()
    rng = random.Random(len(principal))
    for i in range(n):
        add_run(scope, rng, i, int(start.timestamp()) * 10**9 + i * 10**9, principal=principal)
    return req.SerializeToString()


def test_usage_is_per_tenant_and_fresh_after_ingest(auth_server) -> None:
    """Spans posted a moment ago show in usage at once (the route brings the rollup up to date)."""
    now = datetime.now(timezone.utc)
    acme = {"Authorization": f"Bearer {API_KEYS['acme']}"}
    globex = {"Authorization": f"Bearer {API_KEYS['globex']}"}
    with httpx.Client(base_url=auth_server.url, timeout=60) as client:
        UsageRollupJob().run(
            auth_server.store, now
        )  # an earlier pass: the new spans arrive after it
        sent = client.post(
            "/v1/traces",
            content=_otlp("acme-user", 4, now - timedelta(minutes=5)),
            headers={**acme, "Content-Type": "application/x-protobuf"},
        )
        assert sent.status_code == 200, sent.text
        mine = client.get("/api/v1/usage", params={"group_by": "principal"}, headers=acme).json()[
            "rows"
        ]
        assert [(r["principal"], r["calls"]) for r in mine] == [("acme-user", 20)]
        assert (
            client.get("/api/v1/usage", params={"group_by": "principal"}, headers=globex).json()[
                "rows"
            ]
            == []
        )
        assert client.get("/api/v1/usage").status_code == 401
        assert client.post("/api/v1/anomalies/detect", headers=globex).json()["anomalies"] == {}
