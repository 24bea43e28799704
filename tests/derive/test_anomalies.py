"""Anomaly detection over simulated days: every injected anomaly is found with its dimension
values, clean traffic yields none, and re-running detection duplicates nothing.

False-positive rate: detection counts the tests it makes (series-hours, span groups, buckets,
entities, sequences, spans scanned); on the clean scenario it reports 0 anomalies, so the
measured rate is 0 / tests (the figure is printed with ``-s``).
"""

from __future__ import annotations

import json
import math
import threading
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from agentledger.pipeline.derive import AnomalyDetectionJob, JobSettings, list_anomalies
from agentledger.pipeline.derive.detectors import (
    DETECTORS,
    Context,
    median,
    poisson_sf,
    robust_z,
    sensitive_egress,
)
from agentledger.schemas.analytics import ANOMALIES_TABLE, AnomalyType
from tests.derive import scenario

INJECTED_TYPES = {
    AnomalyType.COST_SPIKE,
    AnomalyType.LATENCY_SPIKE,
    AnomalyType.NEW_SEQUENCE,
    AnomalyType.ERROR_BURST,
    AnomalyType.SENSITIVE_EGRESS,
}
CLAUDE = "claude-3-5-sonnet-2024-08-06"


def _find(anomalies: list[dict], type_: AnomalyType, dims: dict[str, str]) -> list[dict]:
    return [a for a in anomalies if a["type"] == type_.value and a["dimensions"] == dims]


def _traces(rows: list[dict], **match: object) -> set[str]:
    return {r["trace_id"] for r in rows if all(r[k] == v for k, v in match.items())}


def _injected_hours(generated: scenario.Scenario) -> set[tuple[str, str]]:
    """(principal, hour) of every injected run."""
    traces = {t for ts in generated.injected.values() for t in ts}
    return {
        (r["principal_id"], _hour(r["start_time"]))
        for r in generated.rows
        if r["trace_id"] in traces and r["kind"] == "AGENT"
    }


def _hour(t: object) -> str:
    epoch = int(t.timestamp())  # type: ignore[attr-defined]
    return datetime.fromtimestamp(epoch - epoch % 3600, tz=timezone.utc).isoformat()


@pytest.fixture(scope="module")
def detected(injected) -> tuple[object, scenario.Scenario, dict, list[dict]]:
    store, generated = injected
    result = AnomalyDetectionJob(JobSettings()).run(store, scenario.NOW)
    return store, generated, result.info, list_anomalies(store, "default", limit=1000)


def test_cost_spike_of_one_principal(detected) -> None:
    _, generated, _, anomalies = detected
    (spike,) = _find(anomalies, AnomalyType.COST_SPIKE, {"principal_id": "bob@acme.example"})
    assert spike["window_start"] == scenario.COST_SPIKE_HOUR.isoformat()
    assert spike["observed"] > 10 * spike["expected"] and spike["score"] >= 4
    bob_that_hour = {
        r["trace_id"]
        for r in generated.rows
        if r["principal_id"] == "bob@acme.example"
        and scenario.COST_SPIKE_HOUR
        <= r["start_time"]
        < scenario.COST_SPIKE_HOUR + timedelta(hours=1)
    }
    assert spike["example_trace_ids"] and set(spike["example_trace_ids"]) <= bob_that_hour
    # every principal-level spike lies in an hour where that principal had injected runs (the error
    # burst's extra runs also raise dave's cost in their hour): none is a false alarm
    for a in anomalies:
        if "principal_id" in a["dimensions"] and a["type"].endswith("_spike"):
            assert (a["dimensions"]["principal_id"], a["window_start"]) in _injected_hours(
                generated
            ), a


def test_latency_regression_of_one_model(detected) -> None:
    _, _, _, anomalies = detected
    found = _find(anomalies, AnomalyType.LATENCY_SPIKE, {"model": CLAUDE})
    assert sorted(a["window_start"] for a in found) == sorted(
        h.isoformat() for h in scenario.LATENCY_HOURS
    )
    for a in found:
        assert a["observed"] > 2 * a["expected"]
    assert all(
        a["dimensions"] in ({"model": CLAUDE}, {"agent_name": scenario.PAYABLES})
        for a in anomalies
        if a["type"] == "latency_spike"
    )


def test_new_tool_sequence(detected) -> None:
    _, generated, _, anomalies = detected
    dims = {"agent_name": scenario.FINANCE, "sequence": " > ".join(scenario.NEW_SEQUENCE)}
    (new,) = _find(anomalies, AnomalyType.NEW_SEQUENCE, dims)
    assert new["observed"] == 4 and new["window_start"] == scenario.NEW_SEQUENCE_HOUR.isoformat()
    assert set(new["example_trace_ids"]) <= set(generated.injected["new_sequence"])
    assert [a for a in anomalies if a["type"] == "new_sequence"] == [new]
    # its two tools were never seen before either
    firsts = {a["dimensions"].get("tool_name") for a in anomalies if a["type"] == "first_seen"}
    assert {"export_ledger", "send_report"} <= firsts


def test_error_burst(detected) -> None:
    _, generated, _, anomalies = detected
    dims = {"agent_name": scenario.PAYABLES, "kind": "TOOL", "tool_name": "match_purchase_order"}
    (burst,) = _find(anomalies, AnomalyType.ERROR_BURST, dims)
    start = scenario.ERROR_BURST_AT.replace(minute=20)
    assert burst["window_start"] == start.isoformat()
    assert burst["window_end"] == (start + timedelta(minutes=10)).isoformat()
    assert burst["observed"] >= 8 and burst["expected"] < 1 and burst["score"] > 6
    failing = _traces(generated.rows, tool_name="match_purchase_order", status_code="ERROR")
    assert set(burst["example_trace_ids"]) <= failing
    assert [a for a in anomalies if a["type"] == "error_burst"] == [burst]


def test_email_sent_to_a_provider(detected) -> None:
    _, generated, _, anomalies = detected
    (egress,) = _find(
        anomalies, AnomalyType.SENSITIVE_EGRESS, {"provider": "openai", "detector": "email"}
    )
    assert egress["window_start"] == scenario.EMAIL_HOUR.isoformat()
    assert set(egress["example_trace_ids"]) == set(generated.injected["email"])
    llm_spans = sum(
        1
        for r in generated.rows
        if r["trace_id"] in generated.injected["email"] and r["kind"] == "LLM"
    )
    assert egress["observed"] == llm_spans  # every LLM call of those runs carried the question
    assert scenario.EMAIL not in json.dumps(anomalies)  # findings are masked, never stored raw
    assert [a for a in anomalies if a["type"] == "sensitive_egress"] == [egress]


def test_new_principal_is_first_seen(detected) -> None:
    _, generated, _, anomalies = detected
    (first,) = _find(anomalies, AnomalyType.FIRST_SEEN, {"principal_id": scenario.MALLORY})
    assert first["window_start"] == scenario.NEW_USE_HOUR.isoformat()
    assert set(first["example_trace_ids"]) <= set(generated.injected["new_use"])


def test_detection_reports_its_tests_and_timings(detected) -> None:
    _, _, info, anomalies = detected
    assert set(info["tests"]) == set(DETECTORS)
    assert all(n > 0 for n in info["tests"].values())
    assert sum(info["anomalies"].values()) == len(anomalies) == len(info["new"])


def test_rerunning_detection_duplicates_nothing(detected) -> None:
    store, _, _, before = detected
    again = AnomalyDetectionJob(JobSettings()).run(store, scenario.NOW)
    assert again.info["new"] == []
    after = list_anomalies(store, "default", limit=1000)
    key = lambda a: a["anomaly_id"]  # noqa: E731
    assert [a["anomaly_id"] for a in sorted(after, key=key)] == [
        a["anomaly_id"] for a in sorted(before, key=key)
    ]
    assert {a["anomaly_id"]: a["first_detected"] for a in after} == {
        a["anomaly_id"]: a["first_detected"] for a in before
    }
    assert all(a["detected_at"] >= a["first_detected"] for a in after)
    store.command(f"OPTIMIZE TABLE {ANOMALIES_TABLE} FINAL")
    assert store.query_scalar(f"SELECT count() FROM {ANOMALIES_TABLE}") == len(before)


def test_listing_filters(detected) -> None:
    store, _, _, anomalies = detected
    bursts = list_anomalies(store, "default", type="error_burst")
    assert [a["type"] for a in bursts] == ["error_burst"]
    late = list_anomalies(store, "default", since=scenario.NOW - timedelta(hours=4))
    assert late and all(
        a["window_end"] > (scenario.NOW - timedelta(hours=4)).isoformat() for a in late
    )
    assert len(late) < len(anomalies)
    assert len(list_anomalies(store, "default", limit=2)) == 2
    assert list_anomalies(store, "another-tenant") == []
    windows = [a["window_start"] for a in anomalies]
    assert windows == sorted(windows, reverse=True)


def test_clean_traffic_has_no_false_positives(clean) -> None:
    store, _ = clean
    tests = 0
    found: dict[str, int] = {}
    for hours_back in (
        0,
        12,
    ):  # two detection passes, as the scheduler would run them, over 36 hours
        result = AnomalyDetectionJob(JobSettings()).run(
            store, scenario.NOW - timedelta(hours=hours_back)
        )
        tests += sum(result.info["tests"].values())
        for type_, n in result.info["anomalies"].items():
            found[type_] = found.get(type_, 0) + n
    rate = sum(found.values()) / tests
    print(
        f"\nclean traffic: {sum(found.values())} anomalies in {tests} tests, false-positive rate {rate:.4%}"
    )
    assert tests > 5000
    assert not set(found) & {t.value for t in INJECTED_TYPES}
    assert found == {}


def test_internal_providers_are_not_egress(injected) -> None:
    store, _ = injected
    external = sensitive_egress(Context(store, "default", scenario.NOW, JobSettings()))
    assert [a.dimensions for a in external.anomalies] == [
        {"provider": "openai", "detector": "email"}
    ]
    internal = sensitive_egress(
        Context(store, "default", scenario.NOW, JobSettings(internal_providers="OpenAI, ollama"))
    )
    assert internal.anomalies == []


def test_first_seen_and_new_sequences_need_a_baseline(store) -> None:
    """A tenant whose history starts inside the window has nothing to compare with: nothing is 'new'."""
    scenario.generate(store, inject=False, days=1, seed=21)
    result = AnomalyDetectionJob(JobSettings()).run(store, scenario.NOW)
    assert result.info["anomalies"] == {}
    assert result.info["tests"]["first_seen"] == result.info["tests"]["new_sequences"] == 0


class _Hook(BaseHTTPRequestHandler):
    received: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Hook.received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_webhook_hears_of_new_anomalies_once(store) -> None:
    scenario.generate(store, inject=True, days=2, seed=5)
    server = HTTPServer(("127.0.0.1", 0), _Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Hook.received = []
    try:
        settings = JobSettings(webhook_url=f"http://127.0.0.1:{server.server_port}/hook")
        first = AnomalyDetectionJob(settings).run(store, scenario.NOW)
        second = AnomalyDetectionJob(settings).run(store, scenario.NOW)
    finally:
        server.shutdown()
    assert len(_Hook.received) == 1  # the second pass found nothing new: no post
    payload = _Hook.received[0]
    assert payload["event"] == "agentledger.anomalies.new"
    assert payload["count"] == len(first.info["new"]) == len(payload["anomalies"]) > 0
    assert {a["type"] for a in payload["anomalies"]} >= {
        "error_burst",
        "sensitive_egress",
        "new_sequence",
    }
    assert second.info["new"] == []


def test_webhook_url_must_be_http() -> None:
    with pytest.raises(ValueError, match="http"):
        JobSettings(webhook_url="ftp://example.invalid/hook")


def test_statistics() -> None:
    assert median([3, 1, 2]) == 2 and median([4, 1, 2, 3]) == 2.5
    z, med = robust_z(10, [1, 2, 3, 4, 5])
    assert med == 3 and z == pytest.approx(0.6745 * 7 / 1)
    assert robust_z(5, [5, 5, 5])[0] == pytest.approx(0.0)
    assert robust_z(6, [5, 5, 5])[0] == pytest.approx(
        0.6745 / 0.25
    )  # MAD floored at 5% of the median
    assert poisson_sf(5, 2.0) == pytest.approx(0.052653, rel=1e-4)
    assert poisson_sf(0, 2.0) == 1.0 and poisson_sf(3, 0.0) == 0.0
    assert poisson_sf(30, 1.0) == pytest.approx(
        math.exp(-1) / math.factorial(30), rel=0.05
    )  # far tail
