"""Sessions, the agent graph, anomalies and patterns in a real Chromium against a real ``serve``.

A reader follows the demo's session turn by turn into its trace; reads the agent graph of a
multi-agent run sent through the real handoff instrumentation, with the numbers of the graph API,
and goes from an agent (by keyboard) to its traces and from a trace to its graph; an operator
labels the demo's anomaly, which the API then reports, where a reader gets no such form.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from agentledger.demo.agent import DEFAULT_SESSION_ID
from tests.console.conftest import KEYS, Served, sign_in
from tests.console.seeding import HANDOFF_AGENTS, seed_handoffs

pytestmark = pytest.mark.integration


def _api(served: Served, role: str, path: str, **params: Any) -> Any:
    resp = httpx.get(
        served.url + path,
        params=params,
        headers={"Authorization": f"Bearer {KEYS[role]}"},
        timeout=30,
    )
    assert resp.status_code == 200, resp.text
    return resp.json()


def _logged_routes(served: Served, key: str) -> set[str]:
    entries = _api(served, "auditor", "/api/v1/access-log", key=key, limit=1000)["entries"]
    return {e["route"] for e in entries}


@pytest.fixture(scope="module")
def handoff_trace(served: Served) -> str:
    return seed_handoffs(served.url, KEYS["ingest"])


def test_a_reader_reads_the_demo_session_turn_by_turn(context: Any, served: Served) -> None:
    page = context.new_page()
    sign_in(page, "reader", "/console/sessions")
    row = page.get_by_test_id("sessions").locator(f'tr[data-session-id="{DEFAULT_SESSION_ID}"]')
    expect(row).to_contain_text("finance-controls-agent")
    row.get_by_role("link", name=DEFAULT_SESSION_ID).click()
    page.wait_for_url(f"**/console/sessions/{DEFAULT_SESSION_ID}")
    turns = page.get_by_test_id("turns").locator("li.turn")
    expect(turns).to_have_count(1)  # the executor's run; the planner talks in its own session
    first = turns.nth(0)
    assert first.get_attribute("data-trace-id") == served.demo["trace_id"]
    expect(first.locator(".msg-user")).to_contain_text("JE-4471")  # the question, in full
    expect(first.locator(".msg-assistant")).to_contain_text("ESCALATE")  # the decision
    expect(first).to_contain_text(f"{served.demo['tokens']} tokens")
    first.get_by_role("link", name="finance-controls-agent").click()
    page.wait_for_url(f"**/console/traces/{served.demo['trace_id']}")
    # and back: the trace page links to its session
    page.get_by_role("link", name="Session", exact=True).click()
    page.wait_for_url(f"**/console/sessions/{DEFAULT_SESSION_ID}")
    assert "/console/sessions/{session_id}" in _logged_routes(served, "reader")


def test_session_empty_states_say_what_to_do(context: Any, served: Served) -> None:
    page = context.new_page()
    sign_in(page, "reader", "/console/sessions?agent=no-such-agent")
    expect(page.get_by_test_id("empty")).to_contain_text("using_attributes(session_id=")
    answer = page.goto("/console/sessions/no-such-session")
    assert answer is not None and answer.status == 404
    expect(page.get_by_test_id("problem")).to_contain_text("no-such-session")


def test_the_agent_graph_shows_the_handoffs_and_leads_to_traces(
    context: Any, served: Served, handoff_trace: str
) -> None:
    triage, posting, review = HANDOFF_AGENTS
    api = _api(served, "reader", "/api/v1/agents/graph")
    edge = next(e for e in api["edges"] if (e["source"], e["target"]) == (triage, posting))
    assert (edge["handoffs"], edge["errors"]) == (3, 1)
    page = context.new_page()
    sign_in(page, "reader", "/console/graph")
    graph = page.get_by_test_id("agent-graph")
    for agent in HANDOFF_AGENTS:
        expect(graph.locator(f'a.node[data-agent="{agent}"]')).to_be_visible()
    label = graph.locator(f'a.edge[data-edge="{triage}->{posting}"] text')
    expect(label).to_have_text(f"3 handoffs · 1 err · ${edge['cost_usd']:.4f}")
    expect(graph.locator(f'a.edge[data-edge="{posting}->{review}"] text')).to_contain_text(
        "1 handoff ·"
    )
    # left to right in handoff order
    xs = [
        float(graph.locator(f'a.node[data-agent="{a}"] rect').get_attribute("x") or "nan")
        for a in HANDOFF_AGENTS
    ]
    assert xs == sorted(xs) and len(set(xs)) == 3, xs
    table = page.get_by_test_id("graph-edges").locator(f'tr[data-edge="{triage}->{posting}"]')
    expect(table).to_contain_text("1 (33%)")
    # keyboard: an agent is a link; Enter opens its traces
    graph.locator(f'a.node[data-agent="{posting}"]').focus()
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/console/traces?*agent={posting}*")
    rows = page.get_by_test_id("traces").locator("tbody tr")
    expect(rows).to_have_count(3)  # the three runs the triage agent handed over
    # a trace's own graph, from the trace page
    page.goto(f"/console/traces/{handoff_trace}")
    page.get_by_test_id("trace-graph").click()
    page.wait_for_url(f"**/console/graph?trace={handoff_trace}")
    own = page.get_by_test_id("agent-graph")
    expect(own.locator("a.node")).to_have_count(3)  # the demo's agent is not in this run
    expect(own.locator(f'a.edge[data-edge="{triage}->{posting}"] text')).to_contain_text(
        "3 handoffs"
    )
    assert "/console/graph" in _logged_routes(served, "reader")


def test_a_reader_sees_anomalies_with_evidence_and_no_actions(context: Any, served: Served) -> None:
    page = context.new_page()
    sign_in(page, "reader", "/console/anomalies")
    page.get_by_label("Type").select_option("")  # "any", as the filter form sends it
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**/console/anomalies?range=7d&type=")
    listed = page.get_by_test_id("anomalies").locator("li.anomaly")
    demo = listed.filter(has_text="sensitive egress").first
    expect(demo).to_contain_text("sent email data")  # the detector's evidence
    expect(demo.get_by_role("link", name=served.demo["trace_id"][:12] + "…")).to_be_visible()
    expect(page.locator("form.anomaly-actions")).to_have_count(0)
    expect(page.get_by_test_id("detect-form")).to_have_count(0)
    empty = page.goto("/console/anomalies?type=error_burst")
    assert empty is not None and empty.status == 200
    expect(page.get_by_test_id("empty")).to_contain_text("an operator can also run it now")
    # patterns: the demo's tool sequence and its input topic
    page.goto("/console/patterns")
    expect(page.get_by_test_id("sequences")).to_contain_text("lookup_journal_entry")
    expect(page.get_by_test_id("topics")).to_contain_text("approval")


def test_an_operator_labels_an_anomaly_and_runs_detection(context: Any, served: Served) -> None:
    page = context.new_page()
    sign_in(page, "operator", "/console/anomalies")
    card = page.get_by_test_id("anomalies").locator("li.anomaly", has_text="sensitive egress")
    card = card.first
    anomaly_id = card.get_attribute("data-anomaly-id")
    card.get_by_label("Note").fill("test data: the address is a demo fixture")
    card.get_by_label("Label").select_option("false_alarm")
    card.get_by_role("button", name="Label").click()
    expect(page.get_by_role("status")).to_contain_text("label false alarm")
    labelled = page.locator(f'li[data-anomaly-id="{anomaly_id}"]')
    expect(labelled.get_by_test_id("label")).to_have_text("false alarm")
    expect(labelled.get_by_test_id("acked")).to_be_visible()
    stored = _api(served, "reader", "/api/v1/anomalies")
    assert next(a for a in stored if a["anomaly_id"] == anomaly_id)["label"] == "false_alarm"
    # a label needs a choice: a clear 400, nothing recorded
    labelled.get_by_role("button", name="Label").click()
    expect(page.get_by_test_id("problem")).to_contain_text("true alarm or false alarm")
    page.goto("/console/anomalies")
    page.get_by_test_id("detect-form").get_by_role("button").click()
    expect(page.get_by_role("status")).to_contain_text("detection ran")
