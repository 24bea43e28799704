"""The scripted provider, driven by the real OpenAI and Anthropic SDKs over HTTP; the demo agent.

The point of the provider is that real SDKs and real instrumentation accept
it as OpenAI/Anthropic, so every test here goes through an SDK client rather
than raw HTTP.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import anthropic
import openai
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agentledger.demo.agent import AGENT_NAME, run_finance_agent
from agentledger.demo.documents import LOOKUP_JOURNAL_ENTRY
from agentledger.demo.provider import (
    ProviderRequest,
    Rule,
    ScriptedProvider,
    ScriptedResponse,
    ToolCall,
    always,
    demo_provider,
    has_tool_result,
    last_user_contains,
    model_is,
)

WEATHER_ARGS = {"city": "Paris", "unit": "celsius"}
WEATHER_ANSWER = "It is 21 degrees and sunny in Paris, with a light breeze from the west."

OPENAI_TOOLS: Any = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather for a city.",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "unit": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]
ANTHROPIC_TOOLS: Any = [
    {
        "name": "get_weather",
        "description": "Current weather for a city.",
        "input_schema": OPENAI_TOOLS[0]["function"]["parameters"],
    }
]


def weather_script() -> list[Rule]:
    return [
        Rule(has_tool_result("get_weather"), ScriptedResponse(text=WEATHER_ANSWER), name="answer"),
        Rule(
            last_user_contains("weather"),
            ScriptedResponse(tool_calls=[ToolCall("get_weather", WEATHER_ARGS)]),
            name="call-weather",
        ),
        Rule(
            model_is("gpt-4o-mini"),
            ScriptedResponse(
                text="Hello from mini.",
                prompt_tokens=2048,
                completion_tokens=300,
                cached_tokens=1024,
                reasoning_tokens=120,
            ),
            name="mini",
        ),
    ]


@pytest.fixture
def provider() -> Iterator[ScriptedProvider]:
    with ScriptedProvider(weather_script(), default=ScriptedResponse(text="OK")) as running:
        yield running


@pytest.fixture
def oai(provider: ScriptedProvider) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=provider.base_url, api_key="demo", max_retries=0) as client:
        yield client


@pytest.fixture
def claude(provider: ScriptedProvider) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(
        base_url=provider.anthropic_base_url, api_key="demo", max_retries=0
    ) as client:
        yield client


WEATHER_QUESTION: Any = [{"role": "user", "content": "What's the weather in Paris?"}]


# --------------------------------------------------------------------------- OpenAI


def test_openai_tool_call_then_answer(provider: ScriptedProvider, oai: openai.OpenAI) -> None:
    first = oai.chat.completions.create(
        model="gpt-4o", messages=WEATHER_QUESTION, tools=OPENAI_TOOLS
    )

    assert first.id == "chatcmpl-1"
    assert first.model == "gpt-4o-2024-08-06"  # the alias answered, not the requested name
    assert first.system_fingerprint == "fp_agentledger_demo"
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    (call,) = choice.message.tool_calls or []
    assert isinstance(call, openai.types.chat.ChatCompletionMessageFunctionToolCall)
    assert call.id == "call_1"
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == WEATHER_ARGS
    usage = first.usage
    assert usage is not None
    assert usage.prompt_tokens > 0 and usage.completion_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens

    messages: Any = [
        *WEATHER_QUESTION,
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": '{"temp_c": 21}'},
    ]
    second = oai.chat.completions.create(model="gpt-4o", messages=messages, tools=OPENAI_TOOLS)
    assert second.id == "chatcmpl-2"
    assert second.choices[0].finish_reason == "stop"
    assert second.choices[0].message.content == WEATHER_ANSWER
    assert second.choices[0].message.tool_calls is None

    recorded = provider.requests
    assert [r.rule for r in recorded] == ["call-weather", "answer"]
    assert all(r.path == "/v1/chat/completions" and r.status == 200 for r in recorded)
    assert recorded[0].body["model"] == "gpt-4o"
    assert recorded[0].body["messages"] == WEATHER_QUESTION
    assert recorded[0].body["tools"][0]["function"]["name"] == "get_weather"
    assert recorded[0].headers["authorization"] == "Bearer demo"
    (result,) = recorded[1].tool_results()
    assert (result.call_id, result.name, result.content) == (
        "call_1",
        "get_weather",
        '{"temp_c": 21}',
    )


def test_openai_usage_details_and_default_rule(oai: openai.OpenAI) -> None:
    mini = oai.chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
    )
    assert mini.model == "gpt-4o-mini-2024-07-18"
    assert mini.choices[0].message.content == "Hello from mini."
    usage = mini.usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (2048, 300, 2348)
    assert usage.prompt_tokens_details is not None
    assert usage.prompt_tokens_details.cached_tokens == 1024
    assert usage.completion_tokens_details is not None
    assert usage.completion_tokens_details.reasoning_tokens == 120

    unknown = oai.chat.completions.create(
        model="my-finetune", messages=[{"role": "user", "content": "hi"}]
    )
    assert unknown.model == "my-finetune"  # no alias: answered as requested
    assert unknown.choices[0].message.content == "OK"


def test_default_token_counts_are_deterministic(oai: openai.OpenAI) -> None:
    def usage() -> tuple[int, int]:
        reply = oai.chat.completions.create(model="gpt-4o", messages=WEATHER_QUESTION)
        assert reply.usage is not None
        return reply.usage.prompt_tokens, reply.usage.completion_tokens

    assert usage() == usage()


def test_openai_async(provider: ScriptedProvider) -> None:
    async def ask() -> tuple[str | None, str]:
        async with openai.AsyncOpenAI(
            base_url=provider.base_url, api_key="demo", max_retries=0
        ) as client:
            first, second = await asyncio.gather(
                client.chat.completions.create(model="gpt-4o", messages=WEATHER_QUESTION),
                client.chat.completions.create(
                    model="gpt-4o", messages=[{"role": "user", "content": "Tell me a joke"}]
                ),
            )
            calls = first.choices[0].message.tool_calls or []
            return second.choices[0].message.content, calls[0].type

    assert asyncio.run(ask()) == ("OK", "function")
    assert len(provider.requests) == 2


def _stream_openai(
    oai: openai.OpenAI, model: str, messages: Any, tools: Any = openai.omit
) -> tuple[str, dict[int, dict[str, str]], list[Any]]:
    """Reassemble a streamed chat completion the way client code does."""
    text = ""
    calls: dict[int, dict[str, str]] = {}
    chunks = list(
        oai.chat.completions.create(
            model=model,
            messages=messages,
            tools=tools,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    for chunk in chunks:
        for choice in chunk.choices:
            text += choice.delta.content or ""
            for delta in choice.delta.tool_calls or []:
                call = calls.setdefault(delta.index, {"id": "", "name": "", "arguments": ""})
                call["id"] += delta.id or ""
                if delta.function is not None:
                    call["name"] += delta.function.name or ""
                    call["arguments"] += delta.function.arguments or ""
    return text, calls, chunks


def test_openai_streaming_text_with_usage(provider: ScriptedProvider, oai: openai.OpenAI) -> None:
    messages: Any = [
        *WEATHER_QUESTION,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_9",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": json.dumps(WEATHER_ARGS)},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_9", "content": "21C"},
    ]
    text, calls, chunks = _stream_openai(oai, "gpt-4o", messages)

    assert text == WEATHER_ANSWER
    assert calls == {}
    assert len(chunks) > 4  # really streamed, in pieces
    assert {c.id for c in chunks} == {"chatcmpl-1"}
    assert {c.model for c in chunks} == {"gpt-4o-2024-08-06"}
    finishing = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishing[-1] == "stop" and set(finishing[:-1]) == {None}
    *content_chunks, usage_chunk = chunks
    assert usage_chunk.choices == [] and usage_chunk.usage is not None
    assert all(c.usage is None for c in content_chunks)

    # Streaming reports the same usage as the same request without streaming.
    plain = oai.chat.completions.create(model="gpt-4o", messages=messages)
    assert plain.usage is not None
    assert usage_chunk.usage.model_dump() == plain.usage.model_dump()
    assert provider.requests[0].body["stream_options"] == {"include_usage": True}


def test_openai_streaming_tool_call_deltas(oai: openai.OpenAI) -> None:
    text, calls, chunks = _stream_openai(oai, "gpt-4o", WEATHER_QUESTION, OPENAI_TOOLS)

    assert text == ""
    assert calls == {
        0: {
            "id": "call_1",
            "name": "get_weather",
            "arguments": json.dumps(WEATHER_ARGS, separators=(",", ":")),
        }
    }
    argument_deltas = [
        d for c in chunks for ch in c.choices for d in ch.delta.tool_calls or [] if d.id is None
    ]
    assert len(argument_deltas) > 1  # arguments arrive in fragments
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "tool_calls"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_openai_stream_helper_accumulates(oai: openai.OpenAI) -> None:
    with oai.chat.completions.stream(
        model="gpt-4o", messages=WEATHER_QUESTION, tools=OPENAI_TOOLS
    ) as stream:
        for _ in stream:
            pass
        final = stream.get_final_completion()
    (call,) = final.choices[0].message.tool_calls or []
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == WEATHER_ARGS


def test_models_list(oai: openai.OpenAI) -> None:
    ids = {m.id for m in oai.models.list()}
    assert {"gpt-4o", "gpt-4o-2024-08-06", "claude-haiku-4-5-20251001"} <= ids


# --------------------------------------------------------------------------- Anthropic


def test_anthropic_tool_use_then_answer(
    provider: ScriptedProvider, claude: anthropic.Anthropic
) -> None:
    first = claude.messages.create(
        model="claude-haiku-4-5",
        max_tokens=512,
        system="You are a weather bot.",
        tools=ANTHROPIC_TOOLS,
        messages=WEATHER_QUESTION,
    )
    assert first.id == "msg_1"
    assert first.model == "claude-haiku-4-5-20251001"
    assert first.stop_reason == "tool_use"
    (block,) = first.content
    assert block.type == "tool_use"
    assert (block.id, block.name, block.input) == ("toolu_1", "get_weather", WEATHER_ARGS)
    assert first.usage.input_tokens > 0 and first.usage.output_tokens > 0
    assert first.usage.cache_read_input_tokens == 0
    assert first.usage.cache_creation_input_tokens == 0

    messages: Any = [
        *WEATHER_QUESTION,
        {"role": "assistant", "content": [block.model_dump()]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": block.id, "content": "21C"}],
        },
    ]
    second = claude.messages.create(
        model="claude-haiku-4-5", max_tokens=512, tools=ANTHROPIC_TOOLS, messages=messages
    )
    assert second.stop_reason == "end_turn"
    assert [b.type for b in second.content] == ["text"]
    assert second.content[0].text == WEATHER_ANSWER  # type: ignore[union-attr]

    recorded = provider.requests
    assert [r.path for r in recorded] == ["/v1/messages", "/v1/messages"]
    assert [r.rule for r in recorded] == ["call-weather", "answer"]
    assert recorded[0].body["system"] == "You are a weather bot."
    assert recorded[0].system_text() == "You are a weather bot."
    sent_key = recorded[0].headers.get("x-api-key") or recorded[0].headers["authorization"]
    assert sent_key.endswith("demo")
    assert "anthropic-version" in recorded[0].headers
    assert recorded[1].last_user_text() == "What's the weather in Paris?"
    assert recorded[1].tool_results()[0].name == "get_weather"


def test_anthropic_cache_usage_split(
    provider: ScriptedProvider, claude: anthropic.Anthropic
) -> None:
    provider.set_script(
        [
            Rule(
                lambda request: True,
                ScriptedResponse(
                    text="cached", prompt_tokens=5000, cached_tokens=4000, cache_creation_tokens=600
                ),
            )
        ]
    )
    reply = claude.messages.create(
        model="claude-haiku-4-5", max_tokens=64, messages=WEATHER_QUESTION
    )
    usage = reply.usage
    # Anthropic counts cache reads and writes apart from input_tokens; the total is the prompt.
    assert (
        usage.input_tokens,
        usage.cache_read_input_tokens,
        usage.cache_creation_input_tokens,
    ) == (
        400,
        4000,
        600,
    )


def test_anthropic_streaming_text(provider: ScriptedProvider, claude: anthropic.Anthropic) -> None:
    provider.set_script([Rule(always(), ScriptedResponse(text=WEATHER_ANSWER, cached_tokens=8))])
    question: Any = [{"role": "user", "content": "hi"}]
    with claude.messages.stream(
        model="claude-haiku-4-5", max_tokens=256, messages=question
    ) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()

    assert len(pieces) > 1 and "".join(pieces) == WEATHER_ANSWER
    assert final.stop_reason == "end_turn"
    assert final.model == "claude-haiku-4-5-20251001"
    # message_delta's usage replaced message_start's placeholder output count of 1,
    # and the result matches the same request answered without streaming.
    plain = claude.messages.create(model="claude-haiku-4-5", max_tokens=256, messages=question)
    assert final.usage.output_tokens > 1
    assert final.usage.model_dump() == plain.usage.model_dump()
    assert final.usage.cache_read_input_tokens == 8


def test_anthropic_streaming_tool_use_events(claude: anthropic.Anthropic) -> None:
    events = list(
        claude.messages.create(
            model="claude-haiku-4-5",
            max_tokens=256,
            tools=ANTHROPIC_TOOLS,
            messages=WEATHER_QUESTION,
            stream=True,
        )
    )
    kinds = [e.type for e in events]
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert kinds[1] == "content_block_start" and kinds[-2] == "message_delta"
    assert kinds[-3] == "content_block_stop"
    partial = "".join(
        e.delta.partial_json
        for e in events
        if e.type == "content_block_delta" and e.delta.type == "input_json_delta"
    )
    assert json.loads(partial) == WEATHER_ARGS
    delta = events[-2]
    assert delta.type == "message_delta"
    assert delta.delta.stop_reason == "tool_use"
    assert delta.usage.output_tokens > 0

    with claude.messages.stream(
        model="claude-haiku-4-5", max_tokens=256, tools=ANTHROPIC_TOOLS, messages=WEATHER_QUESTION
    ) as stream:
        final = stream.get_final_message()
    (block,) = final.content
    assert block.type == "tool_use" and block.input == WEATHER_ARGS


# --------------------------------------------------------------------------- control


def test_failure_injection_gives_sdk_errors(
    provider: ScriptedProvider, oai: openai.OpenAI, claude: anthropic.Anthropic
) -> None:
    provider.fail_next(1, status=429)
    with pytest.raises(openai.RateLimitError) as rate_limited:
        oai.chat.completions.create(model="gpt-4o", messages=WEATHER_QUESTION)
    assert rate_limited.value.status_code == 429
    assert oai.chat.completions.create(model="gpt-4o", messages=WEATHER_QUESTION).choices

    provider.fail_next(2, status=500, body={"error": {"message": "scripted outage", "type": "x"}})
    for _ in range(2):
        with pytest.raises(openai.InternalServerError, match="scripted outage"):
            oai.chat.completions.create(model="gpt-4o", messages=WEATHER_QUESTION)

    provider.fail_next(1, status=529)
    with pytest.raises(anthropic.APIStatusError) as overloaded:
        claude.messages.create(model="claude-haiku-4-5", max_tokens=8, messages=WEATHER_QUESTION)
    assert overloaded.value.status_code == 529
    provider.fail_next(1, status=429, body="slow down")
    with pytest.raises(anthropic.RateLimitError, match="slow down"):
        claude.messages.create(model="claude-haiku-4-5", max_tokens=8, messages=WEATHER_QUESTION)
    assert claude.messages.create(
        model="claude-haiku-4-5", max_tokens=8, messages=WEATHER_QUESTION
    ).content

    statuses = [r.status for r in provider.requests]
    assert statuses == [429, 200, 500, 500, 529, 429, 200]
    assert [r.rule for r in provider.requests][:2] == [None, "call-weather"]


def test_script_and_aliases_swap_at_run_time(
    provider: ScriptedProvider, oai: openai.OpenAI
) -> None:
    def ask() -> tuple[str, str | None]:
        reply = oai.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "Approve JE-1?"}]
        )
        return reply.model, reply.choices[0].message.content

    assert ask() == ("gpt-4o-2024-08-06", "OK")

    def echo(request: ProviderRequest) -> ScriptedResponse:
        return ScriptedResponse(text=f"You said: {request.last_user_text()}")

    provider.set_script([Rule(last_user_contains("je-1"), echo)])
    provider.set_model_aliases({"gpt-4o": "gpt-4o-2024-11-20"})
    assert ask() == ("gpt-4o-2024-11-20", "You said: Approve JE-1?")
    assert provider.requests[-1].rule == "rule[0]"


# --------------------------------------------------------------------------- the demo agent


def _attr(span: ReadableSpan, key: str) -> Any:
    assert span.attributes is not None
    return span.attributes.get(key)


def _by_kind(spans: list[ReadableSpan], kind: str) -> list[ReadableSpan]:
    return [s for s in spans if _attr(s, "openinference.span.kind") == kind]


def test_finance_agent_trace() -> None:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))

    with demo_provider() as provider:
        run = run_finance_agent(
            provider.base_url, tracer_provider, session_id="sess-42", user_id="ana@example.com"
        )
    spans = list(exporter.get_finished_spans())

    assert run.decision.startswith("ESCALATE")
    assert "FIN-7" in run.decision and not run.approved
    assert len(spans) == run.expected_span_count == 5
    assert {format(s.context.trace_id, "032x") for s in spans} == {run.trace_id}

    (agent,) = _by_kind(spans, "AGENT")
    assert agent.parent is None
    assert agent.name == AGENT_NAME
    assert _attr(agent, "agent.name") == AGENT_NAME
    assert _attr(agent, "session.id") == "sess-42"
    assert _attr(agent, "user.id") == "ana@example.com"
    assert _attr(agent, "input.value") == run.question
    assert _attr(agent, "output.value") == run.decision
    assert all(
        s.parent is not None and s.parent.span_id == agent.context.span_id
        for s in spans
        if s is not agent
    )

    (retriever,) = _by_kind(spans, "RETRIEVER")
    assert _attr(retriever, "input.value") == run.question
    assert _attr(retriever, "retrieval.documents.0.document.id") == "FIN-7"
    assert run.documents[0].id == "FIN-7"
    for i, doc in enumerate(run.documents):
        prefix = f"retrieval.documents.{i}.document"
        assert _attr(retriever, f"{prefix}.id") == doc.id
        assert _attr(retriever, f"{prefix}.content") == doc.document.content
        assert _attr(retriever, f"{prefix}.score") == doc.score
        assert json.loads(_attr(retriever, f"{prefix}.metadata"))["title"] == doc.document.title

    llms = sorted(_by_kind(spans, "LLM"), key=lambda s: s.start_time or 0)
    assert len(llms) == 2
    for llm in llms:
        assert _attr(llm, "llm.model_name") == "gpt-4o-2024-08-06"
        prompt, completion = (
            _attr(llm, "llm.token_count.prompt"),
            _attr(llm, "llm.token_count.completion"),
        )
        assert prompt > 0 and completion > 0
        assert _attr(llm, "llm.token_count.total") == prompt + completion
        assert _attr(llm, "session.id") == "sess-42"
    assert (
        _attr(llms[0], "llm.output_messages.0.message.tool_calls.0.tool_call.function.name")
        == LOOKUP_JOURNAL_ENTRY
    )
    assert str(_attr(llms[1], "llm.output_messages.0.message.content")).startswith("ESCALATE")

    (tool,) = _by_kind(spans, "TOOL")
    assert _attr(tool, "tool.name") == LOOKUP_JOURNAL_ENTRY
    assert json.loads(_attr(tool, "tool.parameters"))["required"] == ["entry_id"]
    assert json.loads(_attr(tool, "input.value")) == {"entry_id": "JE-4471"}
    output = json.loads(_attr(tool, "output.value"))
    assert (output["amount"], output["currency"]) == (4_000_000, "USD")
    assert llms[0].end_time is not None and tool.start_time is not None
    assert llms[0].end_time <= tool.start_time <= (llms[1].start_time or 0)

    (call,) = run.tool_calls
    assert call.arguments == {"entry_id": "JE-4471"} and call.result == output
    assert run.models == ["gpt-4o-2024-08-06"] * 2
    recorded = provider.requests
    assert [r.rule for r in recorded] == ["lookup-entry", "decide"]
    assert "[FIN-7]" in recorded[0].last_user_text()  # the retrieved excerpts reached the model


def test_finance_agent_runs_twice_in_one_process() -> None:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))

    with demo_provider() as provider:
        first = run_finance_agent(provider.base_url, tracer_provider)
        second = run_finance_agent(provider.base_url, tracer_provider)
    spans = exporter.get_finished_spans()

    assert first.trace_id != second.trace_id
    assert first.decision == second.decision
    assert len(spans) == first.expected_span_count + second.expected_span_count
    assert len(_by_kind(list(spans), "LLM")) == 4  # instrumented once per run, never twice


def test_script_error_becomes_500_and_is_recorded(
    provider: ScriptedProvider, claude: anthropic.Anthropic
) -> None:
    def broken(request: ProviderRequest) -> ScriptedResponse:
        raise LookupError("no such fixture")

    provider.set_script([Rule(always(), broken, name="broken")])
    with pytest.raises(anthropic.InternalServerError, match="no such fixture"):
        claude.messages.create(model="claude-haiku-4-5", max_tokens=8, messages=WEATHER_QUESTION)
    (recorded,) = provider.requests
    assert recorded.status == 500
    assert recorded.body["messages"] == WEATHER_QUESTION


def test_request_helpers_read_both_formats() -> None:
    openai_style = ProviderRequest(
        "POST",
        "/v1/chat/completions",
        {},
        {
            "model": "gpt-4o",
            "messages": [
                {"role": "developer", "content": "Be terse."},
                {"role": "user", "content": [{"type": "text", "text": "Look up JE-1"}]},
                {
                    "role": "assistant",
                    "tool_calls": [{"id": "c1", "function": {"name": "lookup", "arguments": "{}"}}],
                },
                {"role": "tool", "tool_call_id": "c1", "content": "{}"},
            ],
            "tools": [{"type": "function", "function": {"name": "lookup"}}],
        },
    )
    assert openai_style.api == "openai"
    assert openai_style.system_text() == "Be terse."
    assert openai_style.last_user_text() == "Look up JE-1"
    assert openai_style.offered_tools() == ["lookup"]
    assert [r.name for r in openai_style.tool_results()] == ["lookup"]
    assert has_tool_result()(openai_style) and has_tool_result("lookup")(openai_style)
    assert not has_tool_result("other")(openai_style)
    assert model_is("gpt-4o")(openai_style) and not model_is("gpt-4o-mini")(openai_style)
    assert last_user_contains("je-1")(openai_style)
    assert not last_user_contains("je-1", case_sensitive=True)(openai_style)
