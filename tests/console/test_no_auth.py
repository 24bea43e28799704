"""The console of a ``--no-auth`` server: no sign-in, but state changes still need the token."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from agentledger.collector import CollectorSettings
from agentledger.compose import build_embedded_app
from agentledger.pipeline.settings import StoreSettings
from agentledger.pipeline.store.embedded import EmbeddedStore


@pytest.fixture(scope="module")
def client(chdb_path: Path) -> Iterator[TestClient]:
    store = EmbeddedStore(chdb_path, database=f"console_{uuid.uuid4().hex[:10]}")
    app = build_embedded_app(CollectorSettings(no_auth=True, port=0), StoreSettings(), store)
    with TestClient(app) as made:
        yield made
    store.command(f"DROP DATABASE IF EXISTS {store.database}")
    store.close()


def test_no_sign_in_and_an_empty_store_says_what_to_do(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and page.url.path == "/console/traces"
    assert "No traces yet" in page.text and "agentledger.instrument(" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    usage = client.get("/console/usage")
    assert usage.status_code == 200 and "No usage in the last 24h" in usage.text


def test_a_form_needs_the_token_even_without_keys(client: TestClient) -> None:
    form = {"action": "pause", "scope": "agent", "target": "a-1", "reason": "check"}
    refused = client.post("/console/governance/controls", data=form, follow_redirects=False)
    assert refused.status_code == 403 and "CSRF" in refused.text
    token = re.search(r'name="csrf" value="([^"]+)"', client.get("/console/governance").text)
    assert token is not None
    done = client.post(
        "/console/governance/controls",
        data={**form, "csrf": token.group(1)},
        follow_redirects=False,
    )
    assert done.status_code == 303
    assert 'data-target="a-1"' in client.get(done.headers["location"]).text


def test_bad_input_is_a_page_naming_the_problem(client: TestClient) -> None:
    bad = client.get("/console/traces?range=forever")
    assert bad.status_code == 400 and "range" in bad.text and "<html" in bad.text
    missing = client.get("/console/traces/" + "0" * 32)
    assert missing.status_code == 404 and "no trace" in missing.text
    malformed = client.get("/console/traces/not-an-id")
    assert malformed.status_code == 400 and "32 hex digits" in malformed.text
    token = re.search(r'name="csrf" value="([^"]+)"', client.get("/console/governance").text)
    assert token is not None
    no_reason = client.post(
        "/console/governance/controls",
        data={
            "action": "pause",
            "scope": "planet",
            "target": "x",
            "reason": "r",
            "csrf": token.group(1),
        },
    )
    assert no_reason.status_code == 400 and "scope" in no_reason.text
    assert client.get("/console/static/console.css").status_code == 200
    outside = client.get("/console/static/%2e%2e/%2e%2e/policy.py")
    assert outside.status_code == 404 and "def " not in outside.text
