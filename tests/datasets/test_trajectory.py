"""Agent trajectories: a whole trace, in order, as one example."""

from __future__ import annotations

import json

from agentledger.demo.agent import AGENT_NAME
from agentledger.pipeline.services.datasets import ExportFilters, ExportRequest, export_dataset
from tests.datasets import otlp
from tests.datasets.conftest import read_lines
from tests.datasets.openai_rules import message_problems


def test_a_demo_run_becomes_one_ordered_trajectory(server, run_agent, tmp_path) -> None:
    run = run_agent()
    unrelated = otlp.SpanSpec(
        "lonely", {"openinference.span.kind": "AGENT", "input.value": "hi", "output.value": "hello"}
    )
    failed_root = otlp.SpanSpec(
        "failing-agent", {"openinference.span.kind": "AGENT", "input.value": "q"}
    )
    failed_step = otlp.chat_span(
        "q",
        "a",
        trace_id=failed_root.trace_id,
        parent_span_id=failed_root.span_id,
        error="rate limited",
    )
    otlp.send(server.url, [unrelated, failed_root, failed_step])

    out = tmp_path / "traj"
    manifest = export_dataset(
        server.store, "default", out, ExportRequest(format="trajectory", validation_fraction=0.0)
    )
    assert manifest["counts"]["candidates"] == 2  # the errored trace is filtered out
    assert manifest["counts"]["dropped"] == {"no_steps": 1}
    (line,) = read_lines(out / "train.jsonl")
    t = json.loads(line)
    assert (
        t["trace_id"] == run.trace_id
        and t["agent"] == AGENT_NAME
        and t["session_id"] == run.session_id
    )
    assert t["input"] == run.question and t["output"] == run.decision
    assert [s["type"] for s in t["steps"]] == ["retrieval", "llm", "tool", "llm"]
    retrieval, choose, tool, decide = t["steps"]
    assert [d["id"] for d in retrieval["documents"]] == [d.document.id for d in run.documents]
    assert retrieval["documents"][0]["content"] == run.documents[0].document.content
    assert retrieval["query"] == run.question
    call = choose["output"]["tool_calls"][0]
    assert call["function"]["name"] == tool["name"] == "lookup_journal_entry"
    assert call["id"] == tool["call_id"] == run.tool_calls[0].call_id
    # the looked-up entry names its preparer's e-mail: exports redact it by default, nothing else changes
    preparer = run.tool_calls[0].result["preparer"]
    expected = {**run.tool_calls[0].result, "preparer": {**preparer, "email": "[REDACTED:EMAIL]"}}
    assert preparer["email"].endswith("@acme-corp.example")
    assert tool["arguments"] == run.tool_calls[0].arguments and tool["result"] == expected
    assert decide["output"] == {"role": "assistant", "content": run.decision}
    assert message_problems(t["messages"]) == []
    assert [m["role"] for m in t["messages"]] == [
        "system",
        "user",
        "assistant",
        "tool",
        "assistant",
    ]
    members = [json.loads(m) for m in read_lines(out / "members.jsonl")]
    assert len(members) == run.expected_span_count and {m["role"] for m in members} == {"step"}

    with_errors = export_dataset(
        server.store,
        "default",
        tmp_path / "errors",
        ExportRequest(
            format="trajectory",
            validation_fraction=0.0,
            filters=ExportFilters(successful_only=False),
        ),
    )
    assert with_errors["counts"]["examples"] == 2
    only_tools = export_dataset(
        server.store,
        "default",
        tmp_path / "tools",
        ExportRequest(
            format="trajectory",
            validation_fraction=0.0,
            filters=ExportFilters(has_tool_calls=True, successful_only=False),
        ),
    )
    assert only_tools["counts"]["candidates"] == 1
