"""The real OpenAI SDK (sync, async, streaming) through AgentLedger's wrapper to the scripted
provider; spans over OTLP to the embedded server: what the store holds."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import openai
import pytest

import agentledger
from agentledger.demo.agent import TOOLS
from agentledger.pipeline.services import queries
from agentledger.schemas.attributes import AgentLedger as AL
from agentledger.schemas.attributes import GenAI as G

QUESTION = "Should we approve the reclassification in journal entry JE-4471?"
MESSAGES = [
    {"role": "system", "content": "You are a finance-controls agent."},
    {"role": "user", "content": QUESTION},
]


def _call(provider: Any, *, stream: bool, use_async: bool) -> tuple[str, list[Any]]:
    """One chat call that the demo script answers with a lookup_journal_entry tool call."""
    kwargs: dict[str, Any] = {
        "model": "gpt-4o",
        "messages": MESSAGES,
        "tools": TOOLS,
        "temperature": 0,
    }
    if stream:
        kwargs["stream"] = True
        kwargs["stream_options"] = {"include_usage": True}

    def collect(chunks: list[Any]) -> tuple[str, list[Any]]:
        names = [
            tc.function.name
            for c in chunks
            for ch in c.choices
            for tc in (ch.delta.tool_calls or ())
            if tc.function and tc.function.name
        ]
        return chunks[-1].model, names

    if not use_async:
        with openai.OpenAI(base_url=provider.base_url, api_key="test") as client:
            result = client.chat.completions.create(**kwargs)
            if stream:
                with result as s:
                    return collect(list(s))
            return result.model, [c.function.name for c in result.choices[0].message.tool_calls]

    async def run() -> tuple[str, list[Any]]:
        async with openai.AsyncOpenAI(base_url=provider.base_url, api_key="test") as client:
            result = await client.chat.completions.create(**kwargs)
            if stream:
                return collect([c async for c in result])
            return result.model, [c.function.name for c in result.choices[0].message.tool_calls]

    return asyncio.run(run())


@pytest.mark.parametrize("use_async", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_chat_call_is_recorded_with_principal_messages_and_tool_calls(
    server: Any, provider: Any, instrumented: Any, stream: bool, use_async: bool
) -> None:
    state = instrumented(agent_name="finance-agent", instrumentors=["openai"])
    assert state.frameworks == ("openai",)
    with agentledger.acting_for("cfo@acme.example", name="Dana Reyes", role="cfo", policy="FIN-7"):
        with agentledger.acting_for("controller-bot", on_behalf_of="cfo@acme.example"):
            model, tool_names = _call(provider, stream=stream, use_async=use_async)
    assert model == "gpt-4o-2024-08-06" and tool_names == ["lookup_journal_entry"]
    assert agentledger.flush()

    traces = queries.list_traces(server.store, "default")
    assert len(traces) == 1
    (span,) = queries.get_trace(server.store, "default", traces[0]["trace_id"])
    assert span["kind"] == "LLM" and span["convention"] == "openinference"
    assert span["principal_id"] == "controller-bot"
    assert span["principal_chain"] == ["cfo@acme.example", "controller-bot"]
    assert span["policy_id"] == "FIN-7"
    assert span["agent_name"] == "finance-agent"
    assert span["request_model"] == "gpt-4o" and span["response_model"] == "gpt-4o-2024-08-06"
    assert span["attributes"][G.SYSTEM_FINGERPRINT_NEW] == provider.system_fingerprint
    assert span["input_tokens"] > 0 and span["output_tokens"] > 0
    assert span["status_code"] == "OK"
    sent = provider.requests[-1]
    stored = json.loads(
        queries.get_contents(server.store, "default", [span["input_hash"]])[span["input_hash"]][
            "content"
        ]
    )
    assert stored == [{"role": m["role"], "content": m["content"]} for m in sent.messages]
    (call,) = span["tool_calls"]
    assert call["name"] == "lookup_journal_entry"
    args = queries.get_contents(server.store, "default", [call["arguments_hash"]])[
        call["arguments_hash"]
    ]
    assert json.loads(args["content"]) == {"entry_id": "JE-4471"}


def test_tool_result_turn_and_answer_text(server: Any, provider: Any, instrumented: Any) -> None:
    instrumented(instrumentors=["openai"])
    messages = MESSAGES + [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {
                        "name": "lookup_journal_entry",
                        "arguments": '{"entry_id": "JE-4471"}',
                    },
                }
            ],
        },
        {
            "role": "tool",
            "tool_call_id": "call_1",
            "content": json.dumps({"entry_id": "JE-4471", "amount": 4000000, "currency": "USD"}),
        },
    ]
    with agentledger.acting_for("controller@acme.example"):
        with openai.OpenAI(base_url=provider.base_url, api_key="test") as client:
            answer = client.chat.completions.create(model="gpt-4o", messages=messages, tools=TOOLS)
    assert agentledger.flush()
    (span,) = queries.get_trace(
        server.store, "default", queries.list_traces(server.store, "default")[0]["trace_id"]
    )
    stored = json.loads(
        queries.get_contents(server.store, "default", [span["input_hash"]])[span["input_hash"]][
            "content"
        ]
    )
    assert [m["role"] for m in stored] == ["system", "user", "assistant", "tool"]
    assert stored[2]["tool_calls"][0]["arguments"] == {"entry_id": "JE-4471"}
    assert stored[3]["tool_call_id"] == "call_1"
    assert answer.choices[0].message.content.startswith("ESCALATE")
    assert span["output_preview"] == answer.choices[0].message.content[:200]


def test_failed_call_is_recorded_and_the_sdk_error_reaches_the_caller(
    server: Any, provider: Any, instrumented: Any
) -> None:
    instrumented(instrumentors=["openai"])
    provider.fail_next(status=429)
    with openai.OpenAI(base_url=provider.base_url, api_key="test", max_retries=0) as client:
        with pytest.raises(openai.RateLimitError):
            client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert agentledger.flush()
    (span,) = queries.get_trace(
        server.store, "default", queries.list_traces(server.store, "default")[0]["trace_id"]
    )
    assert span["status_code"] == "ERROR" and "RateLimitError" in span["status_message"]
    assert span["attributes"][AL.UNATTRIBUTED] == "true"


def test_a_traced_stream_is_still_an_openai_stream(
    server: Any, provider: Any, instrumented: Any
) -> None:
    instrumented(instrumentors=["openai"])
    with openai.OpenAI(base_url=provider.base_url, api_key="test") as client:
        stream = client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
        assert isinstance(stream, openai.Stream) and stream.response.status_code == 200
        first = next(iter(stream))
        stream.close()  # closed early: the span still ends, with what was received
    assert first.model == "gpt-4o-2024-08-06"
    assert agentledger.flush()
    (span,) = queries.get_trace(
        server.store, "default", queries.list_traces(server.store, "default")[0]["trace_id"]
    )
    assert span["response_model"] == "gpt-4o-2024-08-06" and span["status_code"] == "OK"
