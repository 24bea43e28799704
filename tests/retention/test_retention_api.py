"""``/api/v1/retention`` and ``/api/v1/holds`` on a running server, and the CLI through them:
admins set, auditors read, the key is the recorded actor, bad input is a 4xx naming the field."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from typer.testing import CliRunner

from agentledger.cli import app
from agentledger.collector import CollectorSettings
from agentledger.server import EmbeddedServer
from tests.erasure.conftest import TENANT

KEYS = {role: f"secret-{role}-0123456789" for role in ("admin", "auditor", "reader")}
BOOTSTRAP = ",".join(f"{TENANT}:{role}:{role}-key={secret}" for role, secret in KEYS.items())


@pytest.fixture
def admin_server(store) -> Iterator[EmbeddedServer]:
    with EmbeddedServer(CollectorSettings(port=0, api_keys=BOOTSTRAP), store=store) as srv:
        yield srv


def _call(server: EmbeddedServer, role: str, method: str, path: str, **kw: object):
    headers = {"Authorization": f"Bearer {KEYS[role]}"}
    return httpx.request(method, f"{server.url}{path}", headers=headers, timeout=60, **kw)  # type: ignore[arg-type]


def test_admins_set_auditors_read_and_bad_input_is_named(admin_server) -> None:
    assert _call(admin_server, "auditor", "GET", "/api/v1/retention").json()["days"] == 0
    resp = _call(admin_server, "admin", "PUT", "/api/v1/retention", json={"days": 30})
    assert resp.status_code == 200 and resp.json()["set_by"] == "admin-key", resp.text
    got = _call(admin_server, "auditor", "GET", "/api/v1/retention").json()
    assert got["days"] == 30 and got["tenant"] == TENANT
    refused = _call(admin_server, "auditor", "PUT", "/api/v1/retention", json={"days": 1})
    assert refused.status_code == 403
    bad = _call(admin_server, "admin", "PUT", "/api/v1/retention", json={"days": -1})
    assert bad.status_code == 422 and "days" in bad.text
    hold = {"scope": "session", "target": "s-1", "reason": "matter 9"}
    made = _call(admin_server, "admin", "POST", "/api/v1/holds", json=hold)
    assert made.status_code == 201 and made.json()["actor"] == "admin-key", made.text
    wrong = _call(admin_server, "admin", "POST", "/api/v1/holds", json={**hold, "scope": "agent"})
    assert wrong.status_code == 422 and "scope" in wrong.text
    empty = _call(admin_server, "admin", "POST", "/api/v1/holds", json={**hold, "reason": " "})
    assert empty.status_code == 400 and "reason" in empty.text
    listed = _call(admin_server, "auditor", "GET", "/api/v1/holds").json()["holds"]
    assert [(h["scope"], h["target"]) for h in listed] == [("session", "s-1")]
    missing = _call(admin_server, "admin", "DELETE", "/api/v1/holds/" + "0" * 32)
    assert missing.status_code == 404 and "no active hold" in missing.text
    hold_id = made.json()["hold_id"]
    gone = _call(admin_server, "admin", "DELETE", f"/api/v1/holds/{hold_id}")
    assert gone.status_code == 200 and gone.json()["active"] is False
    assert _call(admin_server, "auditor", "GET", "/api/v1/holds").json()["holds"] == []
    everything = _call(admin_server, "auditor", "GET", "/api/v1/holds", params={"released": "true"})
    assert len(everything.json()["holds"]) == 1


def test_the_cli_goes_through_the_server_with_url(admin_server) -> None:
    runner = CliRunner()
    server = ["--url", admin_server.url, "--api-key", KEYS["admin"]]
    done = runner.invoke(app, ["retention", "set", "--days", "45", *server])
    assert done.exit_code == 0 and "retention 45 days" in done.output, done.output
    done = runner.invoke(app, ["retention", "show", *server])
    assert "retention 45 days" in done.output and "admin-key" in done.output
    done = runner.invoke(app, ["hold", "add", "--principal", "p-1", "--reason", "case", *server])
    assert done.exit_code == 0 and "placed" in done.output, done.output
    done = runner.invoke(app, ["hold", "list", "--json", *server])
    assert '"target": "p-1"' in done.output
    reader = ["--url", admin_server.url, "--api-key", KEYS["reader"]]
    done = runner.invoke(app, ["retention", "set", "--days", "1", *reader])
    assert done.exit_code == 2 and "403" in done.output
