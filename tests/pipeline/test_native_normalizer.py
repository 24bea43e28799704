"""The compiled normalizer stores exactly what the Python one stores.

Beyond the convention and normalizer tests (which run both through
``normalize_both``), this file throws at both what production traffic and
careless instrumentation send: the benchmark's span mix, every captured peer
fixture in one batch under two tenants, attribute values of every OTLP type
with awkward numbers and text, repeated keys around the reference threshold,
events, and JSON that only half parses. It also pins the error and selection
behaviour the pipeline relies on.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from agentledger.pipeline.normalize import (
    NativeNormalizer,
    NormalizeError,
    OtlpNormalizer,
    SourcePosition,
    make_normalizer,
    native_available,
)
from agentledger.pipeline.settings import StoreSettings
from bench.traffic import requests as bench_requests
from tests.pipeline.test_normalizer import _request, _set
from tests.support.normalizers import assert_same_tables, normalize_both

PEERS = Path(__file__).parent.parent / "fixtures" / "peers"

AWKWARD_FLOATS = [
    0.0,
    -0.0,
    0.1,
    1.0,
    1e16,
    1e15,
    1e-5,
    1e-7,
    123456789.123,
    1.7976931348623157e308,
    5e-324,
    float("nan"),
    float("inf"),
    float("-inf"),
]
AWKWARD_TEXT = [
    "",
    "plain",
    "é" * 300,
    "ü" * 513,
    "tab\there",
    'quote"back\\slash',
    "ctl\x01\x1f\x7f",
    "emoji 🧾 ledger",
    "\u2028line",
    "[1, 2",
    '{"a": 1}',
    '"just a string"',
    "null",
    "-0",
    "1e400",
]


def _pos(i: int, tenant: str = "t") -> SourcePosition:
    return SourcePosition(tenant, 1_790_000_000_123_456_789 + i, "test", 3, 1000 + i)


def test_the_installed_build_is_the_compiled_normalizer() -> None:
    # the test command installs agentledger-native; without it this suite would not test it
    assert native_available()
    assert isinstance(make_normalizer(), NativeNormalizer)
    assert isinstance(make_normalizer(kind="python"), OtlpNormalizer)
    assert isinstance(StoreSettings(normalizer="python").make_normalizer(), OtlpNormalizer)
    assert isinstance(StoreSettings().make_normalizer(), NativeNormalizer)


def test_benchmark_span_mix_is_identical() -> None:
    reqs = list(bench_requests(300, runs_per_request=25, seed=11))
    batch = normalize_both([(r, _pos(i, tenant=f"t{i % 2}")) for i, r in enumerate(reqs)])
    assert batch.span_count == 300 * 5
    assert batch.contents.num_rows > 0


def test_every_peer_fixture_in_one_batch_is_identical() -> None:
    reqs = [
        ExportTraceServiceRequest.FromString(p.read_bytes())
        for p in sorted(PEERS.glob("*.otlp.pb"))
        if ".logs." not in p.name
    ]
    assert len(reqs) >= 10
    batch = normalize_both([(r, _pos(i, tenant="a" if i % 3 else "b")) for i, r in enumerate(reqs)])
    conventions = set(batch.spans.column("convention").to_pylist())
    assert {"openinference", "openllmetry", "openlit", "langfuse", "otel_genai"} <= conventions


def _random_value(rng: random.Random, depth: int = 0) -> Any:
    choice = rng.randrange(8 if depth < 2 else 5)
    if choice == 0:
        return rng.choice(AWKWARD_TEXT)
    if choice == 1:
        return rng.choice([0, -1, 42, 2**63 - 1, -(2**63)])
    if choice == 2:
        return rng.choice(AWKWARD_FLOATS)
    if choice == 3:
        return rng.choice([True, False])
    if choice == 4:
        return rng.randbytes(rng.randrange(0, 40))
    if choice == 5:
        return [_random_value(rng, depth + 1) for _ in range(rng.randrange(0, 4))]
    if choice == 6:
        return {
            rng.choice("abcab"): _random_value(rng, depth + 1) for _ in range(rng.randrange(0, 4))
        }
    return json.dumps({"k": rng.choice(AWKWARD_TEXT), "n": rng.choice([1, 1.5, 1e-7, None, True])})


def test_attribute_values_of_every_type_are_stored_identically() -> None:
    rng = random.Random(2026)
    reqs = []
    for _i in range(60):
        attrs = {f"attr.{j}": _random_value(rng) for j in range(rng.randrange(1, 12))}
        events = [
            (
                rng.choice(["gen_ai.choice", "exception", "gen_ai.user.message", "gen_ai.message"]),
                {"content": _random_value(rng), "x": _random_value(rng)},
            )
            for _ in range(rng.randrange(0, 3))
        ]
        reqs.append(
            _request(
                attrs,
                resource={"service.name": rng.choice(AWKWARD_TEXT)},
                events=events,
                name=rng.choice(AWKWARD_TEXT),
            )
        )
    batch = normalize_both([(r, _pos(i)) for i, r in enumerate(reqs)], ref_threshold=256)
    assert batch.span_count == 60


def test_repeated_keys_around_the_reference_threshold() -> None:
    req = _request(
        {"openinference.span.kind": "TOOL", "tool.name": "lookup", "input.value": '{"id": "JE-1"}'}
    )
    span = req.resource_spans[0].scope_spans[0].spans[0]
    for value in ("small", "x" * 600, "é" * 400, "y" * 700):  # é: 400 characters, 800 bytes
        _set(span.attributes.add(), "dup", value)
        _set(span.attributes.add(), "once." + str(len(span.attributes)), value)
    batch = normalize_both([(req, _pos(0))])
    row = batch.spans.to_pylist()[0]
    assert dict(row["attribute_refs"])["dup"]  # the last value of the key is over the threshold


@pytest.mark.parametrize(
    "attrs",
    [
        # OpenInference with parts, gaps, multi-part content and odd tool-call arguments
        {
            "openinference.span.kind": "llm",
            "llm.input_messages.0.message.role": "system",
            "llm.input_messages.0.message.content": "Be careful.",
            "llm.input_messages.2.message.role": "user",
            "llm.input_messages.2.message.contents.0.message_content.type": "text",
            "llm.input_messages.2.message.contents.0.message_content.text": "Look at this",
            "llm.input_messages.2.message.contents.1.message_content.image.image.url": "https://x/y.png",
            "llm.output_messages.0.message.role": "assistant",
            "llm.output_messages.0.message.tool_calls.0.tool_call.function.name": "f",
            "llm.output_messages.0.message.tool_calls.0.tool_call.function.arguments": "{not json",
            "llm.output_messages.0.message.tool_calls.1.tool_call.id": "c2",
            "llm.output_messages.0.message.tool_calls.1.tool_call.function.arguments": '{"b": [1, 2.5, 1e-7], "a": null}',
            "llm.invocation_parameters": '{"model": "gpt-4o-mini", "temperature": 0}',
            "llm.token_count.prompt": "12.7",
            "llm.token_count.completion": "3",
            "llm.provider": "azure",
            "agentledger.principal.chain": '["cfo@acme", 7, 1.5, true, null]',
            "agentledger.cost.usd": "bogus",
        },
        # GenAI parts with tool responses, system instructions, other part types
        {
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "claude-3-5-sonnet",
            "gen_ai.usage.input_tokens": 100,
            "gen_ai.usage.output_tokens": 5,
            "gen_ai.usage.cache_read.input_tokens": 80,
            "gen_ai.input.messages": json.dumps(
                [
                    {
                        "role": "user",
                        "parts": [
                            {"type": "text", "content": "hi"},
                            {"type": "blob", "mime": "image/png"},
                        ],
                    },
                    {
                        "role": "tool",
                        "parts": [
                            {
                                "type": "tool_call_response",
                                "id": "c1",
                                "response": {"ok": True, "n": 1.0},
                            }
                        ],
                    },
                    {
                        "role": "assistant",
                        "content": "legacy shape",
                        "tool_calls": [{"id": "c3", "function": {"name": "g", "arguments": "{}"}}],
                    },
                ]
            ),
            "gen_ai.output.messages": json.dumps(
                [
                    {
                        "role": "assistant",
                        "parts": [
                            {"type": "text", "content": "a"},
                            {"type": "text", "content": "b"},
                            {"type": "tool_call", "id": None, "name": "h", "arguments": {"x": 1}},
                        ],
                    }
                ]
            ),
            "gen_ai.system_instructions": json.dumps(
                [{"type": "text", "content": "Rule 1"}, {"type": "text", "content": "Rule 2"}]
            ),
        },
        # Langfuse usage and cost details
        {
            "langfuse.observation.type": "generation",
            "langfuse.observation.model.name": "gpt-4o",
            "langfuse.observation.usage_details": json.dumps(
                {
                    "input": 10,
                    "output": 2.9,
                    "prompt_tokens_details": {"cached_tokens": 4},
                    "completion_tokens_details": {"reasoning": True},
                }
            ),
            "langfuse.observation.cost_details": json.dumps({"input": 0.001, "output": 0.002}),
            "langfuse.observation.input": json.dumps(
                {"messages": [{"role": "user", "content": [{"type": "text", "text": "q"}]}]}
            ),
            "langfuse.observation.output": json.dumps({"role": "assistant", "content": "answer"}),
        },
        {
            "langfuse.observation.type": "tool",
            "langfuse.observation.input": json.dumps({"args": [], "kwargs": {"entry": "JE-9"}}),
            "langfuse.observation.output": '"done"',
        },
        # Traceloop entity spans with decorated values and legacy indexed prompts
        {
            "traceloop.span.kind": "task",
            "traceloop.entity.name": "prepare",
            "traceloop.entity.input": json.dumps({"args": ["only"], "kwargs": {}}),
            "traceloop.entity.output": json.dumps({"result": [1, 2]}),
            "traceloop.association.properties.session_id": "s-1",
        },
        {
            "llm.request.type": "chat",
            "gen_ai.system": "openai",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.prompt.0.role": "user",
            "gen_ai.prompt.0.content": json.dumps([{"type": "text", "text": "part"}]),
            "gen_ai.completion.0.role": "assistant",
            "gen_ai.completion.0.tool_calls.0.name": "t",
            "gen_ai.completion.0.tool_calls.0.arguments": "[1, 2]",
            "llm.usage.total_tokens": 3,
        },
        # retrieval with missing scores; a TOOL span whose result is JSON text
        {
            "openinference.span.kind": "RETRIEVER",
            "retrieval.documents.0.document.id": "d1",
            "retrieval.documents.0.document.content": "policy text",
            "retrieval.documents.1.document.content": "no id or score",
            "retrieval.documents.1.document.score": "not a number",
        },
        {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": "post",
            "gen_ai.tool.call.arguments": '{"z": 1, "a": 2}',
            "gen_ai.tool.call.result": "[" + "1, " * 400 + "1]",
        },
    ],
)
def test_convention_edge_cases_are_identical(attrs: dict[str, Any]) -> None:
    normalize_both([(_request(attrs, name="edge"), _pos(0))])


def test_openlit_by_resource_and_agent_names_propagate() -> None:
    req = _request(
        {
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.agent.name": "closer",
            "gen_ai.prompt": "flattened transcript",
            "gen_ai.completion": "ok",
        },
        resource={"service.name": "svc", "telemetry.sdk.name": "openlit"},
    )
    child = req.resource_spans[0].scope_spans[0].spans.add()
    child.trace_id, child.span_id, child.name = b"\x01" * 16, b"\x03" * 8, "child"
    batch = normalize_both([(req, _pos(0))])
    assert batch.spans.column("agent_name").to_pylist() == ["closer", "closer"]


def test_parsed_and_serialized_requests_give_the_same_rows() -> None:
    reqs = list(bench_requests(20, runs_per_request=10, seed=3))
    native = NativeNormalizer()
    parsed = native.normalize([(r, _pos(i)) for i, r in enumerate(reqs)])
    serialized = native.normalize([(r.SerializeToString(), _pos(i)) for i, r in enumerate(reqs)])
    assert_same_tables(parsed.spans, serialized.spans, "spans")
    assert_same_tables(parsed.contents, serialized.contents, "contents")


@pytest.mark.parametrize(
    "body, problem",
    [
        (b"\x0a\xff\xff\xff\xff\x0f", "malformed OTLP protobuf"),  # a length beyond the buffer
        (
            b"\x0a\x0a\x12\x08\x12\x06\x2a\x04\xff\xfe\x00\x01",
            "malformed OTLP protobuf",
        ),  # span name not UTF-8
    ],
)
def test_malformed_requests_raise_normalize_error_in_both(body: bytes, problem: str) -> None:
    for normalizer in (OtlpNormalizer(), NativeNormalizer()):
        with pytest.raises(NormalizeError, match=problem):
            normalizer.normalize([(body, _pos(0))])


def test_span_count_from_framing_agrees_with_the_protobuf_library() -> None:
    from google.protobuf.message import DecodeError

    from agentledger.pipeline.normalize.native import count_spans

    for reqs in (
        list(bench_requests(7, runs_per_request=3, seed=2)),
        [ExportTraceServiceRequest()],
    ):
        for r in reqs:
            expected = sum(len(ss.spans) for rs in r.resource_spans for ss in rs.scope_spans)
            assert count_spans(r.SerializeToString()) == expected
    with pytest.raises(DecodeError):
        count_spans(b"\x0a\xff\xff\xff\xff\x0f")
