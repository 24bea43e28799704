"""``agentledger sql``: over HTTP against the running ``serve`` (table, ``--json``, ``--csv``), and
on a data directory through the same service, scoped to ``--tenant``."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import uuid
from pathlib import Path

import pyarrow as pa

from agentledger.cli.client import LocalReadClient
from agentledger.pipeline.services.sql import database_for
from agentledger.pipeline.store.embedded import EmbeddedStore
from tests.sql.conftest import CLI, KEYS, Served, env
from tests.sql.test_clickhouse_endpoint import _wait_for_spans


def _sql(served: Served, *args: str, tenant: str = "acme") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, "sql", *args, "--url", served.url, "--api-key", KEYS[(tenant, "reader")]],
        capture_output=True,
        text=True,
        timeout=120,
        env=env(),
    )


def test_json_csv_and_table_over_http(served: Served) -> None:
    _wait_for_spans(served)
    query = "SELECT count() AS n, uniqExact(tenant) AS tenants FROM spans"
    as_json = _sql(served, query, "--json", tenant="globex")
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout) == [{"n": served.spans["globex"], "tenants": 1}]

    as_csv = _sql(
        served,
        "SELECT agent_name, count() AS n FROM spans WHERE kind != {k:String} GROUP BY agent_name",
        "--csv",
        "--param",
        "k=none",
    )
    assert as_csv.returncode == 0, as_csv.stderr
    rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert sum(int(r["n"]) for r in rows) == served.spans["acme"]

    table = _sql(served, "SELECT count() AS spans_seen FROM spans")
    assert table.returncode == 0, table.stderr
    assert "spans_seen" in table.stdout and str(served.spans["acme"]) in table.stdout
    assert "1 row" in table.stdout


def test_a_refusal_is_the_commands_error(served: Served) -> None:
    refused = _sql(served, "SELECT count() FROM agentledger.spans")
    assert refused.returncode == 1 and "ACCESS_DENIED" in refused.stderr
    write = _sql(served, "DROP TABLE spans")
    assert write.returncode == 1 and "READONLY" in write.stderr


def test_on_a_data_directory_through_the_same_service(store: EmbeddedStore) -> None:
    spans = pa.table(
        {
            "tenant": ["acme", "acme", "globex"],
            "trace_id": ["a" * 32, "b" * 32, "c" * 32],
            "span_id": ["1" * 16, "2" * 16, "3" * 16],
        }
    )
    store.insert_arrow("spans", spans, dedup_token=uuid.uuid4().hex)
    client = LocalReadClient(store, "acme", where=str(store.local_dir))
    try:
        body = client.sql("SELECT count() AS n, any(tenant) AS t FROM spans")
        assert json.loads(body)["data"] == [{"n": 2, "t": "acme"}]
        csv_body = client.sql("SELECT span_id FROM spans ORDER BY span_id", fmt="CSVWithNames")
        assert csv_body.decode().splitlines() == ['"span_id"', f'"{"1" * 16}"', f'"{"2" * 16}"']
        log = client.access_log(limit=10)
        assert any(e.object_ids[0].startswith("sql: SELECT count()") for e in log.entries)
    finally:
        client.close()
        for tenant in ("acme",):
            store.command(f"DROP DATABASE IF EXISTS {database_for(store.database, tenant)}")


def test_the_command_on_an_empty_data_directory(tmp_path: Path) -> None:
    out = subprocess.run(
        [*CLI, "sql", "SHOW TABLES", "--json", "--data-dir", str(tmp_path / "d")],
        capture_output=True,
        text=True,
        timeout=120,
        env=env(),
    )
    assert out.returncode == 0, out.stderr
    assert {"name": "spans"} in json.loads(out.stdout)
