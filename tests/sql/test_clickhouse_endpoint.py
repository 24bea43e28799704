"""The read-only ClickHouse endpoint of a running embedded ``serve``: clickhouse-connect and plain
HTTP see their own tenant's rows and nothing else, cannot write, cannot run past the bounds, and
every query lands in the access log."""

from __future__ import annotations

import time
from collections.abc import Iterator

import clickhouse_connect
import httpx
import pytest
from clickhouse_connect.driver.exceptions import DatabaseError

from agentledger.pipeline.services.sql import database_for
from tests.sql.conftest import KEYS, TIMEOUT_S, Served

OTHER = {"acme": "globex", "globex": "acme"}


def _client(served: Served, tenant: str, **kwargs: object) -> object:
    return clickhouse_connect.get_client(
        host="127.0.0.1",
        port=served.port,
        proxy_path="/clickhouse",
        username="analyst",
        password=KEYS[(tenant, "reader")],
        query_retries=0,
        **kwargs,
    )


@pytest.fixture
def acme(served: Served) -> Iterator[object]:
    client = _client(served, "acme")
    yield client
    client.close()  # type: ignore[attr-defined]


def _post(served: Served, sql: str, tenant: str = "acme", **params: str) -> httpx.Response:
    return httpx.post(
        f"{served.url}/clickhouse",
        params=params,
        content=sql.encode(),
        headers={"X-ClickHouse-Key": KEYS[(tenant, "reader")]},
        timeout=30,
    )


def _wait_for_spans(served: Served) -> None:
    """Ingest acknowledged the spans once stored; wait anyway for the count to settle."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        counts = {t: _post(served, "SELECT count() FROM spans", t).text.strip() for t in OTHER}
        if counts == {t: str(n) for t, n in served.spans.items()}:
            return
        time.sleep(0.2)
    raise AssertionError(f"spans never all arrived: {counts} != {served.spans}")


@pytest.mark.parametrize("tenant", ["acme", "globex"])
def test_clickhouse_connect_sees_its_own_tenant_only(served: Served, tenant: str) -> None:
    _wait_for_spans(served)
    client = _client(served, tenant)
    try:
        assert client.server_version.split(".")[0].isdigit()  # type: ignore[attr-defined]
        assert client.command("SELECT count() FROM spans") == served.spans[tenant]  # type: ignore[attr-defined]
        rows = client.query("SELECT DISTINCT tenant FROM spans").result_rows  # type: ignore[attr-defined]
        assert rows == [(tenant,)]
        table = client.query_arrow(  # type: ignore[attr-defined]
            "SELECT span_id, start_time, cost_usd FROM spans WHERE kind != {k:String} "
            "ORDER BY span_id",
            parameters={"k": "no-such-kind"},
        )
        assert table.num_rows == served.spans[tenant]
        # The database a client names maps to the tenant's views: the store's name too.
        scoped = _client(served, tenant, database="agentledger")
        assert scoped.command("SELECT count() FROM spans") == served.spans[tenant]  # type: ignore[attr-defined]
        scoped.close()  # type: ignore[attr-defined]
    finally:
        client.close()  # type: ignore[attr-defined]


ESCAPES = [
    "SELECT count() FROM agentledger.spans",
    "SELECT count() FROM `agentledger`.`spans`",
    "SELECT count() FROM spans AS a JOIN agentledger.spans AS b ON a.trace_id = b.trace_id",
    "SELECT count() FROM spans WHERE trace_id NOT IN (SELECT trace_id FROM agentledger.spans)",
    "SELECT (SELECT count() FROM agentledger.spans) AS n",
    "WITH x AS (SELECT * FROM agentledger.spans) SELECT count() FROM x",
    "SELECT count() FROM {other_db}.spans",
    "SELECT name, create_table_query FROM system.tables",
    "SELECT database, table FROM system.columns",
    "SELECT name FROM system.databases",
    "SHOW TABLES FROM agentledger",
    "SHOW TABLES FROM {other_db}",
    "DESCRIBE TABLE {other_db}.spans",
    "SELECT * FROM merge('agentledger', '^spans$')",
    "SELECT * FROM file('/etc/passwd', 'LineAsString')",
    "SELECT file('/etc/passwd')",
    "SELECT * FROM url('http://127.0.0.1:1/x', 'CSV')",
    "SELECT * FROM remote('127.0.0.1', 'agentledger', 'spans')",
    "SELECT * FROM s3('http://127.0.0.1:1/b/k', 'CSV')",
    "SELECT * FROM mysql('127.0.0.1:1', 'd', 't', 'u', 'p')",
    "SELECT * FROM postgresql('127.0.0.1:1', 'd', 't', 'u', 'p')",
    "SELECT * FROM executable('x.sh', 'CSV', 'a String')",
    "SELECT * FROM python('x')",
    "SELECT joinGet('agentledger.spans', 'tenant', 1)",
    "SELECT count() FROM {{t:Identifier}}",
    "SELECT count() FROM spans SETTINGS readonly = 0",
    "SELECT count() FROM spans SETTINGS max_execution_time = 100000",
    "SELECT 1; SELECT count() FROM agentledger.spans",
    "SELECT 1; DROP TABLE spans",
    "USE agentledger",
    "SELECT * FROM spans INTO OUTFILE '/tmp/agentledger-sql-leak.csv'",
]


@pytest.mark.parametrize("attempt", ESCAPES)
def test_a_reader_never_reaches_another_tenants_rows(served: Served, attempt: str) -> None:
    _wait_for_spans(served)
    other_db = database_for("agentledger", "globex")
    sql = attempt.format(other_db=other_db)
    resp = _post(served, sql, "acme", param_t="agentledger.spans")
    assert resp.status_code in (400, 403), (sql, resp.status_code, resp.text)
    assert resp.text.startswith("Code: ") and "DB::Exception" in resp.text
    assert resp.headers["X-ClickHouse-Exception-Code"].isdigit()
    assert str(served.spans["globex"]) not in resp.text.split("(")[0]


def test_a_refusal_reaches_clickhouse_connect_as_its_error(acme: object) -> None:
    with pytest.raises(DatabaseError, match="ACCESS_DENIED"):
        acme.query("SELECT count() FROM agentledger.spans")  # type: ignore[attr-defined]
    assert acme.command("SELECT 1") == 1  # type: ignore[attr-defined]  # still usable


@pytest.mark.parametrize(
    "write",
    [
        "INSERT INTO spans (tenant, span_id) VALUES ('acme', 'x')",
        "INSERT INTO agentledger.spans (tenant, span_id) SELECT 'globex', 'y'",
        "ALTER TABLE spans DELETE WHERE 1",
        "ALTER TABLE agentledger.spans DELETE WHERE tenant = 'globex'",
        "CREATE TABLE mine (a UInt8) ENGINE = Memory",
        "CREATE VIEW everyone AS SELECT * FROM agentledger.spans",
        "DROP TABLE spans",
        "DROP DATABASE agentledger",
        "TRUNCATE TABLE spans",
        "RENAME TABLE spans TO gone",
        "OPTIMIZE TABLE agentledger.spans FINAL",
        "SYSTEM DROP MARK CACHE",
        "SYSTEM SHUTDOWN",
        "KILL QUERY WHERE 1",
        "SET readonly = 0",
        "GRANT ALL ON *.* TO default",
    ],
)
def test_writes_are_refused(served: Served, write: str) -> None:
    _wait_for_spans(served)
    resp = _post(served, write)
    assert resp.status_code == 403, resp.text
    assert "(READONLY)" in resp.text
    for tenant, n in served.spans.items():
        assert _post(served, "SELECT count() FROM spans", tenant).text.strip() == str(n)


def test_an_over_long_query_is_stopped_by_the_time_bound(served: Served) -> None:
    started = time.monotonic()
    resp = _post(served, "SELECT count() FROM numbers(100000000000000)")
    took = time.monotonic() - started
    assert resp.status_code == 400 and "TIMEOUT_EXCEEDED" in resp.text, resp.text
    assert TIMEOUT_S <= took < TIMEOUT_S + 10
    # nor can a URL argument raise the bound, or lift read-only
    started = time.monotonic()
    raised = _post(served, "SELECT count() FROM numbers(100000000000000)", max_execution_time="1e6")
    assert raised.status_code == 400 and "TIMEOUT_EXCEEDED" in raised.text, raised.text
    assert time.monotonic() - started < TIMEOUT_S + 10
    lifted = _post(served, "DROP TABLE spans", readonly="0")
    assert lifted.status_code == 403 and "READONLY" in lifted.text


def test_result_rows_are_bounded(served: Served) -> None:
    resp = _post(served, "SELECT number FROM numbers(1000000)")
    assert resp.status_code == 400 and "TOO_MANY_ROWS" in resp.text, resp.text[:300]


def test_a_bad_query_gets_clickhouses_message(served: Served) -> None:
    syntax = _post(served, "SELEC count( FROM spans")
    assert syntax.status_code == 400 and "Code: 62" in syntax.text and "SYNTAX_ERROR" in syntax.text
    unknown = _post(served, "SELECT no_such_column FROM spans")
    assert unknown.status_code == 400 and "UNKNOWN_IDENTIFIER" in unknown.text, unknown.text
    missing = _post(served, "SELECT 1 FROM no_such_table")
    assert missing.status_code == 404 and "UNKNOWN_TABLE" in missing.text
    binary = httpx.post(
        f"{served.url}/clickhouse",
        content=b"SELECT '\xff'",
        headers={"X-ClickHouse-Key": KEYS[("acme", "reader")]},
    )
    assert binary.status_code == 400 and "UTF-8" in binary.text


def test_curl_style_requests_and_formats(served: Served) -> None:
    _wait_for_spans(served)
    key = KEYS[("globex", "reader")]
    got = httpx.get(
        f"{served.url}/clickhouse",
        params={"query": "SELECT count() AS n FROM spans", "default_format": "JSONEachRow"},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert got.status_code == 200 and int(got.json()["n"]) == served.spans["globex"]
    assert got.headers["X-ClickHouse-Format"] == "JSONEachRow"
    csv = httpx.post(
        f"{served.url}/clickhouse",
        params={"param_agent": "finance-controls-agent"},
        content=b"SELECT count() FROM spans WHERE agent_name = {agent:String} FORMAT CSV",
        auth=("default", key),
    )
    assert csv.status_code == 200 and int(csv.text) > 0
    assert httpx.get(f"{served.url}/clickhouse/ping").text == "Ok.\n"


def test_keys_and_roles(served: Served) -> None:
    query = {"query": "SELECT 1"}
    assert httpx.get(f"{served.url}/clickhouse", params=query).status_code == 401
    wrong = httpx.get(f"{served.url}/clickhouse", params=query, auth=("default", "nope"))
    assert wrong.status_code == 401
    ingest = httpx.get(
        f"{served.url}/clickhouse",
        params=query,
        headers={"X-ClickHouse-Key": KEYS[("acme", "ingest")]},
    )
    assert ingest.status_code == 403 and "reader" in ingest.text


def test_every_query_is_in_the_access_log(served: Served) -> None:
    marker = f"SELECT {time.time_ns()} AS marker"
    assert _post(served, marker).status_code == 200
    refused = "SELECT count() FROM agentledger.spans WHERE 'marker' = 'refused'"
    assert _post(served, refused).status_code == 403
    log = httpx.get(
        f"{served.url}/api/v1/access-log",
        params={"key": "acme-reader"},
        headers={"Authorization": f"Bearer {KEYS[('acme', 'auditor')]}"},
    )
    assert log.status_code == 200, log.text
    entries = log.json()["entries"]
    ran = [e for e in entries if e["object_ids"] == [f"sql: {marker}"]]
    assert ran and ran[0]["route"] == "/clickhouse" and ran[0]["key_name"] == "acme-reader"
    assert any(e["object_ids"] == [f"sql refused: {refused}"] for e in entries)
    assert log.json()["intact"]
