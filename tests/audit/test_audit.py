"""``agentledger audit``: exactly what the agent saw before it acted, who decided, on whose authority.

The trace is the demo agent's, recorded through the real openai SDK and OpenInference into the
embedded server, with a second tool call after the first so that "nothing after" is tested.
"""

from __future__ import annotations

import json
import uuid

import httpx
import pytest

from agentledger.demo.agent import DEFAULT_QUESTION, SYSTEM_PROMPT, run_finance_agent
from agentledger.pipeline.normalize.fields import from_openai_messages
from agentledger.pipeline.services import audit
from agentledger.pipeline.store.records import append_records
from agentledger.schemas import canonical_bytes, content_hash
from agentledger.schemas.attributes import AgentLedger as AL
from agentledger.schemas.records import BODY_FIELDS, RecordKind, make_record
from tests.audit.conftest import PRINCIPAL, SECOND_ENTRY, TWO_LOOKUP_DECISION, two_lookups_script


@pytest.fixture
def two_calls(server, provider, record):
    """One agent run with two tool calls; its spans by role, and the requests the model received."""
    provider.set_script(two_lookups_script())
    run = record(lambda tp: run_finance_agent(provider.base_url, tp))
    trace, _ = audit.load_trace(server.store, "default", run.trace_id)
    by_kind: dict[str, list[dict]] = {}
    for span in trace.spans:
        by_kind.setdefault(span["kind"], []).append(span)
    assert [len(by_kind[k]) for k in ("AGENT", "RETRIEVER", "LLM", "TOOL")] == [1, 1, 3, 2]
    return {
        "run": run,
        "spans": by_kind,
        "requests": [r for r in provider.requests if r.api == "openai"],
    }


def _ids(entries) -> list[str]:
    return [e["span_id"] for e in entries]


def test_audit_of_the_first_tool_call_holds_exactly_what_preceded_it(server, two_calls) -> None:
    run, spans, sent = two_calls["run"], two_calls["spans"], two_calls["requests"]
    (retriever,), (llm1, llm2, llm3), (tool1, tool2) = (
        spans["RETRIEVER"],
        spans["LLM"],
        spans["TOOL"],
    )
    result = audit.audit(server.store, "default", tool1["span_id"])
    assert result["trace_id"] == run.trace_id and len(result["actions"]) == 1
    report = result["actions"][0]

    assert report["action"]["span_id"] == tool1["span_id"]
    assert report["action"]["arguments"] == {"entry_id": "JE-4471"}
    assert _ids(report["timeline"]) == [retriever["span_id"], llm1["span_id"]]
    # the documents: ids, scores, texts, each proven by its hash
    docs = report["documents"]
    assert [d["id"] for d in docs] == [d.document.id for d in run.documents]
    assert [d["content"] for d in docs] == [d.document.content for d in run.documents]
    assert [d["score"] for d in docs] == [d.score for d in run.documents]
    assert all(d["verified"] and d["content_hash"] == content_hash(d["content"]) for d in docs)
    assert all(d["retrieved_at"] == audit.iso(retriever["end_ns"]) for d in docs)
    # the one earlier LLM call: the messages the model received, its models, parameters and tools
    (call,) = report["llm_calls"]
    assert call["span_id"] == llm1["span_id"]
    assert call["messages"] == from_openai_messages(sent[0].body["messages"])
    assert call["messages"][0] == {"role": "system", "content": SYSTEM_PROMPT}
    assert call["input_verified"] and call["input_hash"] == content_hash(
        canonical_bytes(call["messages"])
    )
    assert (call["requested_model"], call["answered_model"]) == ("gpt-4o", "gpt-4o-2024-08-06")
    assert call["parameters"] == {"temperature": 0}
    assert call["tools"] == sent[0].body["tools"]
    assert [c["name"] for c in call["tool_calls"]] == ["lookup_journal_entry"]
    assert report["tool_outputs"] == [] and report["other_steps"] == []
    assert [c["input"] for c in report["context"]] == [
        DEFAULT_QUESTION
    ]  # the run's question, still open
    # nothing after: no later call, no later tool, not even this tool's own result
    dumped = json.dumps(result)
    for later in (llm2, llm3, tool2):
        assert later["span_id"] not in dumped
    assert SECOND_ENTRY not in dumped and TWO_LOOKUP_DECISION[:30] not in dumped
    assert run.tool_calls[0].result["requested_approver"]["name"] not in dumped
    assert report["left_out"] == {"spans_after_action": 3, "action_result": True}
    assert report["integrity"]["changed"] == [] and report["integrity"]["missing"] == []


def test_audit_of_the_second_tool_call_adds_the_first_ones_output_and_nothing_later(
    server, two_calls
) -> None:
    run, spans, sent = two_calls["run"], two_calls["spans"], two_calls["requests"]
    (retriever,), (llm1, llm2, llm3), (tool1, tool2) = (
        spans["RETRIEVER"],
        spans["LLM"],
        spans["TOOL"],
    )
    report = audit.audit(server.store, "default", tool2["span_id"])["actions"][0]
    assert _ids(report["timeline"]) == [s["span_id"] for s in (retriever, llm1, tool1, llm2)]
    assert _ids(report["llm_calls"]) == [llm1["span_id"], llm2["span_id"]]
    assert report["llm_calls"][1]["messages"] == from_openai_messages(sent[1].body["messages"])
    (output,) = report["tool_outputs"]
    assert output["span_id"] == tool1["span_id"] and output["arguments"] == {"entry_id": "JE-4471"}
    assert output["output"] == run.tool_calls[0].result and output["verified"]
    assert [d["id"] for d in report["documents"]] == [d.document.id for d in run.documents]
    by = report["decided_by"]
    assert by["span_id"] == llm2["span_id"] and by["found_by"] == "tool_call_id"
    assert (
        by["chose"]["arguments"] == {"entry_id": SECOND_ENTRY} and by["executed_as_chosen"] is True
    )
    dumped = json.dumps(report)
    assert llm3["span_id"] not in dumped and TWO_LOOKUP_DECISION[:30] not in dumped
    assert json.dumps(run.tool_calls[1].result) not in dumped  # this tool's own result


def test_which_model_decided_and_under_whose_authority(server, two_calls) -> None:
    tool1 = two_calls["spans"]["TOOL"][0]
    report = audit.audit(server.store, "default", tool1["span_id"])["actions"][0]
    by = report["decided_by"]
    assert by["span_id"] == two_calls["spans"]["LLM"][0]["span_id"]
    assert (by["provider"], by["requested_model"], by["answered_model"]) == (
        "openai",
        "gpt-4o",
        "gpt-4o-2024-08-06",
    )
    assert (
        by["system_fingerprint"] == "fp_agentledger_demo"
    )  # read from the raw response OpenInference kept
    assert by["chose"]["name"] == "lookup_journal_entry" and by["executed_as_chosen"] is True
    who = report["authority"]
    assert who["attributed"] and who["source"] == "span"
    assert (
        who["principal_id"],
        who["principal_name"],
        who["principal_role"],
        who["policy_id"],
    ) == (
        PRINCIPAL[AL.PRINCIPAL_ID],
        PRINCIPAL[AL.PRINCIPAL_NAME],
        PRINCIPAL[AL.PRINCIPAL_ROLE],
        PRINCIPAL[AL.POLICY_ID],
    )
    assert who["principal_chain"] == PRINCIPAL[AL.PRINCIPAL_CHAIN]
    assert report["intent"] is None and report["controls"] == [] and report["governance_recorded"]


def test_a_trace_id_audits_every_tool_call_or_the_last(server, two_calls) -> None:
    run, spans = two_calls["run"], two_calls["spans"]
    every = audit.audit(server.store, "default", run.trace_id)
    assert [r["action"]["span_id"] for r in every["actions"]] == _ids(spans["TOOL"])
    last = audit.audit(server.store, "default", run.trace_id.upper(), last=True)
    assert [r["action"]["span_id"] for r in last["actions"]] == [spans["TOOL"][1]["span_id"]]
    # the final decision, audited as an action of the model: every tool output came before it
    decision = audit.audit(server.store, "default", spans["LLM"][2]["span_id"])["actions"][0]
    assert decision["decided_by"]["found_by"] == "self"
    assert decision["action"]["output"][0]["content"] == TWO_LOOKUP_DECISION
    assert [t["output"] for t in decision["tool_outputs"]] == [c.result for c in run.tool_calls]
    with pytest.raises(audit.AuditNotFound):
        audit.audit(server.store, "default", "0" * 16)
    with pytest.raises(audit.AuditNotFound):
        audit.audit(server.store, "other-tenant", run.trace_id)
    with pytest.raises(ValueError):
        audit.audit(server.store, "default", "not-an-id")


_DEFAULTS = {"String": "", "UInt32": 0, "Bool": False, "Array(String)": []}


def _insert(store, kind: RecordKind, fields: dict) -> None:
    """One record of the record log, the fields not given at their defaults, times in Unix ns."""
    body = {c.name: _DEFAULTS.get(c.ch_type, 0) for c in BODY_FIELDS[kind]}
    body.update(fields)
    recorded = body.get("received_at") or body["created_at"]
    append_records(
        store, [make_record(kind, "default", body, actor="test", recorded_at_ns=recorded)]
    )


def test_the_intent_and_the_controls_that_applied(server, two_calls) -> None:
    store, run = server.store, two_calls["run"]
    tool1 = two_calls["spans"]["TOOL"][0]
    start = tool1["start_ns"]
    intent_id, pause, resume, other, late = (uuid.uuid4().hex for _ in range(5))
    for attempt, decision, control, received in (
        (0, "paused", pause, start + 1_000_000),
        (1, "proceed", "", start + 5_000_000),
    ):
        _insert(
            store,
            RecordKind.INTENT,
            {
                "requested_at": start + 500_000,
                "intent_id": intent_id,
                "attempt": attempt,
                "received_at": received,
                "decision": decision,
                "control_id": control,
                "tool_name": "lookup_journal_entry",
                "tool_call_id": tool1["tool_call_id"],
                "arguments": '{"entry_id":"JE-4471"}',
                "arguments_sha256": content_hash('{"entry_id":"JE-4471"}'),
                "trace_id": run.trace_id,
                "span_id": tool1["span_id"],
                "parent_span_id": two_calls["spans"]["LLM"][0]["span_id"],
                "principal_id": PRINCIPAL[AL.PRINCIPAL_ID],
                "session_id": run.session_id,
            },
        )
    for control_id, action, target, at in (
        (pause, "pause", run.session_id, start - 1_000_000_000),
        (other, "pause", "some-other-session", start - 1_000_000_000),
        (resume, "resume", run.session_id, start + 3_000_000),
        (late, "pause", run.session_id, start + 60_000_000_000),
    ):
        _insert(
            store,
            RecordKind.CONTROL,
            {
                "created_at": at,
                "control_id": control_id,
                "action": action,
                "scope": "session",
                "target": target,
                "by": "ops@acme.example",
                "reason": f"{action} drill",
            },
        )
    report = audit.audit(store, "default", tool1["span_id"])["actions"][0]
    intent = report["intent"]
    assert (
        intent["intent_id"] == intent_id
        and intent["decision"] == "proceed"
        and intent["attempts"] == 2
    )
    assert intent["acknowledged_at"] == audit.iso(
        (start + 5_000_000) // 1000 * 1000
    )  # stored in microseconds
    assert intent["held_by"] == [pause] and intent["arguments_match_action"] is True
    assert [a["decision"] for a in intent["asks"]] == ["paused", "proceed"]
    assert [(c["control_id"], c["action"], c["held_this_call"]) for c in report["controls"]] == [
        (pause, "pause", True),
        (resume, "resume", False),
    ]  # not the other session's, not the later one
    assert report["pauses_in_force_at_action"] == []
    markdown = audit.to_markdown(
        {
            "query": tool1["span_id"],
            "tenant": "default",
            "trace_id": run.trace_id,
            "actions": [report],
        }
    )
    assert f"intent `{intent_id}`" in markdown and "held this call" in markdown


def test_http_endpoint_answers_json_markdown_and_html(server, two_calls) -> None:
    tool1 = two_calls["spans"]["TOOL"][0]
    url = f"{server.url}/api/v1/audit/{tool1['span_id']}"
    as_json = httpx.get(url, timeout=30)
    assert as_json.status_code == 200
    assert as_json.json() == audit.audit(server.store, "default", tool1["span_id"])
    markdown = httpx.get(url, params={"format": "markdown"}, timeout=30)
    assert markdown.headers["content-type"].startswith("text/markdown")
    text = markdown.text
    for expected in (
        "### Under whose authority",
        "### Which model version decided",
        "gpt-4o-2024-08-06",
        "fp_agentledger_demo",
        PRINCIPAL[AL.PRINCIPAL_ID],
        "FIN-7",
        "### What the agent saw, in order",
    ):
        assert expected in text, expected
    saw = text[text.index("### What the agent saw") :]
    assert saw.index("**1.1 Document `FIN-7`**") < saw.index(
        "**2. LLM call `"
    )  # in order: retrieval, then the call
    page = httpx.get(url, params={"format": "html"}, timeout=30)
    assert page.headers["content-type"].startswith("text/html") and page.text.startswith(
        "<!doctype html>"
    )
    assert "<h3>Which model version decided</h3>" in page.text and "<script" not in page.text
    trace = httpx.get(
        f"{server.url}/api/v1/audit/{two_calls['run'].trace_id}",
        params={"last": "true"},
        timeout=30,
    )
    assert [a["action"]["span_id"] for a in trace.json()["actions"]] == [
        two_calls["spans"]["TOOL"][1]["span_id"]
    ]
    assert httpx.get(f"{server.url}/api/v1/audit/{'0' * 16}", timeout=30).status_code == 404
    assert httpx.get(f"{server.url}/api/v1/audit/nonsense", timeout=30).status_code == 400
