"""The two-agent demo as an auditor reads it back: ``agentledger demo`` run as users run it, then
its data directory read with ``trace``, ``agents graph`` and ``audit`` (child processes).

The planner hands JE-4471 to the finance-controls executor over a queue; the executor's trace is
its own, joined to the planner's handoff span by the handoff id; the compliance pause parks the
executor's governed posting inside the executor's run; the audit of that posting lists what the
planner saw before it handed the work over.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agentledger.schemas.attributes import AgentLedger as AL
from agentledger.schemas.attributes import Governance as GOV

pytestmark = pytest.mark.integration

CLI = [sys.executable, "-m", "agentledger.cli"]
PLANNER, EXECUTOR = "planner-agent", "finance-controls-agent"
CONTROLLER = "controller@acme-corp.example"


def _cli(*args: str) -> Any:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AGENTLEDGER_", "OTEL_"))}
    done = subprocess.run(
        [*CLI, *args], capture_output=True, text=True, timeout=300, env=env, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    data = tmp_path_factory.mktemp("two-agents") / "data"
    summary = _cli("demo", "--json", "--data-dir", str(data))
    summary["_data"] = str(data)
    return summary


def _spans(demo: dict[str, Any], trace_id: str) -> list[dict[str, Any]]:
    return _cli("trace", trace_id, "--json", "--data-dir", demo["_data"])["spans"]  # type: ignore[no-any-return]


def test_the_parked_posting_sits_inside_the_executors_run(demo: dict[str, Any]) -> None:
    spans = _spans(demo, demo["trace_id"])
    by_id = {s["span_id"]: s for s in spans}
    (posting,) = [s for s in spans if s["tool_name"] == "post_controls_decision"]
    assert posting["span_id"] == demo["governance"]["span_id"]
    assert posting["trace_id"] == demo["trace_id"] == demo["governance"]["trace_id"]
    # parked by the pause, then let through by the resume
    assert posting["attributes"][GOV.INTENT_DECISION] == "proceed"
    assert float(posting["attributes"][GOV.INTENT_PAUSED_S]) > 0
    path, parent = [], posting["parent_span_id"]
    while parent:
        path.append(by_id[parent])  # a parent outside the trace would raise KeyError here
        parent = by_id[parent]["parent_span_id"]
    assert [(s["name"], s["agent_name"]) for s in path] == [
        (EXECUTOR, EXECUTOR),  # the executor's run span (OpenInference AGENT)
        (f"invoke_agent {EXECUTOR}", EXECUTOR),  # where the handoff was received
    ]
    assert demo["posting"]["inside"] == [
        {"span_id": s["span_id"], "name": s["name"], "kind": s["kind"]} for s in path
    ]
    # the run decided before it posted, and the posting ran once, after the resume
    decision = max((s for s in spans if s["kind"] == "LLM"), key=lambda s: s["start_time"])
    assert decision["end_time"] <= posting["start_time"]
    gov = demo["governance"]
    assert gov["decision"] == "proceed" and gov["outcome"] == "ok" and gov["asks"] >= 2
    assert [c["action"] for c in gov["controls"]] == ["resume", "pause"]
    assert gov["result"]["decision"] == "ESCALATE" and gov["result"]["routed_to"] == [
        "Corporate Controller",
        "CFO",
    ]


def test_the_executors_trace_is_joined_to_the_planners_handoff(demo: dict[str, Any]) -> None:
    planner = _spans(demo, demo["planner"]["trace_id"])
    executor = _spans(demo, demo["trace_id"])
    (sent,) = [s for s in planner if s["attributes"].get(AL.HANDOFF_ID)]
    (root,) = [s for s in executor if not s["parent_span_id"]]
    assert sent["name"] == f"handoff {EXECUTOR}" and sent["agent_name"] == PLANNER
    assert sent["attributes"][AL.HANDOFF_TO_AGENT] == EXECUTOR
    # a queue handoff: the executor runs in a trace of its own, joined by handoff and run id
    assert sent["trace_id"] != root["trace_id"]
    assert root["attributes"][AL.HANDOFF_ID] == sent["attributes"][AL.HANDOFF_ID]
    assert root["attributes"][AL.HANDOFF_FROM_AGENT] == PLANNER
    assert root["attributes"][AL.RUN_ID] == sent["attributes"][AL.RUN_ID]
    # the handoff span is the planner's hand_off tool call, which its model chose
    planner_by_id = {s["span_id"]: s for s in planner}
    tool = planner_by_id[sent["parent_span_id"]]
    assert tool["tool_name"] == "hand_off" and tool["agent_name"] == PLANNER
    handoff = demo["handoff"]
    assert (handoff["sent_span_id"], handoff["received_span_id"]) == (
        sent["span_id"],
        root["span_id"],
    )
    assert handoff["scopes_handed"] == ["entries:read", "decisions:post"]  # no entries:approve
    # every span of the executor carries the chain and the controller the planner acted for
    assert demo["delegation_chain"] == [CONTROLLER, PLANNER, EXECUTOR]
    for span in executor:
        assert json.loads(span["attributes"][AL.DELEGATION_CHAIN]) == [PLANNER, EXECUTOR]
        assert span["principal_id"] == CONTROLLER
    assert {s["agent_name"] for s in planner} == {PLANNER}
    # each agent talks in its own session; the executor's holds its whole run, root included
    assert {s["session_id"] for s in executor} == {"demo-session-0001"}
    assert {s["session_id"] for s in planner if s["kind"] == "AGENT"} == {"demo-planning-0001"}


def test_the_graph_has_one_handoff_from_planner_to_executor(demo: dict[str, Any]) -> None:
    whole = _cli("agents", "graph", "--json", "--data-dir", demo["_data"])
    edges = {(e["source"], e["target"]): e for e in whole["edges"]}
    assert set(edges) == {(PLANNER, EXECUTOR)}
    edge = edges[(PLANNER, EXECUTOR)]
    assert edge["handoffs"] == 1 and edge["errors"] == 0
    assert {n["agent"] for n in whole["nodes"]} == {PLANNER, EXECUTOR}
    for trace_id in (demo["planner"]["trace_id"], demo["trace_id"]):  # from either side
        own = _cli("trace", trace_id, "--graph", "--json", "--data-dir", demo["_data"])
        assert [(e["source"], e["target"], e["handoffs"]) for e in own["edges"]] == [
            (PLANNER, EXECUTOR, 1)
        ]
    assert demo["graph"]["edges"] == [{"source": PLANNER, "target": EXECUTOR, "handoffs": 1}]


def test_the_audit_of_the_posting_lists_what_the_planner_saw(demo: dict[str, Any]) -> None:
    span_id = demo["governance"]["span_id"]
    report = _cli("audit", span_id, "--format", "json", "--data-dir", demo["_data"])
    (action,) = report["actions"]
    assert action["action"]["span_id"] == span_id
    assert action["intent"]["decision"] == "proceed"
    assert [c["tool_name"] for c in action["tool_outputs"]] == ["lookup_journal_entry"]
    (hop,) = action["upstream"]
    assert hop["delegation_step"] == f"{PLANNER} -> {EXECUTOR}" and hop["sender_recorded"]
    assert hop["trace_id"] == demo["planner"]["trace_id"] and hop["principal_id"] == CONTROLLER
    assert [d["id"] for d in hop["documents"]] == demo["planner"]["documents"]
    assert all(d["verified"] and d["agent"] == PLANNER for d in hop["documents"])
    (llm,) = hop["llm_calls"]
    assert llm["agent"] == PLANNER and "JE-4471" in json.dumps(llm["messages"])
    assert [t["tool_name"] for t in hop["tool_outputs"]] == []  # the hand-off itself encloses
    assert demo["posting"]["upstream"][0]["llm_calls"] == [
        {"span_id": llm["span_id"], "agent": PLANNER}
    ]
    markdown = Path(demo["audit"]["report"]).read_text()
    assert "What upstream agents saw and handed on" in markdown
    assert f"`{PLANNER} -> {EXECUTOR}`" in markdown


def test_the_planner_hands_the_entry_over_with_narrowed_scopes(provider: Any) -> None:
    """In process, without a server: the planner's model (scripted) chooses the hand-off, whose
    span the queue message's traceparent names; the baggage carries the narrowed scopes."""
    from agentledger.demo.governance import CONTROLLER, HANDED_SCOPES
    from agentledger.demo.planner import WorkItem, run_planner
    from agentledger.instrumentation.processors import AttributionProcessor

    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(AttributionProcessor())
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    work: queue.Queue[WorkItem] = queue.Queue()
    with CONTROLLER:
        run = run_planner(provider.base_url, tracer_provider, work, handed_scopes=HANDED_SCOPES)
    item = work.get_nowait()
    assert work.empty() and item == run.item
    assert (item.to_agent, item.entry_id) == (EXECUTOR, "JE-4471") and "FIN-7" in item.task
    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert set(spans) == {
        PLANNER,
        "retrieve_policies",
        "ChatCompletion",
        "hand_off",
        f"handoff {EXECUTOR}",
    }
    sent = spans[f"handoff {EXECUTOR}"]
    assert format(sent.context.span_id, "016x") == run.handoff_span_id
    assert sent.parent is not None and sent.parent.span_id == spans["hand_off"].context.span_id
    assert {format(s.context.trace_id, "032x") for s in spans.values()} == {run.trace_id}
    assert all(s.attributes[AL.AGENT_NAME] == PLANNER for s in spans.values())
    baggage = item.handoff["baggage"]
    assert "entries%3Aread%2Cdecisions%3Apost" in baggage and "approve" not in baggage
    assert item.handoff["traceparent"].split("-")[2] == run.handoff_span_id
    # the controller still holds what the planner did not pass on
    assert "entries:approve" in spans[PLANNER].attributes[AL.PRINCIPAL_SCOPES]
