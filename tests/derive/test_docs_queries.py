"""The SQL users are given (docs/queries.md, the Grafana dashboard) runs on the real engine."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "queries.md"
DASHBOARD = ROOT / "deploy" / "grafana" / "agentledger-dashboard.json"


def _doc_statements() -> list[str]:
    blocks = re.findall(r"```sql\n(.*?)```", DOC.read_text(), flags=re.S)
    out = []
    for block in blocks:
        body = "\n".join(line for line in block.splitlines() if not line.strip().startswith("--"))
        out += [s.strip() for s in body.split(";") if s.strip()]
    return out


def _local(sql: str) -> str:
    """The shipped SQL names the default database; the test store has its own."""
    return sql.replace("agentledger.", "")


def test_the_doc_has_queries_for_each_area() -> None:
    statements = _doc_statements()
    assert len(statements) >= 10
    for table in ("usage_hourly", "spans", "anomalies"):
        assert any(table in s for s in statements), table


@pytest.mark.parametrize("index", range(len(_doc_statements())))
def test_doc_query_runs(injected, index: int) -> None:
    store, _ = injected
    store.query_arrow(_local(_doc_statements()[index]))


def _grafana(sql: str) -> str:
    """Expand the ClickHouse plugin's macros and the dashboard variables as Grafana would."""
    sql = re.sub(
        r"\$__timeFilter\((\w+)\)",
        r"\1 >= toDateTime('2026-03-01 00:00:00', 'UTC') AND \1 <= toDateTime('2026-03-07 00:00:00', 'UTC')",
        sql,
    )
    return _local(sql.replace("${tenant}", "default"))


def test_dashboard_is_a_clickhouse_dashboard_and_its_queries_run(injected) -> None:
    from agentledger.pipeline.derive import AnomalyDetectionJob, JobSettings
    from tests.derive import scenario

    store, _ = injected
    AnomalyDetectionJob(JobSettings()).run(
        store, scenario.NOW
    )  # idempotent: rollup and anomalies present
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["__requires"][0]["id"] == "grafana-clickhouse-datasource"
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    store.query_arrow(_local(variables["tenant"]["query"]))
    nonempty = 0
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            assert target["datasource"]["type"] == "grafana-clickhouse-datasource"
            result = store.query_arrow(_grafana(target["rawSql"]))
            nonempty += result.num_rows > 0
    assert nonempty == sum(len(p["targets"]) for p in dashboard["panels"])  # every panel shows data
