"""Chat fine-tuning export: valid lines, tools, redaction, duplicates, quality, filters, splits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentledger.pipeline.services.datasets import (
    ExportError,
    ExportFilters,
    ExportRequest,
    FeedbackFilter,
    export_dataset,
)
from tests.datasets import otlp
from tests.datasets.conftest import read_lines
from tests.datasets.openai_rules import chat_example_problems

LOOKUP_TOOL = {
    "type": "function",
    "function": {
        "name": "get_order",
        "description": "Look an order up.",
        "parameters": {
            "type": "object",
            "properties": {"order_id": {"type": "string"}},
            "required": ["order_id"],
        },
    },
}


def _all_lines(manifest: dict, out: Path) -> list[str]:
    return [
        line for f in manifest["files"] if f.get("split") for line in read_lines(out / f["path"])
    ]


def test_every_line_is_a_valid_fine_tuning_example(server, run_agent, tmp_path) -> None:
    run = run_agent()
    run_agent(question="What is our capitalisation policy for internal software?", session_id="s2")
    # a GenAI-convention agent: the tool loop as gen_ai.* messages with tool definitions
    trace = otlp.new_trace_id()
    history = [
        {"role": "system", "content": "You track orders."},
        {"role": "user", "content": "Where is order A-17?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "toolu_1",
                    "type": "function",
                    "function": {"name": "get_order", "arguments": '{"order_id": "A-17"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "toolu_1", "content": '{"status": "shipped"}'},
    ]
    otlp.send(
        server.url,
        [
            otlp.SpanSpec(
                "chat",
                otlp.genai_llm(history, "It shipped yesterday.", tools=[LOOKUP_TOOL]),
                trace_id=trace,
            )
        ],
    )

    out = tmp_path / "chat"
    manifest = export_dataset(server.store, "default", out, ExportRequest(validation_fraction=0.0))
    lines = read_lines(out / "train.jsonl")
    assert len(lines) == manifest["counts"]["examples"] == run.llm_calls + 1 + 1
    for line in lines:
        assert chat_example_problems(line) == [], line
    examples = [json.loads(line) for line in lines]
    calls = [e for e in examples if "tool_calls" in e["messages"][-1]]
    assert len(calls) == 1  # the demo's first call chooses the lookup tool
    call = calls[0]["messages"][-1]["tool_calls"][0]
    assert call["type"] == "function" and call["function"]["name"] == "lookup_journal_entry"
    assert json.loads(call["function"]["arguments"]) == {"entry_id": "JE-4471"}
    assert [t["function"]["name"] for t in calls[0]["tools"]] == ["lookup_journal_entry"]
    answered = [e for e in examples if any(m["role"] == "tool" for m in e["messages"])]
    assert len(answered) == 2  # the demo's deciding call and the GenAI one
    for e in answered:
        roles = [m["role"] for m in e["messages"]]
        assert roles[-3:] == ["assistant", "tool", "assistant"] and "tools" in e
    genai = next(e for e in answered if e["messages"][-1].get("content") == "It shipped yesterday.")
    assert genai["tools"] == [LOOKUP_TOOL]
    assert genai["messages"][-2] == {
        "role": "tool",
        "tool_call_id": "toolu_1",
        "content": '{"status": "shipped"}',
    }


PII = {
    "email": "jane.roe@example.org",
    "phone": "+44 20 7946 0958",
    "card": "4111 1111 1111 1111",
    "iban": "DE89 3704 0044 0532 0130 00",
    "secret": "sk-proj-4f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c",
}


def test_planted_pii_is_gone_from_every_format(server, tmp_path) -> None:
    question = (
        f"I am Jane ({PII['email']}, {PII['phone']}). Refund card {PII['card']} to IBAN {PII['iban']}. "
        f"Our key is {PII['secret']}. Order 2024-01-15, ref 1234 5678 9012 3456."
    )
    history = [
        {"role": "system", "content": "You handle refunds."},
        {"role": "user", "content": question},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_9",
                    "type": "function",
                    "function": {
                        "name": "get_order",
                        "arguments": json.dumps({"email": PII["email"], "card": PII["card"]}),
                    },
                }
            ],
        },
        {
            "role": "tool",
            "tool_call_id": "call_9",
            "content": json.dumps({"owner_phone": PII["phone"], "iban": PII["iban"]}),
        },
    ]
    answer = f"Refunded to {PII['iban']}; we will call {PII['phone']} and mail {PII['email']}."
    root = otlp.SpanSpec(
        "agent",
        {"openinference.span.kind": "AGENT", "input.value": question, "output.value": answer},
    )
    otlp.send(
        server.url,
        [
            root,
            otlp.SpanSpec(
                "chat",
                otlp.openinference_llm(
                    history, {"role": "assistant", "content": answer}, tools=[LOOKUP_TOOL]
                ),
                trace_id=root.trace_id,
                parent_span_id=root.span_id,
            ),
        ],
    )
    texts = []
    for fmt in ("chat", "parquet", "trajectory"):
        out = tmp_path / fmt
        request = ExportRequest(
            format=fmt,
            validation_fraction=0.0,
            filters=ExportFilters(kinds=("LLM", "AGENT") if fmt != "trajectory" else ()),
        )
        manifest = export_dataset(server.store, "default", out, request)
        assert manifest["counts"]["examples"] >= 1, (fmt, manifest["counts"]["dropped"])
        assert manifest["hygiene"]["redaction"]["presets"] == [
            "secret",
            "iban",
            "card",
            "email",
            "phone",
        ]
        assert all(n > 0 for n in manifest["hygiene"]["redaction"]["replaced"].values()), manifest[
            "hygiene"
        ]
        for f in manifest["files"]:
            raw = (out / f["path"]).read_bytes()
            text = raw.decode("utf-8", "replace")
            texts.append(text)
            for kind, value in PII.items():
                assert value not in text, (fmt, kind)
                assert value.replace(" ", "") not in text, (fmt, kind)
    chat = texts[0]
    for marker in (
        "[REDACTED:EMAIL]",
        "[REDACTED:PHONE]",
        "[REDACTED:CARD]",
        "[REDACTED:IBAN]",
        "[REDACTED:SECRET]",
    ):
        assert marker in chat
    # checksums keep precision: a date and a number failing Luhn are left alone
    assert "2024-01-15" in chat and "1234 5678 9012 3456" in chat
    for line in chat.splitlines():
        assert chat_example_problems(line) == []

    out = tmp_path / "unredacted"
    export_dataset(
        server.store, "default", out, ExportRequest(redact="none", validation_fraction=0.0)
    )
    assert PII["card"] in (out / "train.jsonl").read_text()


def test_exact_and_near_duplicates_are_removed(server, tmp_path) -> None:
    q, a = "How do I reset my password?", "Use the 'Forgot password' link on the sign-in page."
    specs = [otlp.chat_span(q, a) for _ in range(3)]  # three production calls, same conversation
    specs.append(
        otlp.chat_span(
            "how do I   RESET my password", "Use the Forgot-password link on the sign in page!"
        )
    )
    specs.append(
        otlp.chat_span("How do I change my e-mail address?", "Open Settings, then Account.")
    )
    otlp.send(server.url, specs)
    otlp.send(server.url, specs[:1])  # a re-delivered request: the same span stored twice

    out = tmp_path / "dedup"
    manifest = export_dataset(server.store, "default", out, ExportRequest(validation_fraction=0.0))
    counts = manifest["counts"]
    assert counts["candidates"] == 5  # the stored copy of the re-delivered span is read once
    assert counts["examples"] == 2
    assert counts["dropped"] == {"duplicate": 2, "near_duplicate": 1}
    assert (
        len(
            {json.loads(line)["messages"][1]["content"] for line in read_lines(out / "train.jsonl")}
        )
        == 2
    )

    loose = export_dataset(
        server.store,
        "default",
        tmp_path / "exact-only",
        ExportRequest(validation_fraction=0.0, near_dedup=False),
    )
    assert loose["counts"]["examples"] == 3 and loose["counts"]["dropped"] == {"duplicate": 2}
    everything = export_dataset(
        server.store,
        "default",
        tmp_path / "all",
        ExportRequest(validation_fraction=0.0, dedup=False, near_dedup=False),
    )
    assert everything["counts"]["examples"] == 5


def test_split_is_deterministic_stable_as_data_grows_and_keeps_traces_together(
    server, tmp_path
) -> None:
    specs = []
    for i in range(30):
        trace = otlp.new_trace_id()
        for turn in range(2):
            specs.append(
                otlp.chat_span(
                    f"Question {i} turn {turn}: what is {i} times {turn}?",
                    f"It is {i * turn}, computed for case {i}/{turn}.",
                    trace_id=trace,
                )
            )
    otlp.send(server.url, specs)
    request = ExportRequest(validation_fraction=0.3)
    first = export_dataset(server.store, "default", tmp_path / "a", request)
    second = export_dataset(server.store, "default", tmp_path / "b", request)
    assert first["counts"]["splits"]["train"] > 0 and first["counts"]["splits"]["validation"] > 0
    assert {f["path"]: f["sha256"] for f in first["files"]} == {
        f["path"]: f["sha256"] for f in second["files"]
    }
    assert first["content_digest"] == second["content_digest"]

    members = [json.loads(line) for line in read_lines(tmp_path / "a" / "members.jsonl")]
    by_trace: dict[str, set[str]] = {}
    for m in members:
        by_trace.setdefault(m["trace_id"], set()).add(m["split"])
    assert all(len(splits) == 1 for splits in by_trace.values())

    otlp.send(
        server.url, [otlp.chat_span(f"New question {i}?", f"New answer {i}.") for i in range(20)]
    )
    grown = export_dataset(server.store, "default", tmp_path / "c", request)
    assert grown["counts"]["examples"] == first["counts"]["examples"] + 20
    before = {m["span_id"]: m["split"] for m in members}
    after = {
        json.loads(line)["span_id"]: json.loads(line)["split"]
        for line in read_lines(tmp_path / "c" / "members.jsonl")
    }
    assert all(after[s] == split for s, split in before.items())
    export_dataset(
        server.store,
        "default",
        tmp_path / "d",
        ExportRequest(validation_fraction=0.3, split_seed="x"),
    )
    assert {
        json.loads(line)["span_id"]: json.loads(line)["split"]
        for line in read_lines(tmp_path / "d" / "members.jsonl")
    } != after


def test_quality_filters_drop_errored_truncated_and_empty_outputs(server, tmp_path) -> None:
    good = otlp.chat_span("What are your opening hours?", "We are open 9 to 5, Monday to Friday.")
    errored = otlp.chat_span("Why is the sky blue?", "Rayleigh scattering.", error="upstream 500")
    truncated = otlp.chat_span(
        "Write an essay on ledgers.",
        "Ledgers are the books of",
        extra={"llm.finish_reason": "length"},
    )
    empty = otlp.SpanSpec(
        "ChatCompletion",
        otlp.openinference_llm(
            [{"role": "user", "content": "Say something."}], {"role": "assistant", "content": ""}
        ),
    )
    cut = otlp.chat_span(
        "Summarise the contract.",
        "The contract says",
        extra={"agentledger.truncated_attributes": ["output.value"]},
    )
    otlp.send(server.url, [good, errored, truncated, empty, cut])

    manifest = export_dataset(
        server.store, "default", tmp_path / "q", ExportRequest(validation_fraction=0.0)
    )
    assert manifest["counts"]["examples"] == 1
    assert manifest["counts"]["dropped"] == {"truncated": 2, "empty_output": 1}
    assert manifest["counts"]["candidates"] == 4  # the errored call is not a candidate
    members = read_lines(tmp_path / "q" / "members.jsonl")
    assert [json.loads(m)["span_id"] for m in members] == [good.span_id]

    loose = export_dataset(
        server.store,
        "default",
        tmp_path / "loose",
        ExportRequest(
            validation_fraction=0.0, quality=False, filters=ExportFilters(successful_only=False)
        ),
    )
    assert loose["counts"]["examples"] == 4  # all but the empty answer, which no format can hold


def test_filters_select_by_time_agent_model_principal_tools_kind_and_sample(
    server, tmp_path
) -> None:
    day = 86_400 * 10**9
    a = otlp.chat_span(
        "alpha question",
        "alpha answer",
        model="gpt-4o",
        start_ns=otlp.BASE_NS,
        extra={"agentledger.agent.name": "billing", "agentledger.principal.id": "alice"},
    )
    b = otlp.chat_span(
        "beta question",
        "beta answer",
        model="gpt-4o-mini",
        start_ns=otlp.BASE_NS + day,
        extra={"agentledger.agent.name": "support", "agentledger.principal.id": "bob"},
    )
    tool_history = [{"role": "user", "content": "Where is order 7?"}]
    c = otlp.SpanSpec(
        "ChatCompletion",
        otlp.openinference_llm(
            tool_history,
            {
                "role": "assistant",
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "get_order", "arguments": '{"order_id": "7"}'},
                    }
                ],
            },
            tools=[LOOKUP_TOOL],
        ),
        start_ns=otlp.BASE_NS + 2 * day,
    )
    agent = otlp.SpanSpec(
        "support-agent",
        {
            "openinference.span.kind": "AGENT",
            "input.value": "gamma question",
            "output.value": "gamma answer",
        },
        start_ns=otlp.BASE_NS + 2 * day,
    )
    otlp.send(server.url, [a, b, c, agent])
    store = server.store

    def spans(n: int = 0, **filters) -> list[str]:
        out = tmp_path / f"f{len(list(tmp_path.iterdir()))}"
        export_dataset(
            store,
            "default",
            out,
            ExportRequest(validation_fraction=0.0, filters=ExportFilters(**filters)),
        )
        return sorted(json.loads(line)["span_id"] for line in read_lines(out / "members.jsonl"))

    from datetime import datetime, timedelta, timezone

    t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
    assert spans() == sorted([a.span_id, b.span_id, c.span_id])
    assert spans(since=t0 + timedelta(hours=12), until=t0 + timedelta(days=1, hours=12)) == [
        b.span_id
    ]
    assert spans(agents=("billing",)) == [a.span_id]
    assert spans(models=("gpt-4o-mini",)) == [b.span_id]  # the requested model
    assert spans(models=("gpt-4o-2024-08-06",)) == sorted(
        [a.span_id, c.span_id]
    )  # or the answered one
    assert spans(principals=("bob",)) == [b.span_id]
    assert spans(has_tool_calls=True) == [c.span_id]
    assert spans(has_tool_calls=False) == sorted([a.span_id, b.span_id])
    assert spans(kinds=("AGENT",)) == [agent.span_id]
    sample = spans(sample_size=2, seed="7")
    assert len(sample) == 2 and sample == spans(sample_size=2, seed="7")
    assert {tuple(spans(sample_size=1, seed=str(s))) for s in range(12)} != {
        tuple(sample[:1])
    }  # seeds differ


def test_paging_reads_everything_once(server, tmp_path) -> None:
    otlp.send(
        server.url,
        [otlp.chat_span(f"Paged question {i}?", f"Paged answer {i}.") for i in range(23)],
    )
    small = export_dataset(
        server.store,
        "default",
        tmp_path / "small",
        ExportRequest(page_size=4, validation_fraction=0.2),
    )
    big = export_dataset(
        server.store, "default", tmp_path / "big", ExportRequest(validation_fraction=0.2)
    )
    assert small["counts"]["examples"] == big["counts"]["examples"] == 23
    assert small["content_digest"] == big["content_digest"]


def test_bad_requests_are_refused(server, tmp_path) -> None:
    store = server.store
    with pytest.raises(ExportError):
        export_dataset(store, "default", tmp_path / "x", ExportRequest(format="csv"))
    with pytest.raises(ExportError):
        export_dataset(
            store, "default", tmp_path / "y", ExportRequest(filters=ExportFilters(kinds=("TOOL",)))
        )
    with pytest.raises(ExportError):
        export_dataset(store, "default", tmp_path / "z", ExportRequest(redact="email,ssn"))
    export_dataset(store, "default", tmp_path / "once", ExportRequest())
    with pytest.raises(ExportError, match="already holds"):
        export_dataset(store, "default", tmp_path / "once", ExportRequest())
    with pytest.raises(ValueError):
        FeedbackFilter.parse("helpfulness>=high")
