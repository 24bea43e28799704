"""``agentledger replay``: recorded requests rebuilt exactly, sent again through the provider's SDK, diffed.

Requests are recorded through the real SDKs (openai, anthropic) and OpenInference's instrumentors
against the scripted provider, which keeps every request it received: the rebuilt request must be
exactly that request, and its messages must hash to the ``input_hash`` recorded at ingest.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import anthropic
import httpx
from openinference.instrumentation.anthropic import AnthropicInstrumentor
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from agentledger.demo.agent import run_finance_agent
from agentledger.demo.documents import LOOKUP_JOURNAL_ENTRY
from agentledger.demo.provider import (
    Rule,
    ScriptedResponse,
    ToolCall,
    always,
    has_tool_result,
    last_user_contains,
)
from agentledger.pipeline.normalize import OtlpNormalizer, SourcePosition
from agentledger.pipeline.services import audit, replay
from agentledger.pipeline.services.demo_audit import demo_audit
from agentledger.schemas import canonical_bytes, content_hash
from agentledger.schemas.attributes import AgentLedger as AL
from tests.audit.conftest import PRINCIPAL

PEERS = Path(__file__).parent.parent / "fixtures" / "peers"
ANTHROPIC_TOOLS = [
    {
        "name": LOOKUP_JOURNAL_ENTRY,
        "description": "Fetch a journal entry from the ledger.",
        "input_schema": {
            "type": "object",
            "properties": {"entry_id": {"type": "string"}},
            "required": ["entry_id"],
        },
    }
]
ENTRY = {
    "entry_id": "JE-4471",
    "amount": 4_000_000,
    "currency": "USD",
    "requested_approver": {
        "name": "Marco Rossi",
        "role": "Accounting Manager",
        "approval_limit": 1_000_000,
    },
}


def _sha(value) -> str:
    return content_hash(canonical_bytes(value))


def _llm_spans(store, trace_id: str) -> list[dict]:
    trace, _ = audit.load_trace(store, "default", trace_id)
    return [s for s in trace.spans if s["kind"] == "LLM"]


def _demo(server, provider, record) -> tuple[object, list[dict], list[dict]]:
    run = record(lambda tp: run_finance_agent(provider.base_url, tp))
    sent = [dict(r.body) for r in provider.requests if r.api == "openai"]
    return run, _llm_spans(server.store, run.trace_id), sent


def test_openai_requests_are_rebuilt_exactly(server, provider, record) -> None:
    run, llms, sent = _demo(server, provider, record)
    rebuilt = replay.rebuild_requests(server.store, "default", [s["span_id"] for s in llms])
    assert len(rebuilt) == len(sent) == 2
    for request, body, span in zip(rebuilt, sent, llms):
        assert request.api == "openai" and request.source == "recorded"
        assert request.body == body  # exactly what the provider received at call time
        checks = request.checks
        assert checks["messages_sha256"] == span["input_hash"] and checks["messages_match"] is True
        assert checks["request_sha256"] == _sha(body) == checks["recorded_request_sha256"]
        assert (
            checks["reconstruction_exact"] is True
        )  # from messages, tools, parameters, model alone
        assert checks["recorded_request_intact"] is True  # the stored request text matches its hash
        assert request.exact
    assert rebuilt[0].recorded.tool_calls == [(LOOKUP_JOURNAL_ENTRY, {"entry_id": "JE-4471"})]
    assert rebuilt[1].recorded.text == run.decision


def _anthropic_run(provider, record) -> str:
    """Two Anthropic calls with tools (the model says something, then calls the tool; then decides)."""
    provider.set_script(
        [
            Rule(
                has_tool_result(LOOKUP_JOURNAL_ENTRY),
                ScriptedResponse(text="ESCALATE: JE-4471 is above FIN-7."),
                name="decide",
            ),
            Rule(
                last_user_contains("JE-"),
                ScriptedResponse(
                    text="Let me look the entry up.",
                    tool_calls=[ToolCall(LOOKUP_JOURNAL_ENTRY, {"entry_id": "JE-4471"})],
                ),
                name="lookup",
            ),
        ]
    )

    def agent(tp):
        instrumentor = AnthropicInstrumentor()
        instrumentor.instrument(tracer_provider=tp)
        try:
            with tp.get_tracer("test").start_as_current_span("anthropic-agent") as span:
                client = anthropic.Anthropic(base_url=provider.anthropic_base_url, api_key="test")
                messages = [{"role": "user", "content": "Should we approve JE-4471?"}]
                kwargs = {
                    "model": "claude-haiku-4-5",
                    "max_tokens": 512,
                    "system": "You are a finance-controls agent.",
                    "stop_sequences": ["</decision>"],
                    "tools": ANTHROPIC_TOOLS,
                }
                first = client.messages.create(messages=messages, **kwargs)
                messages += [
                    {
                        "role": "assistant",
                        "content": [b.model_dump(exclude_none=True) for b in first.content],
                    },
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "tool_result",
                                "tool_use_id": first.content[1].id,
                                "content": json.dumps(ENTRY),
                            }
                        ],
                    },
                ]
                client.messages.create(messages=messages, **kwargs)
                return format(span.get_span_context().trace_id, "032x")
        finally:
            instrumentor.uninstrument()

    return record(agent)


def test_anthropic_requests_are_rebuilt_exactly_and_replay_without_drift(
    server, provider, record
) -> None:
    trace_id = _anthropic_run(provider, record)
    sent = [dict(r.body) for r in provider.requests if r.api == "anthropic"]
    llms = _llm_spans(server.store, trace_id)
    assert [s["convention"] for s in llms] == ["openinference"] * 2 and llms[0][
        "provider"
    ] == "anthropic"
    rebuilt = replay.rebuild_requests(server.store, "default", [s["span_id"] for s in llms])
    for request, body, span in zip(rebuilt, sent, llms):
        assert request.api == "anthropic" and request.source == "recorded"
        assert request.body == body
        assert (
            request.checks["messages_sha256"] == span["input_hash"]
            and request.checks["messages_match"]
        )
        assert request.checks["reconstruction_exact"] is True, request.notes
        assert request.checks["request_sha256"] == _sha(body)
    assert rebuilt[0].recorded.tool_calls == [(LOOKUP_JOURNAL_ENTRY, {"entry_id": "JE-4471"})]
    assert rebuilt[0].recorded.text == "Let me look the entry up."
    provider.clear_requests()
    outcomes = [
        replay.replay_request(r, base_url=provider.anthropic_base_url, api_key="test")
        for r in rebuilt
    ]
    assert [dict(r.body) for r in provider.requests] == sent  # the same requests, sent again
    for outcome in outcomes:
        assert outcome.ok and outcome.diff is not None and not outcome.diff.drift, outcome.as_dict()
        assert outcome.replayed.model == "claude-haiku-4-5-20251001"


def test_replay_against_the_unchanged_provider_shows_zero_drift(server, provider, record) -> None:
    run, llms, sent = _demo(server, provider, record)
    ids = replay.select_calls(
        server.store, "default", agent="finance-controls-agent", model="gpt-4o"
    )
    assert sorted(ids) == sorted(s["span_id"] for s in llms)
    assert replay.select_calls(server.store, "default", tools_only=True) == [llms[0]["span_id"]]
    provider.clear_requests()
    report = replay.replay_many(
        replay.rebuild_requests(server.store, "default", ids),
        tenant="default",
        base_url=provider.base_url,
        api_key="test",
        filter={"agent": "finance-controls-agent"},
    )
    assert sorted((dict(r.body) for r in provider.requests), key=json.dumps) == sorted(
        sent, key=json.dumps
    )
    s = report.summary
    assert (s["replayed"], s["errors"], s["drifted"]) == (2, 0, 0)
    assert s["tool_agreement"] == s["argument_agreement"] == 1.0
    assert s["text_similarity"]["min"] == s["text_similarity"]["mean"] == 1.0 and s["worst"] == []
    replay.save_report(server.store, report)
    replay.save_report(server.store, report)  # idempotent
    stored = replay.get_report(server.store, "default", report.run_id)
    assert stored["summary"]["drifted"] == 0 and stored["filter"] == {
        "agent": "finance-controls-agent"
    }
    assert sorted((c["trace_id"], c["span_id"]) for c in stored["calls"]) == sorted(
        (run.trace_id, s["span_id"]) for s in llms
    )  # linked to the source spans
    assert all(
        c["messages_match"] and not c["drift"] and c["status"] == "ok" for c in stored["calls"]
    )
    assert [r["run_id"] for r in replay.list_reports(server.store, "default")] == [report.run_id]


def test_a_changed_model_shows_the_expected_drift(server, provider, record) -> None:
    _, llms, _ = _demo(server, provider, record)
    first, second = llms
    provider.set_script(
        [  # the "candidate": other arguments, then another decision
            Rule(
                has_tool_result(LOOKUP_JOURNAL_ENTRY),
                ScriptedResponse(text="APPROVE: the entry is within policy."),
            ),
            Rule(
                always(),
                ScriptedResponse(
                    tool_calls=[ToolCall(LOOKUP_JOURNAL_ENTRY, {"entry_id": "JE-9999"})]
                ),
            ),
        ]
    )
    report = replay.replay_many(
        replay.rebuild_requests(server.store, "default", [first["span_id"], second["span_id"]]),
        tenant="default",
        model="gpt-4.1",
        base_url=provider.base_url,
        api_key="test",
    )
    by_span = {o.request.span_id: o for o in report.outcomes}
    one, two = by_span[first["span_id"]], by_span[second["span_id"]]
    assert one.overrides == {"model": "gpt-4.1"} and one.replayed.model == "gpt-4.1-2025-04-14"
    assert one.diff.same_tools and not one.diff.same_arguments and one.diff.drift
    assert one.replayed.tool_calls == [(LOOKUP_JOURNAL_ENTRY, {"entry_id": "JE-9999"})]
    assert two.diff.same_tools and two.diff.drift and 0 < two.diff.text_similarity < 0.6
    s = report.summary
    assert (s["drifted"], s["tool_agreement"], s["argument_agreement"]) == (2, 1.0, 0.5)
    assert s["text_similarity"]["min"] == two.diff.text_similarity
    assert {w["span_id"] for w in s["worst"]} == {first["span_id"], second["span_id"]}
    # another tool altogether
    provider.set_script(
        [
            Rule(
                always(),
                ScriptedResponse(tool_calls=[ToolCall("escalate_to_cfo", {"entry_id": "JE-4471"})]),
            )
        ]
    )
    other = replay.replay_span(
        server.store, "default", first["span_id"], base_url=provider.base_url, api_key="test"
    )
    assert not other.diff.same_tools and not other.diff.same_arguments and other.diff.drift
    # a provider that fails is a result, not a crash
    provider.fail_next(1, status=400)
    failed = replay.replay_span(
        server.store, "default", first["span_id"], base_url=provider.base_url, api_key="test"
    )
    assert not failed.ok and "BadRequestError" in failed.error and failed.diff is None


def test_a_recorded_openai_call_replays_on_the_anthropic_api(server, provider, record) -> None:
    _, llms, _ = _demo(server, provider, record)
    translated = replay.rebuild_request(
        server.store, "default", llms[0]["span_id"], api="anthropic"
    )
    body = translated.body
    assert translated.source == "reconstructed" and translated.checks["messages_match"] is None
    assert (
        body["system"].startswith("You are a finance-controls agent.")
        and body["max_tokens"] == 1024
    )
    assert body["tools"][0]["name"] == LOOKUP_JOURNAL_ENTRY and "input_schema" in body["tools"][0]
    outcome = replay.replay_request(
        translated, model="claude-haiku-4-5", base_url=provider.anthropic_base_url, api_key="test"
    )
    assert outcome.ok and outcome.diff.same_tools and outcome.diff.same_arguments, outcome.as_dict()
    assert provider.requests[-1].api == "anthropic"


def test_conventions_that_do_not_record_the_request_are_rebuilt_from_stored_content(store) -> None:
    """OpenLLMetry keeps messages, tools and model but not the request: it is reconstructed."""
    request = ExportTraceServiceRequest.FromString((PEERS / "openllmetry.otlp.pb").read_bytes())
    batch = OtlpNormalizer().normalize(
        [(request, SourcePosition("default", time.time_ns(), "test"))]
    )
    store.insert_arrow("spans", batch.spans)
    store.insert_arrow("contents", batch.contents)
    ids = [
        r["span_id"]
        for r in store.query_rows(
            "SELECT span_id FROM spans WHERE kind = 'LLM' ORDER BY start_time"
        )
    ]
    first, second = replay.rebuild_requests(store, "default", ids)
    tools = [
        {
            "type": "function",
            "function": {
                "name": "lookup_journal_entry",
                "description": "Look up a general-ledger journal entry by id.",
                "parameters": {
                    "type": "object",
                    "properties": {
                        "entry_id": {
                            "type": "string",
                            "description": "Journal entry id, e.g. JE-1234",
                        }
                    },
                    "required": ["entry_id"],
                },
            },
        }
    ]
    question = [
        {"role": "system", "content": "You are a finance-controls agent."},
        {"role": "user", "content": "Should we approve the $4M reclassification JE-4471?"},
    ]
    assert first.source == "reconstructed" and first.exact
    assert first.body == {
        "model": "gpt-4o",
        "messages": question,
        "tools": tools,
    }  # as capture.py sent it
    assert second.body["messages"][:2] == question and second.body["tools"] == tools
    assistant, tool = second.body["messages"][2:]
    assert (
        assistant["content"] is None and assistant["tool_calls"][0]["id"] == "call_JE4471lookup01"
    )
    assert json.loads(assistant["tool_calls"][0]["function"]["arguments"]) == {
        "entry_id": "JE-4471"
    }
    assert tool == {
        "role": "tool",
        "tool_call_id": "call_JE4471lookup01",
        "content": '{"entry_id":"JE-4471","amount":4000000,"currency":"USD"}',
    }
    assert second.checks["messages_match"] is True and second.recorded.text.startswith("APPROVE")


def test_http_replay_endpoints(server, provider, record) -> None:
    _, llms, sent = _demo(server, provider, record)
    one = httpx.get(f"{server.url}/api/v1/replay/requests/{llms[0]['span_id']}", timeout=30)
    assert one.status_code == 200 and one.json()["body"] == sent[0] and one.json()["exact"]
    many = httpx.get(
        f"{server.url}/api/v1/replay/requests", params={"tools_only": "true"}, timeout=30
    ).json()
    assert [r["span_id"] for r in many["requests"]] == [llms[0]["span_id"]] and many[
        "skipped"
    ] == []
    assert (
        httpx.get(f"{server.url}/api/v1/replay/requests/{'0' * 16}", timeout=30).status_code == 404
    )
    requests = [replay.RebuiltRequest.from_dict(r) for r in many["requests"]]
    report = replay.replay_many(
        requests, tenant="someone-else", base_url=provider.base_url, api_key="test"
    )
    stored = httpx.post(f"{server.url}/api/v1/replays", json=report.as_dict(), timeout=30)
    assert stored.status_code == 200 and stored.json()["summary"]["drifted"] == 0
    listed = httpx.get(f"{server.url}/api/v1/replays", timeout=30).json()
    assert [r["run_id"] for r in listed] == [report.run_id]  # stored under the caller's tenant
    got = httpx.get(f"{server.url}/api/v1/replays/{report.run_id}", timeout=30).json()
    assert [c["span_id"] for c in got["calls"]] == [llms[0]["span_id"]]
    assert (
        httpx.post(f"{server.url}/api/v1/replays", json={"run_id": "x"}, timeout=30).status_code
        == 400
    )


def test_demo_audit_answers_the_three_questions_and_replays_the_decision(
    server, provider, record
) -> None:
    run, llms, _ = _demo(server, provider, record)
    answer = demo_audit(server.store, "default", run.trace_id, provider.base_url)
    assert answer["decision"] == {"span_id": llms[-1]["span_id"], "text": run.decision}
    saw = answer["what_the_agent_saw"]
    assert [d["id"] for d in saw["documents"]] == [d.document.id for d in run.documents]
    assert all(d["verified"] for d in saw["documents"])
    assert [t["output"] for t in saw["tool_outputs"]] == [run.tool_calls[0].result]
    assert saw["messages_of_the_deciding_call"] == 4 and saw["question"] == run.question
    assert answer["which_model_decided"] == {
        "span_id": llms[-1]["span_id"],
        "provider": "openai",
        "requested_model": "gpt-4o",
        "answered_model": "gpt-4o-2024-08-06",
        "system_fingerprint": "fp_agentledger_demo",
    }
    assert answer["under_whose_authority"]["principal_id"] == PRINCIPAL[AL.PRINCIPAL_ID]
    assert answer["replay"]["diff"]["drift"] is False and answer["replay"]["exact"]
    assert "### Which model version decided" in answer["report_markdown"]
