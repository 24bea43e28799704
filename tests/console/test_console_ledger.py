"""The verifiable ledger in the console: an auditor downloads the ledger proof of the demo's
governed posting from its audit report and ``agentledger verify-proof`` accepts it with the log's
public key alone; the ledger page shows the latest signed checkpoint and the witness, and verifies
on demand; the span panel marks a span that is in a signed checkpoint; a reader gets neither
proof nor status. The ``serve`` of ``conftest.py`` appends and signs its first checkpoint one job
interval (60 s) after it starts, so the browser tests wait for it by reloading.
"""

from __future__ import annotations

import base64
import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from tests.console.conftest import CLI, KEYS, Served, _env, sign_in

pytestmark = pytest.mark.integration

FIRST_CHECKPOINT_S = 150
"""The first signed checkpoint comes one job interval (60 s) after ``serve`` starts, later on a
busy machine."""


def _get(served: Served, role: str, path: str, **params: Any) -> httpx.Response:
    return httpx.get(
        served.url + path,
        params=params,
        headers={"Authorization": f"Bearer {KEYS[role]}"},
        timeout=60,
    )


def _posting_span(served: Served) -> tuple[str, str]:
    """(span id, trace id) of the demo's governed tool call: the intent its summary names, else
    the first intent the server holds that ran in a span."""
    named = (served.demo.get("governance") or {}).get("intent_id")
    if named:
        intents = [_get(served, "reader", f"/v1/intents/{named}").json()]
    else:
        intents = _get(served, "reader", "/v1/intents").json()["intents"]
    found = [i for i in intents if i.get("span_id")]
    assert found, f"no governed tool call with a span in {intents}"
    return str(found[0]["span_id"]), str(found[0]["trace_id"])


def _public_key(served: Served) -> str:
    out = subprocess.run(
        [*CLI, "ledger", "public-key", "--data-dir", str(served.data_dir)],
        capture_output=True,
        text=True,
        timeout=120,
        env=_env(),
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def _reload_until(page: Any, path: str, ready: Callable[[], bool], what: str) -> None:
    """Open ``path`` again until ``ready()`` (the background appender signs on its own clock)."""
    deadline = time.monotonic() + FIRST_CHECKPOINT_S
    while True:
        page.goto(path)
        if ready():
            return
        assert time.monotonic() < deadline, f"{what} after {FIRST_CHECKPOINT_S} s"
        page.wait_for_timeout(2000)


def test_an_auditor_downloads_the_postings_ledger_proof_and_it_verifies(
    context: Any, served: Served, tmp_path: Path
) -> None:
    span_id, _ = _posting_span(served)
    page = context.new_page()
    path = f"/console/audit/{span_id}"
    sign_in(page, "auditor", path)
    mark = page.locator(f'[data-testid=ledger-state][data-span-id="{span_id}"]')
    expect(mark).to_be_visible()
    if mark.get_by_test_id("download-proof").count() == 0:  # not signed yet: says when it is
        expect(mark).to_contain_text("not yet in a signed checkpoint")
        expect(mark).to_contain_text("appended within 60 s")
    _reload_until(
        page,
        path,
        lambda: mark.get_by_test_id("download-proof").count() > 0,
        "the posting is not in a signed checkpoint",
    )
    expect(mark).to_contain_text("in a signed checkpoint")
    with page.expect_download() as download:
        mark.get_by_test_id("download-proof").click()
    saved = tmp_path / download.value.suggested_filename
    download.value.save_as(saved)
    assert saved.name == f"proof-span-{span_id}.json"
    proof = json.loads(saved.read_text())
    assert set(proof) == {"checkpoint", "tree_size", "leaf_index", "record", "inclusion_path"}
    record = json.loads(base64.b64decode(proof["record"]))
    assert span_id in json.dumps(record)
    checked = subprocess.run(
        [*CLI, "verify-proof", str(saved), "--key", _public_key(served)],
        capture_output=True,
        text=True,
        timeout=120,
        env=_env(),
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.startswith(f"OK: span {span_id} is leaf {proof['leaf_index']}")
    # the same proof fails under another key: the check is real
    other = subprocess.run(
        [*CLI, "verify-proof", str(saved), "--key", _other_key(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        env=_env(),
    )
    assert other.returncode != 0 and "proof rejected" in other.stdout + other.stderr
    logged = _get(served, "auditor", "/api/v1/access-log", key="auditor", limit=1000).json()
    reads = [e for e in logged["entries"] if e["route"] == "/console/audit/{ref}/proof"]
    assert reads and span_id in reads[0]["object_ids"], reads[:1]


def _other_key(tmp_path: Path) -> str:
    from agentledger.pipeline.tlog import Signer

    return Signer.generate("agentledger").verifier().vkey


def test_the_ledger_page_shows_the_checkpoint_and_witness_and_verifies(
    context: Any, served: Served
) -> None:
    page = context.new_page()
    sign_in(page, "auditor", "/console/audit")
    page.get_by_test_id("ledger-link").click()
    page.wait_for_url("**/console/ledger")
    witness = page.get_by_test_id("witness-state")
    _reload_until(
        page,
        "/console/ledger",
        lambda: "holds the store's latest" in (witness.text_content() or ""),
        "the witness does not hold the latest checkpoint",
    )
    card = page.get_by_test_id("ledger-checkpoint")
    expect(card).to_contain_text("agentledger/default")
    expect(card.get_by_test_id("public-key")).to_have_text(_public_key(served))
    size = int(card.get_by_test_id("tree-size").text_content() or "0")
    note = _get(served, "auditor", "/api/v1/ledger/checkpoint").text
    assert note.splitlines()[1] == str(size) or int(note.splitlines()[1]) > size
    assert page.get_by_test_id("witnessed-size").text_content() == str(size)
    page.get_by_test_id("verify-button").click()
    result = page.get_by_test_id("verify-result")
    expect(result.get_by_test_id("verify-ok")).to_contain_text("OK:", timeout=120_000)
    expect(result).to_contain_text("leaves recomputed")
    assert page.url.endswith("/console/ledger")  # swapped in, no navigation
    logged = _get(served, "auditor", "/api/v1/access-log", key="auditor", limit=1000).json()
    routes = {e["route"] for e in logged["entries"]}
    assert {"/console/ledger", "/console/ledger/verify"} <= routes, routes


def test_the_span_panel_marks_a_span_in_a_signed_checkpoint(context: Any, served: Served) -> None:
    span_id, trace_id = _posting_span(served)
    page = context.new_page()
    path = f"/console/traces/{trace_id}?span={span_id}"
    sign_in(page, "reader", path)
    mark = page.get_by_test_id("span-panel").get_by_test_id("span-ledger")
    _reload_until(
        page,
        path,
        lambda: "in a signed checkpoint" in (mark.text_content() or ""),
        "the span panel does not mark the posting as signed",
    )
    # a span sent a moment ago is not: the panel says when it will be. The appender runs on its
    # own clock; when it signed between the send and the look (the checkpoint grew), try again.
    for _ in range(3):
        before = _signed_size(served)
        fresh = _send_span(served)
        page.goto(f"/console/traces/{fresh}")
        text = mark.text_content() or ""
        if _signed_size(served) == before:
            break
    assert "within 60 s" in text and "in a signed checkpoint" not in text, text


def _signed_size(served: Served) -> int:
    note = _get(served, "auditor", "/api/v1/ledger/checkpoint")
    assert note.status_code == 200, note.text
    return int(note.text.splitlines()[1])


def _send_span(served: Served) -> str:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": "ledger-fresh"}))
    provider.add_span_processor(
        SimpleSpanProcessor(
            OTLPSpanExporter(
                endpoint=f"{served.url}/v1/traces",
                headers={"Authorization": f"Bearer {KEYS['ingest']}"},
            )
        )
    )
    with provider.get_tracer("console-ledger").start_as_current_span("just-arrived") as s:
        trace_id = format(s.get_span_context().trace_id, "032x")
    provider.shutdown()
    deadline = time.monotonic() + 30
    while _get(served, "reader", f"/api/v1/traces/{trace_id}").status_code != 200:
        assert time.monotonic() < deadline, "the sent span was not stored"
        time.sleep(0.2)
    return trace_id


def test_a_reader_gets_neither_proof_nor_ledger_status(context: Any, served: Served) -> None:
    span_id, _ = _posting_span(served)
    for path in ("/console/ledger", "/console/ledger/verify", f"/console/audit/{span_id}/proof"):
        answer = _get(served, "reader", path)
        assert answer.status_code == 403, (path, answer.status_code)
        assert "auditor" in answer.text and "reader role" in answer.text
    page = context.new_page()
    sign_in(page, "reader")
    expect(page.get_by_role("navigation", name="Sections")).not_to_contain_text("Ledger")
    answer = page.goto("/console/ledger")
    assert answer is not None and answer.status == 403


def test_bad_proof_requests_say_what_is_wrong(served: Served) -> None:
    bad = _get(served, "auditor", "/console/audit/not-a-span/proof")
    assert bad.status_code == 400 and "16 hex digits" in bad.text
    unknown = _get(served, "auditor", f"/console/audit/{'0' * 16}/proof")
    assert unknown.status_code == 404 and "not" in unknown.text and "signed" in unknown.text
