"""The SQL service in-process, on the session's chDB directory: what a tenant's database holds,
which statements pass, that a failed query leaves no rows behind for the next, and the limits'
configuration."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from types import SimpleNamespace

import pyarrow as pa
import pytest

from agentledger.pipeline.services.sql import (
    Limits,
    SqlError,
    SqlService,
    SqlUnavailable,
    database_for,
)
from agentledger.pipeline.store.embedded import EmbeddedStore


@pytest.fixture
def sql(store: EmbeddedStore) -> Iterator[SqlService]:
    store.insert_arrow(
        "spans",
        pa.table(
            {
                "tenant": ["acme", "globex", "globex"],
                "trace_id": ["a" * 32, "b" * 32, "c" * 32],
                "span_id": ["1" * 16, "2" * 16, "3" * 16],
            }
        ),
        dedup_token=uuid.uuid4().hex,
    )
    service = SqlService(store, Limits(max_execution_time_s=1, max_result_rows=1000))
    yield service
    service.close()
    for tenant in ("acme", "globex"):
        store.command(f"DROP DATABASE IF EXISTS {database_for(store.database, tenant)}")


def _rows(service: SqlService, tenant: str, query: str) -> list[dict[str, object]]:
    return list(json.loads(service.run(tenant, query, fmt="JSON").body)["data"])


def test_the_tenants_database_holds_its_views_and_nothing_else(sql: SqlService) -> None:
    tables = {r["name"] for r in _rows(sql, "acme", "SHOW TABLES")}
    assert {"spans", "contents", "usage_hourly", "anomalies", "intents_v"} <= tables
    assert not tables & {"records", "api_keys_v", "access_log_v", "ledger_leaves", "span_keys"}
    assert _rows(sql, "acme", "SHOW DATABASES") == [{"name": sql.database("acme")}]
    assert _rows(sql, "globex", "SELECT count() AS n FROM spans") == [{"n": 2}]
    assert _rows(sql, "acme", "EXISTS TABLE spans") == [{"result": 1}]
    assert "ReadFromMergeTree" in sql.run("acme", "EXPLAIN SELECT * FROM spans").body.decode()


def test_a_failed_query_leaves_nothing_for_the_next(sql: SqlService) -> None:
    for _ in range(3):
        with pytest.raises(SqlError, match="TOO_MANY_ROWS"):
            sql.run("acme", "SELECT number FROM numbers(100000)")
        with pytest.raises(SqlError, match="SYNTAX_ERROR"):
            sql.run("acme", "SELEC (")
        assert _rows(sql, "acme", "SELECT count() AS n FROM spans") == [{"n": 1}]


def test_errors_are_4xx_with_clickhouses_text(sql: SqlService) -> None:
    cases = {
        "": (400, 62),
        "SELECT * FROM nope": (404, 60),
        "SELECT count() FROM numbers(100000000000000)": (400, 159),
        "INSERT INTO spans (tenant) VALUES ('acme')": (403, 164),
        "SELECT * FROM file('x')": (403, 497),
        "SELECT 1 FORMAT Protobuf": (400, 36),
    }
    for query, (status, code) in cases.items():
        with pytest.raises(SqlError) as err:
            sql.run("acme", query)
        assert (err.value.status, err.value.code) == (status, code), (query, str(err.value))
        assert str(err.value).startswith(f"Code: {code}.")
    with pytest.raises(SqlError) as big:
        sql.run("acme", "SELECT '" + "x" * (sql.limits.max_query_bytes + 1) + "'")
    assert big.value.status == 413


def test_limits_from_the_environment() -> None:
    assert Limits.from_env({}) == Limits()
    custom = Limits.from_env({"AGENTLEDGER_SQL_TIMEOUT_S": "2.5", "AGENTLEDGER_SQL_MAX_ROWS": "7"})
    assert custom.max_execution_time_s == 2.5 and custom.max_result_rows == 7
    with pytest.raises(ValueError, match="AGENTLEDGER_SQL_MAX_ROWS"):
        Limits.from_env({"AGENTLEDGER_SQL_MAX_ROWS": "many"})
    with pytest.raises(ValueError, match="positive"):
        Limits.from_env({"AGENTLEDGER_SQL_TIMEOUT_S": "0"})


def test_a_store_without_a_data_directory_has_no_sql() -> None:
    # a ClickHouse server or an in-memory chDB (opening one here would take this process's chDB
    # away from the session's directory): only the data directory matters to the service
    server = SimpleNamespace(local_dir=None, database="agentledger")
    with pytest.raises(SqlUnavailable, match="embedded store"):
        SqlService(server)  # type: ignore[arg-type]
