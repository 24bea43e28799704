"""Every role against every route, from the README's role table; keys, revocation, identity.

The README's table is parsed here (not ``collector/policy.py``): what the documentation promises is
what is sent, and a second test holds the table and the policy equal, so neither can drift.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from agentledger.collector import CollectorSettings
from agentledger.collector.policy import ROUTES, missing_routes
from agentledger.compose import build_embedded_app
from agentledger.pipeline.settings import StoreSettings
from agentledger.pipeline.store.embedded import EmbeddedStore
from agentledger.schemas.access import GRANTS, Permission, Role

README = Path(__file__).resolve().parents[2] / "README.md"
PB = "application/x-protobuf"
SECRETS = {role: f"secret-{role.value}-0123456789" for role in Role}
BOOTSTRAP = ",".join(f"acme:{r.value}:{r.value}-key={s}" for r, s in SECRETS.items())
_ROW = re.compile(r"^\| `(GET|POST|DELETE|PUT|PATCH) (/[^`]*)` \| (\w+) \|(.*)\|\s*$")
_FILL = {
    "trace_id": "0" * 32,
    "span_id": "0" * 16,
    "intent_id": "0" * 32,
    "content_hash": "0" * 64,
    "dataset_id": "ds-none",
    "name": "nobody",
    "run_id": "0" * 32,
    "ref": "0" * 32,
    "anomaly_id": "0" * 32,
    "session_id": "no-such-session",
    "hold_id": "0" * 32,
}


def readme_table() -> dict[tuple[str, str], dict[Role, bool]]:
    """(method, path) -> {role: allowed}, as the README's role table says."""
    lines = README.read_text().splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("| Route | Needs |"))
    roles = [Role(c.strip()) for c in lines[header].strip("|").split("|")[2:]]
    table: dict[tuple[str, str], dict[Role, bool]] = {}
    for line in lines[header + 2 :]:
        match = _ROW.match(line)
        if match is None:
            break
        cells = [c.strip() for c in match.group(4).split("|")]
        assert set(cells) <= {"yes", "403"}, line
        table[(match.group(1), match.group(2))] = {
            role: cell == "yes" for role, cell in zip(roles, cells, strict=True)
        }
    return table


TABLE = readme_table()


@pytest.fixture(scope="module")
def app_client(chdb_path: Path) -> Iterator[TestClient]:
    # chDB opens one path per process: the session's, with a database of this module's own
    store = EmbeddedStore(chdb_path, database=f"roles_{uuid.uuid4().hex[:12]}")
    settings = CollectorSettings(api_keys=BOOTSTRAP, port=0, keys_refresh_s=0.5)
    app = build_embedded_app(settings, StoreSettings(), store)
    with TestClient(app) as client:
        yield client
    store.command(f"DROP DATABASE IF EXISTS {store.database}")
    store.close()


def _as(role: Role) -> dict[str, str]:
    return {"Authorization": f"Bearer {SECRETS[role]}"}


def test_the_readme_table_is_the_policy() -> None:
    assert len(TABLE) == len(ROUTES) > 30
    for (method, path), allowed in TABLE.items():
        needed = ROUTES[(method, path)]
        assert allowed == {
            role: needed is Permission.PUBLIC or needed in GRANTS[role] for role in Role
        }, f"{method} {path}"


def test_every_route_of_the_app_has_a_rule(app_client: TestClient) -> None:
    assert missing_routes(app_client.app.routes) == []  # type: ignore[attr-defined]


@pytest.mark.parametrize("route", sorted(TABLE), ids=lambda r: f"{r[0]} {r[1]}")
def test_each_role_on_each_route(app_client: TestClient, route: tuple[str, str]) -> None:
    method, template = route
    path = re.sub(r"\{(\w+)\}", lambda m: _FILL[m.group(1)], template)
    for role, allowed in TABLE[route].items():
        kwargs: dict[str, object] = {"headers": _as(role)}
        if method == "POST" and path == "/v1/traces":
            kwargs["content"] = b""
            kwargs["headers"] = {**_as(role), "Content-Type": "application/x-protobuf"}
        elif method == "POST":
            kwargs["json"] = {}
        resp = app_client.request(method, path, **kwargs)  # type: ignore[arg-type]
        if allowed:
            assert resp.status_code not in (401, 403), (role, resp.status_code, resp.text[:300])
        else:
            assert resp.status_code == 403, (role, resp.status_code, resp.text[:300])
            needed = ROUTES[route]
            detail = resp.text
            assert "needs the" in detail and f"has the {role.value} role" in detail
            assert all(r.value in detail for r in Role if needed in GRANTS[r])
    if ROUTES[route] is not Permission.PUBLIC:
        assert app_client.request(method, path).status_code == 401


def test_an_ingest_key_reads_nothing_and_cannot_pause(app_client: TestClient) -> None:
    ingest = _as(Role.INGEST)
    for path in ("/api/v1/traces", "/api/v1/traces/" + "0" * 32, "/api/v1/contents/" + "0" * 64):
        resp = app_client.get(path, headers=ingest)
        assert resp.status_code == 403 and "reader" in resp.json()["detail"]
    for action in ("pause", "resume"):
        body = {"action": action, "scope": "agent", "target": "support", "by": "compliance"}
        resp = app_client.post("/v1/controls", json=body, headers=ingest)
        assert resp.status_code == 403 and "operator" in resp.json()["detail"]


def test_an_operators_pause_records_the_keys_name_whatever_by_says(
    app_client: TestClient,
) -> None:
    body = {"action": "pause", "scope": "agent", "target": "a-1", "by": "compliance-officer"}
    resp = app_client.post("/v1/controls", json=body, headers=_as(Role.OPERATOR))
    assert resp.status_code == 200, resp.text
    listed = app_client.get("/v1/controls", headers=_as(Role.READER)).json()
    mine = [c for c in listed["controls"] if c["target"] == "a-1"]
    assert mine and mine[0]["by"] == "operator-key"
    assert mine[0]["note"] == "compliance-officer"


def test_keys_made_over_the_api_work_and_a_revoked_key_is_refused(
    app_client: TestClient,
) -> None:
    admin = _as(Role.ADMIN)
    made = app_client.post("/api/v1/keys", json={"name": "bot-1", "role": "reader"}, headers=admin)
    assert made.status_code == 201, made.text
    secret = made.json()["key"]
    assert made.json()["tenant"] == "acme" and secret.startswith("al_")
    bot = {"Authorization": f"Bearer {secret}"}
    assert app_client.get("/api/v1/traces", headers=bot).status_code == 200
    again = app_client.post("/api/v1/keys", json={"name": "bot-1", "role": "admin"}, headers=admin)
    assert again.status_code == 409
    listed = app_client.get("/api/v1/keys", headers=admin).json()["keys"]
    (bot_1,) = [k for k in listed if k["name"] == "bot-1"]
    assert bot_1["changed_by"] == "admin-key" and secret not in str(listed)
    revoked = app_client.delete("/api/v1/keys/bot-1", headers=admin)
    assert revoked.status_code == 200 and revoked.json()["status"] == "revoked"
    deadline = time.monotonic() + 10
    while app_client.get("/api/v1/traces", headers=bot).status_code != 401:
        assert time.monotonic() < deadline, "the revoked key still works after 10 s"
        time.sleep(0.1)
    other_tenant = app_client.post(
        "/api/v1/keys", json={"name": "x-1", "role": "reader", "tenant": "globex"}, headers=admin
    )
    assert other_tenant.status_code == 403


def test_a_key_revoked_on_the_store_is_refused_within_ten_seconds(
    app_client: TestClient, tmp_path: Path
) -> None:
    from agentledger.pipeline.services.access import KeyBook

    store = app_client.app.state.services.store  # type: ignore[attr-defined]
    book = KeyBook(store)
    made = book.create("acme", Role.READER, "elsewhere", actor="cli")
    key = {"Authorization": f"Bearer {made.key}"}
    started = time.monotonic()  # another replica's key: known here within the refresh interval
    while app_client.get("/api/v1/traces", headers=key).status_code != 200:
        assert time.monotonic() - started < 10, "a key made on the store is not known here"
        time.sleep(0.1)
    book.revoke("elsewhere", actor="cli")  # as another replica or the CLI would
    started = time.monotonic()
    while app_client.get("/api/v1/traces", headers=key).status_code != 401:
        assert time.monotonic() - started < 10, "the revoked key still works after 10 s"
        time.sleep(0.1)


def test_a_readers_trace_read_is_in_the_access_log(app_client: TestClient) -> None:
    trace_id = "ab" * 16
    read = app_client.get(f"/api/v1/traces/{trace_id}", headers=_as(Role.READER))
    assert read.status_code == 404  # not stored: nothing was read, nothing logged
    app_client.get("/api/v1/traces", headers=_as(Role.READER))
    log = app_client.get("/api/v1/access-log", headers=_as(Role.AUDITOR))
    assert log.status_code == 200, log.text
    body = log.json()
    assert body["intact"] is True and body["problems"] == []
    newest = body["entries"][0]
    assert newest["key_name"] == "reader-key" and newest["role"] == "reader"
    assert newest["route"] == "/api/v1/traces" and newest["method"] == "GET"
    assert app_client.get("/api/v1/access-log", headers=_as(Role.READER)).status_code == 403


def test_no_auth_is_refused_off_loopback() -> None:
    with pytest.raises(ValueError, match="loopback"):
        CollectorSettings(no_auth=True, host="0.0.0.0")
    assert CollectorSettings(no_auth=True, host="::1").no_auth


def test_bootstrap_keys_name_and_role() -> None:
    from agentledger.collector.settings import parse_api_keys

    parsed = parse_api_keys("acme:reader:r1=s1,beta=s2")
    by_name = {k.name: k for k in parsed.values()}
    assert by_name["r1"].role is Role.READER and not by_name["r1"].legacy
    legacy = next(k for k in parsed.values() if k.legacy)
    assert legacy.role is Role.ADMIN and legacy.tenant == "beta"
    with pytest.raises(ValueError, match="role 'boss'"):
        parse_api_keys("acme:boss:r1=s1")
    with pytest.raises(ValueError, match="unique"):
        parse_api_keys("acme:reader:r1=s1,acme:admin:r1=s2")


def test_a_key_bound_to_an_agent_sends_for_that_agent_only(app_client: TestClient) -> None:
    admin = _as(Role.ADMIN)
    made = app_client.post(
        "/api/v1/keys",
        json={"name": "support-bot", "role": "ingest", "agent": "support"},
        headers=admin,
    )
    assert made.status_code == 201, made.text
    bot = {"Authorization": f"Bearer {made.json()['key']}"}

    def ask(agent: str, n: int) -> int:
        body = {
            "intent_id": f"{n:032x}",
            "tool_name": "refund",
            "arguments_sha256": "0" * 64,
            "agent_name": agent,
        }
        return app_client.post("/v1/intents", json=body, headers=bot).status_code

    assert ask("support", 1) == 200
    assert ask("billing", 2) == 403 and ask("", 3) == 403
    listed = {k["name"]: k for k in app_client.get("/api/v1/keys", headers=admin).json()["keys"]}
    assert listed["support-bot"]["agent"] == "support"
    assert listed["support-bot"]["refused_here"] == 2


def test_an_access_entry_removed_or_changed_breaks_the_chain_and_verify(store) -> None:
    from agentledger.pipeline.services import reads
    from agentledger.pipeline.services.access import AccessRecorder, read_access_log

    recorder = AccessRecorder(store, writer="w-test")
    for n in range(3):
        recorder.record(
            "acme", key_name="r", role="reader", method="GET", route="/x", object_ids=[str(n)]
        )
    intact = read_access_log(store, "acme", limit=10)
    assert intact.intact and [e.object_ids for e in intact.entries] == [["2"], ["1"], ["0"]]
    assert reads.verify_ledger(store, "acme").ok
    middle = intact.entries[1].access_id
    store.command(  # what someone with write access to the store would do to hide a read
        "ALTER TABLE records DELETE WHERE record_id = {id:String} SETTINGS mutations_sync = 2",
        {"id": middle},
    )
    broken = read_access_log(store, "acme", limit=10)
    assert not broken.intact and "1 of 2 entries are off its chain" in broken.problems[0]
    report = reads.verify_ledger(store, "acme")
    assert not report.ok and report.problems[0].kind == "access_log"


def test_every_span_names_the_key_that_sent_it(app_client: TestClient) -> None:
    from bench.traffic import requests

    (req,) = list(requests(1, runs_per_request=1, seed=515))
    trace_id = req.resource_spans[0].scope_spans[0].spans[0].trace_id.hex()
    sent = app_client.post(
        "/v1/traces",
        content=req.SerializeToString(),
        headers={**_as(Role.INGEST), "Content-Type": "application/x-protobuf"},
    )
    assert sent.status_code == 200, sent.text
    trace = app_client.get(f"/api/v1/traces/{trace_id}", headers=_as(Role.READER)).json()
    assert trace["spans"] and {s["sent_by"] for s in trace["spans"]} == {"ingest-key"}
    again = app_client.post(  # the same spans from another key: the same spans, stored once
        "/v1/traces",
        content=req.SerializeToString(),
        headers={**_as(Role.ADMIN), "Content-Type": "application/x-protobuf"},
    )
    assert again.status_code == 200 and b"rejected" not in again.content
    trace = app_client.get(f"/api/v1/traces/{trace_id}", headers=_as(Role.READER)).json()
    assert {s["sent_by"] for s in trace["spans"]} == {"ingest-key"}


def test_an_operator_labels_an_anomaly_through_the_api(app_client: TestClient) -> None:
    from datetime import datetime, timezone

    store = app_client.app.state.services.store  # type: ignore[attr-defined]
    now = datetime.now(timezone.utc)
    store.command(  # an anomaly as the detection job stores one
        "INSERT INTO anomalies (tenant, anomaly_id, type, detected_at, window_start, window_end, "
        "dimensions, score, detail) VALUES ('acme', {id:String}, 'error_burst', {t:DateTime64(3)}, "
        "{t:DateTime64(3)}, {t:DateTime64(3)}, map('agent', 'a-1'), 9, 'errors')",
        {"id": "f" * 32, "t": now.replace(tzinfo=None)},
    )
    body = {"action": "label", "label": "false_alarm", "note": "a test run"}
    url = f"/api/v1/anomalies/{'f' * 12}/actions"
    assert app_client.post(url, json=body, headers=_as(Role.READER)).status_code == 403
    done = app_client.post(url, json=body, headers=_as(Role.OPERATOR))
    assert done.status_code == 200, done.text
    assert done.json()["anomaly_id"] == "f" * 32 and done.json()["label"] == "false_alarm"
    listed = app_client.get("/api/v1/anomalies", headers=_as(Role.READER)).json()
    mine = [a for a in listed if a["anomaly_id"] == "f" * 32]
    assert mine and mine[0]["label"] == "false_alarm"
    bad = app_client.post(url, json={"action": "label"}, headers=_as(Role.OPERATOR))
    assert bad.status_code == 400


def test_keys_and_the_access_log_on_a_clickhouse_server(ch_store) -> None:
    """The key book and the access log are records: the same code on clickhouse-connect."""
    from agentledger.pipeline.services.access import (
        AccessRecorder,
        KeyBook,
        KeyConflict,
        read_access_log,
    )

    book = KeyBook(ch_store)
    made = book.create("acme", Role.AUDITOR, "ch-auditor", actor="cli")
    assert [k.name for k in book.active()] == ["ch-auditor"]
    with pytest.raises(KeyConflict):
        book.create("beta", Role.READER, "ch-auditor", actor="cli")
    assert book.revoke("ch-auditor", actor="cli").status == "revoked" and book.active() == []
    assert made.key not in str(ch_store.query_rows("SELECT body FROM records"))
    recorder = AccessRecorder(ch_store)
    recorder.record("acme", key_name="ch-auditor", role="auditor", method="GET", route="/x")
    log = read_access_log(ch_store, "acme", limit=5)
    assert log.intact and [e.key_name for e in log.entries] == ["ch-auditor"]


def test_a_key_bound_to_an_agent_has_its_spans_of_other_agents_refused(
    app_client: TestClient,
) -> None:
    import random

    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
        ExportTraceServiceResponse,
    )

    from bench.traffic import SPANS_PER_RUN, add_run

    admin = _as(Role.ADMIN)
    made = app_client.post(
        "/api/v1/keys",
        json={"name": "recon-bot", "role": "ingest", "agent": "recon"},
        headers=admin,
    )
    assert made.status_code == 201, made.text
    req = ExportTraceServiceRequest()
    scope = req.resource_spans.add().scope_spans.add()
    rng = random.Random(77)
    own = add_run(scope, rng, 0, 1_790_000_000_000_000_000, agent="recon")
    other = add_run(scope, rng, 1, 1_790_000_003_000_000_000, agent="payments")
    sent = app_client.post(
        "/v1/traces",
        content=req.SerializeToString(),
        headers={"Authorization": f"Bearer {made.json()['key']}", "Content-Type": PB},
    )
    assert sent.status_code == 200, sent.text
    answer = ExportTraceServiceResponse.FromString(sent.content).partial_success
    assert answer.rejected_spans == SPANS_PER_RUN
    assert "may send spans for agent 'recon' only" in answer.error_message
    assert "payments" in answer.error_message
    reader = _as(Role.READER)
    assert len(app_client.get(f"/api/v1/traces/{own}", headers=reader).json()["spans"]) == (
        SPANS_PER_RUN
    )
    assert app_client.get(f"/api/v1/traces/{other}", headers=reader).status_code == 404
    listed = {k["name"]: k for k in app_client.get("/api/v1/keys", headers=admin).json()["keys"]}
    assert listed["recon-bot"]["refused_here"] == SPANS_PER_RUN
