"""Datasets and replays in a real Chromium against a real ``serve``, and the console in dark mode.

A reader walks the demo's dataset lineage both ways (manifest -> its spans -> each span's
datasets), exports a redacted dataset from the form and is refused an unredacted one (the API's
rule); an auditor opens a stored drift report and reads the recorded and replayed answers side by
side, where a reader has no Replays at all.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from tests.console.conftest import KEYS, Served, sign_in
from tests.console.seeding import seed_replay

pytestmark = pytest.mark.integration

AGENT = "finance-controls-agent"


def _api(served: Served, role: str, path: str, **params: Any) -> Any:
    resp = httpx.get(
        served.url + path,
        params=params,
        headers={"Authorization": f"Bearer {KEYS[role]}"},
        timeout=30,
    )
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_a_reader_follows_dataset_lineage_both_ways(context: Any, served: Served) -> None:
    dataset = served.demo["dataset"]
    page = context.new_page()
    sign_in(page, "reader", "/console/datasets")
    row = page.get_by_test_id("datasets").locator(f'tr[data-dataset-id="{dataset["id"]}"]')
    expect(row).to_contain_text("secret,iban,card,email,phone")  # how it was redacted
    row.get_by_role("link").click()
    page.wait_for_url(f"**/console/datasets/{dataset['id']}")
    expect(page.get_by_test_id("manifest")).to_contain_text(f"{dataset['examples']} of")
    spans = page.get_by_test_id("dataset-spans").locator("tbody tr")
    expect(spans).to_have_count(len(dataset["source_span_ids"]))  # dataset -> spans
    shown = {spans.nth(i).get_attribute("data-span-id") for i in range(spans.count())}
    assert shown == set(dataset["source_span_ids"])
    span_id = sorted(shown)[0]
    spans.filter(has_text=span_id or "").get_by_role("link", name="its datasets").click()
    page.wait_for_url(f"**/console/spans/{span_id}/datasets")  # span -> datasets
    expect(page.get_by_test_id("span-datasets").locator("tr[data-dataset-id]")).to_contain_text(
        "train"
    )
    # the lineage form on the list page leads to the same place; a span in no dataset says so
    page.goto("/console/datasets")
    page.get_by_label("Which datasets hold a span?").fill("0123456789abcdef")
    page.get_by_role("button", name="Find datasets").click()
    page.wait_for_url("**/console/spans/0123456789abcdef/datasets")
    expect(page.get_by_test_id("empty")).to_contain_text("export a dataset")
    assert page.goto("/console/spans/not-a-span/datasets").status == 400


def test_a_reader_exports_redacted_and_is_refused_unredacted(context: Any, served: Served) -> None:
    page = context.new_page()
    sign_in(page, "reader", "/console/datasets")
    form = page.get_by_test_id("export-form")
    expect(form.locator('select[name="redact"] option[value="none"]')).to_be_disabled()
    form.get_by_label("Directory").fill("console-export-1")
    form.get_by_label("Name").fill("reader's redacted set")
    form.get_by_label("Spans since").select_option("all")
    form.get_by_label("Agent").fill(AGENT)
    form.get_by_role("button", name="Export").click()
    page.wait_for_url("**/console/datasets/ds-*")
    expect(page.get_by_role("status")).to_contain_text("exported")
    manifest = page.get_by_test_id("manifest")
    expect(manifest).to_contain_text("agentledger-export@1:secret,iban,card,email,phone")
    dataset_id = page.url.rsplit("/", 1)[1].split("?")[0]
    listed = _api(served, "reader", f"/api/v1/datasets/{dataset_id}")
    assert listed["counts"]["examples"] >= 1 and listed["name"] == "reader's redacted set"
    written = served.data_dir.parent / "exports" / "default" / "console-export-1"
    assert (written / "manifest.json").is_file()
    # the disabled option is no protection by itself: the server refuses a reader's "none"
    token = page.locator('input[name="csrf"]').first.get_attribute("value") or ""
    refused = context.request.post(
        f"{served.url}/console/datasets",
        form={"csrf": token, "out_dir": "console-export-2", "redact": "none", "since": "all"},
    )
    assert refused.status == 403 and "admin" in refused.text()
    assert not (written.parent / "console-export-2").exists()
    outside = context.request.post(
        f"{served.url}/console/datasets",
        form={"csrf": token, "out_dir": "../../escape", "since": "all"},
    )
    assert outside.status == 403


def test_an_auditor_reads_a_drift_report_side_by_side(context: Any, served: Served) -> None:
    run_id = seed_replay(served.url, KEYS["auditor"], AGENT)
    stored = _api(served, "auditor", f"/api/v1/replays/{run_id}")
    assert stored["summary"]["drifted"] == 1
    page = context.new_page()
    sign_in(page, "auditor", "/console/replays")
    row = page.get_by_test_id("replays").locator(f'tr[data-run-id="{run_id}"]')
    expect(row).to_contain_text("gpt-4o-mini")
    row.get_by_role("link").click()
    page.wait_for_url(f"**/console/replays/{run_id}")
    expect(page.get_by_test_id("drift-summary").locator('[data-metric="drifted"]')).to_have_text(
        "1"
    )
    calls = page.get_by_test_id("replay-calls").locator("li.card")
    expect(calls).to_have_count(stored["summary"]["replayed"])
    drifted = calls.filter(has=page.get_by_test_id("drift"))
    expect(drifted).to_have_count(1)
    expect(drifted.locator(".diff-left del")).to_contain_text("ESCALATE")  # recorded, struck
    expect(drifted.locator(".diff-right ins").first).to_contain_text("APPROVE")  # replayed
    added = drifted.locator("tr.diff-insert .diff-right")  # a line only the replay has
    expect(added).to_have_text("No further approval is needed.")
    # the unchanged call shows its tool call on both sides, nothing marked
    same = calls.filter(has_text="lookup_journal_entry").filter(
        has_not=page.get_by_test_id("drift")
    )
    expect(same.locator(".diff-left")).to_contain_text(
        'lookup_journal_entry({"entry_id": "JE-4471"})'
    )
    expect(same.locator("del, ins")).to_have_count(0)
    drifted.get_by_role("link").first.click()  # into the recorded call's trace
    page.wait_for_url(f"**/console/traces/{served.demo['trace_id']}?span=*")
    entries = _api(served, "auditor", "/api/v1/access-log", key="auditor", limit=1000)["entries"]
    assert any(
        e["route"] == "/console/replays/{run_id}" and run_id in json.dumps(e) for e in entries
    )


def test_a_reader_has_no_replays(context: Any, served: Served) -> None:
    page = context.new_page()
    sign_in(page, "reader", "/console/traces")
    nav = page.get_by_role("navigation", name="Sections")
    expect(nav).to_contain_text("Datasets")
    expect(nav).not_to_contain_text("Replays")
    answer = page.goto("/console/replays")
    assert answer is not None and answer.status == 403
    expect(page.get_by_test_id("problem")).to_contain_text("auditor")


def test_the_pages_follow_a_dark_system_setting(browser: Any, served: Served) -> None:
    colours = {}
    for scheme in ("light", "dark"):
        made = browser.new_context(
            base_url=served.url, viewport={"width": 1280, "height": 800}, color_scheme=scheme
        )
        try:
            page = made.new_page()
            sign_in(page, "reader", "/console/graph")
            colours[scheme] = page.evaluate(
                "() => [getComputedStyle(document.body).backgroundColor,"
                " getComputedStyle(document.querySelector('a.node rect') || document.body).fill]"
            )
        finally:
            made.close()
    assert colours["light"][0] != colours["dark"][0], colours
    assert colours["light"][1] != colours["dark"][1], colours
