"""The web console end to end: a real ``serve`` with the demo's recording, a real Chromium.

Each role does what the console offers it: a reader finds the executor's trace of the two-agent
demo and sees its governed posting, paused, inside the executor's run; an operator pauses an
agent, watches a governed tool call park and resumes it; an auditor opens the audit report of
the posting (with what the planner saw before it handed the work over) and downloads it; an
ingest key is refused; a state-changing request without the CSRF token is refused. Reads land in
the access log.
"""

from __future__ import annotations

import re
import threading
from typing import Any

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from playwright.sync_api import expect

from tests.console.conftest import KEYS, Served, sign_in

pytestmark = pytest.mark.integration

AGENT = "finance-controls-agent"
PLANNER = "planner-agent"
CONTROLLER = "controller@acme-corp.example"


def _api(served: Served, role: str, path: str, **params: Any) -> Any:
    resp = httpx.get(
        served.url + path, params=params, headers={"Authorization": f"Bearer {KEYS[role]}"}
    )
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_a_reader_finds_the_demo_trace_and_sees_the_pause_in_its_run(
    context: Any, served: Served
) -> None:
    page = context.new_page()
    sign_in(page, "reader")
    expect(page.get_by_test_id("who")).to_contain_text("reader")
    page.get_by_label("Agent", exact=True).fill(AGENT)
    page.get_by_label("Search").fill("JE-4471")
    page.get_by_role("button", name="Filter").click()
    trace_id = served.demo["trace_id"]
    row = page.locator(f'tr[data-trace-id="{trace_id}"]')
    expect(row).to_be_visible()
    row.get_by_role("link").click()
    page.wait_for_url(f"**/console/traces/{trace_id}")
    spans = page.get_by_test_id("waterfall").locator(".wf-row")
    expect(spans).to_have_count(served.demo["spans_recorded"])
    # the model's answer as a chat: system prompt, the user's question, the assistant's call
    spans.filter(has_text="ChatCompletion").first.click()
    panel = page.get_by_test_id("span-panel")
    expect(panel.locator(".msg-system")).to_have_count(1)
    expect(panel.locator(".msg-user")).to_have_count(1)
    expect(panel.locator(".msg-call")).to_contain_text("lookup_journal_entry")
    expect(panel).to_contain_text("gpt-4o-2024-08-06")  # the model that answered
    expect(panel).to_contain_text(CONTROLLER)  # the principal the planner's handoff delegated
    spans.filter(has_text="retrieve_policies").click()
    expect(panel).to_contain_text("FIN-7")  # a retrieved document, with its text
    # keyboard only: j moves to the next span, Enter opens it
    page.keyboard.press("j")
    page.keyboard.press("Enter")
    expect(panel.locator("h2")).to_contain_text("ChatCompletion")
    # the governed posting, parked by the demo's pause, one level inside the executor's run
    posting_id = served.demo["governance"]["span_id"]
    run_id = served.demo["posting"]["inside"][0]["span_id"]
    posting = spans.and_(page.locator(f'[data-span-id="{posting_id}"]'))
    run = spans.and_(page.locator(f'[data-span-id="{run_id}"]'))
    expect(run).to_contain_text(AGENT)
    expect(posting).to_contain_text("post_controls_decision")
    expect(posting).to_contain_text("paused")
    depth = int(run.get_attribute("data-depth") or "-1")
    assert posting.get_attribute("data-depth") == str(depth + 1)
    posting.click()
    expect(panel.locator("h2")).to_contain_text("post_controls_decision")
    expect(page.get_by_test_id("governance-facts")).to_contain_text("Paused")
    # what the reader read is in the access log, under the reader's key
    entries = _api(served, "auditor", "/api/v1/access-log", key="reader")["entries"]
    routes = {e["route"] for e in entries if e["key_name"] == "reader"}
    assert {"/console/traces", "/console/traces/{trace_id}"} <= routes, routes


def test_new_traces_appear_in_the_list_without_a_reload(context: Any, served: Served) -> None:
    page = context.new_page()
    sign_in(page, "reader")
    provider = TracerProvider(resource=Resource.create({"service.name": "console-live"}))
    provider.add_span_processor(
        SimpleSpanProcessor(
            OTLPSpanExporter(
                endpoint=f"{served.url}/v1/traces",
                headers={"Authorization": f"Bearer {KEYS['ingest']}"},
            )
        )
    )
    with provider.get_tracer("console-test").start_as_current_span("arrived-while-watching") as s:
        new_id = format(s.get_span_context().trace_id, "032x")
    provider.shutdown()
    expect(page.locator(f'tr[data-trace-id="{new_id}"]')).to_be_visible(timeout=20_000)
    assert page.url.endswith("/console/traces")  # no navigation: the rows were polled in


def test_an_operator_pauses_an_agent_and_resumes_its_parked_call(
    context: Any, served: Served
) -> None:
    from agentledger.instrumentation.governance import (
        configure_governance,
        governed_call,
        governed_tool,
    )
    from agentledger.instrumentation.principal import acting_for

    agent = "console-test-agent"
    page = context.new_page()
    sign_in(page, "operator", "/console/governance")
    form = page.get_by_test_id("control-form")
    form.get_by_label("Action").select_option("pause")
    form.get_by_label("Scope").select_option("agent")
    form.get_by_label("Target").fill(agent)
    form.get_by_label("Reason").fill("hold postings for review")
    form.get_by_role("button", name="Record").click()
    paused = page.get_by_test_id("paused").locator(f'tr[data-target="{agent}"]')
    expect(paused).to_contain_text("operator")  # recorded under the key's name

    configure_governance(
        served.url,
        api_key=KEYS["ingest"],
        initial_backoff_s=0.05,
        max_backoff_s=0.2,
        max_pause_s=60,
    )
    post = governed_tool(name="post_journal_entry", policy="FIN-7")(
        lambda entry_id: {"posted": entry_id}
    )
    outcome: dict[str, Any] = {}

    def run() -> None:
        with acting_for("controller@acme-corp.example"), governed_call(agent=agent):
            outcome["result"] = post(entry_id="JE-9001")

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    parked = page.get_by_test_id("parked")
    expect(parked).to_contain_text("post_journal_entry", timeout=20_000)
    assert worker.is_alive() and "result" not in outcome  # parked: the tool body has not run

    paused.get_by_label(re.compile("Reason to resume")).fill("review done")
    paused.get_by_role("button", name="Resume").click()
    expect(page.get_by_role("status")).to_contain_text(f"resumed agent {agent}")
    worker.join(30)
    assert outcome.get("result") == {"posted": "JE-9001"}
    expect(parked).not_to_contain_text("post_journal_entry", timeout=20_000)
    done = page.get_by_test_id("intents").locator("tr", has_text="post_journal_entry").first
    expect(done.locator(".outcome")).to_have_text("ok", timeout=20_000)


def test_an_auditor_reads_and_downloads_the_audit_report(context: Any, served: Served) -> None:
    page = context.new_page()
    sign_in(page, "auditor", "/console/audit")
    posting_id = served.demo["governance"]["span_id"]
    governed = page.get_by_test_id("audit-intents").locator("tr", has_text="post_controls_decision")
    governed.get_by_role("link", name="audit").click()
    page.wait_for_url(f"**/console/audit/{posting_id}")
    actions = page.get_by_test_id("audit-actions")
    expect(actions).to_contain_text("post_controls_decision")
    expect(actions).to_contain_text("gpt-4o-2024-08-06")  # the model call that decided
    expect(actions).to_contain_text(CONTROLLER)
    expect(actions).to_contain_text("intent recorded before it ran")
    # the report lists what the planner saw before it handed the entry over
    frame = page.frame_locator('[data-testid="report-frame"]')
    body = frame.locator("body")
    expect(body).to_contain_text(posting_id)
    expect(body).to_contain_text("What upstream agents saw and handed on")
    expect(body).to_contain_text(f"{PLANNER} -> {AGENT}")
    with page.expect_download() as markdown:
        page.get_by_test_id("download-markdown").click()
    text = open(markdown.value.path(), encoding="utf-8").read()
    assert markdown.value.suggested_filename == f"audit-{posting_id}.md"
    assert text.startswith("# Audit") and posting_id in text and "FIN-7" in text
    assert f"`{PLANNER} -> {AGENT}`" in text and served.demo["planner"]["trace_id"] in text
    with page.expect_download() as html:
        page.get_by_test_id("download-html").click()
    report = open(html.value.path(), encoding="utf-8").read()
    assert report.startswith("<!doctype html>") and posting_id in report
    # the trace's own audit covers both of the executor's tool calls
    page.goto(f"/console/audit/{served.demo['trace_id']}")
    expect(actions).to_contain_text("lookup_journal_entry")
    expect(actions).to_contain_text("post_controls_decision")


def test_a_reader_gets_no_audit_and_no_controls(context: Any, served: Served) -> None:
    page = context.new_page()
    sign_in(page, "reader", "/console/governance")
    expect(page.get_by_test_id("control-form")).to_have_count(0)
    expect(page.get_by_role("navigation", name="Sections")).not_to_contain_text("Audit")
    answer = page.goto("/console/audit")
    assert answer is not None and answer.status == 403
    expect(page.get_by_test_id("problem")).to_contain_text("auditor")


def test_an_ingest_key_is_refused(context: Any, served: Served) -> None:
    page = context.new_page()
    page.goto("/console/traces")
    page.get_by_label("API key").fill(KEYS["ingest"])
    with page.expect_response(lambda r: r.url.endswith("/console/login")) as answer:
        page.get_by_role("button", name="Sign in").click()
    assert answer.value.status == 403
    expect(page.get_by_test_id("problem")).to_contain_text("reads nothing")
    assert not [c for c in context.cookies() if c["name"] == "agentledger_session"]
    assert page.goto("/console/traces").status == 401  # still signed out


def test_a_state_change_without_the_csrf_token_is_refused(context: Any, served: Served) -> None:
    page = context.new_page()
    sign_in(page, "operator", "/console/governance")
    (session,) = [c for c in context.cookies() if c["name"] == "agentledger_session"]
    assert session["httpOnly"] and session["sameSite"] == "Strict"
    assert KEYS["operator"] not in session["value"]  # the cookie holds a session id, not the key
    form = {"action": "pause", "scope": "agent", "target": "csrf-victim", "reason": "forged"}
    refused = context.request.post(f"{served.url}/console/governance/controls", form=form)
    assert refused.status == 403 and "CSRF" in refused.text()
    token = page.locator('input[name="csrf"]').first.get_attribute("value")
    wrong = context.request.post(
        f"{served.url}/console/governance/controls", form={**form, "csrf": "x" * len(token or "")}
    )
    assert wrong.status == 403
    controls = _api(served, "reader", "/v1/controls", all="true")["controls"]
    assert not [c for c in controls if c["target"] == "csrf-victim"]
    # signing out ends the session on the server: the old cookie opens nothing
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/console/login")
    replay = httpx.get(
        f"{served.url}/console/traces", cookies={"agentledger_session": session["value"]}
    )
    assert replay.status_code == 401


def test_usage_shows_the_numbers_of_the_usage_api(context: Any, served: Served) -> None:
    page = context.new_page()
    sign_in(page, "reader", "/console/usage")
    totals = page.get_by_test_id("usage-totals")
    expect(totals).to_be_visible()
    api = _api(served, "reader", "/api/v1/usage", since=_hours_ago(24))["rows"][0]
    assert int(totals.locator('[data-metric="calls"]').inner_text()) == api["calls"]
    assert int(totals.locator('[data-metric="tokens"]').inner_text()) == api["tokens"]
    expect(page.get_by_test_id("by-model")).to_contain_text("gpt-4o-2024-08-06")
    expect(page.locator(".chart canvas").first).to_be_visible()  # uPlot drew the series


def _hours_ago(hours: int) -> str:
    from datetime import datetime, timedelta, timezone

    return (datetime.now(timezone.utc) - timedelta(hours=hours)).isoformat()
