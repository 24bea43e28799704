"""``POST /api/v1/erasures`` and ``agentledger erase``: admin only, identity from the key (the
recorded actor is the key's name whatever the body says), bad input answered 4xx naming it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from agentledger.cli import app
from agentledger.collector import CollectorSettings
from agentledger.server import EmbeddedServer
from tests.erasure.conftest import TENANT, ingest, marker, tables_holding

KEYS = {"admin": "secret-admin-0123456789", "reader": "secret-reader-0123456789"}
BOOTSTRAP = ",".join(f"{TENANT}:{role}:{role}-key={secret}" for role, secret in KEYS.items())


@pytest.fixture
def admin_server(store) -> Iterator[EmbeddedServer]:
    ingest(store, range(3))
    with EmbeddedServer(CollectorSettings(port=0, api_keys=BOOTSTRAP), store=store) as srv:
        yield srv


def _post(server: EmbeddedServer, role: str, body: object) -> httpx.Response:
    return httpx.post(
        f"{server.url}/api/v1/erasures",
        json=body,
        headers={"Authorization": f"Bearer {KEYS[role]}"},
        timeout=120,
    )


def test_an_admin_erases_and_the_key_is_the_recorded_actor(admin_server, store) -> None:
    body = {"subject": "user.id=u-1", "reason": "GDPR request 7", "actor": "someone-else"}
    resp = _post(admin_server, "admin", {**body, "tenant": "globex"})
    assert resp.status_code == 201, resp.text
    result = resp.json()
    assert result["erased_by"] == "admin-key" and result["tenant"] == TENANT
    assert result["contents"] > 0 and result["spans"] == 5
    assert tables_holding(store, marker(1)) == {}
    assert store.query_rows("SELECT actor, reason FROM erasures_v") == [
        {"actor": "admin-key", "reason": "GDPR request 7"}
    ]


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ({"subject": "email=a@b.c", "reason": "x"}, 400, "unknown subject key 'email'"),
        ({"subject": "user.id=", "reason": "x"}, 400, "needs a value"),
        ({"subject": "user.id=u-1", "reason": "  "}, 400, "needs a reason"),
        ({"subject": "user.id=u-1", "reason": ""}, 422, "reason"),
        ({"subject": "user.id=u-1"}, 422, "reason"),
    ],
)
def test_bad_input_is_a_4xx_that_names_the_problem(
    admin_server, store, body: dict[str, str], status: int, says: str
) -> None:
    resp = _post(admin_server, "admin", body)
    assert resp.status_code == status, resp.text
    assert says in resp.text
    assert store.query_scalar("SELECT count() FROM erasures_v") == 0


def test_a_reader_may_not_erase(admin_server, store) -> None:
    resp = _post(admin_server, "reader", {"subject": "user.id=u-1", "reason": "x"})
    assert resp.status_code == 403 and "admin" in resp.text
    assert "contents" in tables_holding(store, marker(1))


def test_the_cli_erases_through_the_server_and_in_a_data_directory(
    admin_server, store, chdb_path: Path, database: str
) -> None:
    runner = CliRunner()
    args = ["erase", "--subject", "session.id=s-0", "--reason", "asked by mail"]
    done = runner.invoke(app, [*args, "--url", admin_server.url, "--api-key", KEYS["admin"]])
    assert done.exit_code == 0, done.output
    assert "by admin-key" in done.output and "contents erased" in done.output
    assert tables_holding(store, marker(0)) == {}
    refused = runner.invoke(app, [*args, "--url", admin_server.url, "--api-key", KEYS["reader"]])
    assert refused.exit_code != 0 and "403" in refused.output
    local = CliRunner(env={"AGENTLEDGER_DATABASE": database})
    done = local.invoke(
        app,
        ["erase", "--subject", "user.id=u-2", "--reason", "asked", "--json"]
        + ["--data-dir", str(chdb_path), "--tenant", TENANT],
    )
    assert done.exit_code == 0, done.output
    assert '"erased_by": "cli"' in done.output
    assert tables_holding(store, marker(2)) == {}
    bad = local.invoke(
        app,
        ["erase", "--subject", "name=x", "--reason", "r", "--data-dir", str(chdb_path)],
    )
    assert bad.exit_code == 2 and "unknown subject key 'name'" in bad.output
