"""Normalizer behaviour beyond the captured fixtures: legacy shapes, unknown spans, cost, content."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from agentledger.pipeline.normalize import NormalizedBatch, SourcePosition
from agentledger.schemas import content_hash
from tests.support.normalizers import normalize_both


def _request(
    attrs: dict[str, Any], *, resource: dict[str, Any] | None = None, events=(), name="span"
) -> ExportTraceServiceRequest:
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    for k, v in (resource or {"service.name": "svc"}).items():
        kv = rs.resource.attributes.add()
        kv.key, kv.value.string_value = k, v
    span = rs.scope_spans.add().spans.add()
    span.trace_id, span.span_id, span.name = b"\x01" * 16, b"\x02" * 8, name
    span.start_time_unix_nano, span.end_time_unix_nano = 1_000_000_000, 1_250_000_000
    for k, v in attrs.items():
        _set(span.attributes.add(), k, v)
    for ev_name, ev_attrs in events:
        ev = span.events.add()
        ev.name = ev_name
        for k, v in ev_attrs.items():
            _set(ev.attributes.add(), k, v)
    return req


def _set(kv, key: str, value: Any) -> None:
    kv.key = key
    _value(kv.value, value)


def _value(av, value: Any) -> None:
    if isinstance(value, bool):
        av.bool_value = value
    elif isinstance(value, int):
        av.int_value = value
    elif isinstance(value, float):
        av.double_value = value
    elif isinstance(value, bytes):
        av.bytes_value = value
    elif isinstance(value, list):
        for item in value:
            _value(av.array_value.values.add(), item)
    elif isinstance(value, dict):
        for k, v in value.items():
            _set(av.kvlist_value.values.add(), k, v)
    else:
        av.string_value = value


def _norm(*reqs: ExportTraceServiceRequest, tenant: str = "t") -> NormalizedBatch:
    return normalize_both(
        [(r, SourcePosition(tenant, time.time_ns(), "test", 0, i)) for i, r in enumerate(reqs)]
    )


def _row(batch: NormalizedBatch) -> dict:
    return batch.spans.to_pylist()[0]


def _content(batch: NormalizedBatch, h: str) -> str:
    return {r["hash"]: r["content"] for r in batch.contents.to_pylist()}[h]


def test_legacy_indexed_openllmetry_attributes() -> None:
    b = _norm(
        _request(
            {
                "llm.request.type": "chat",
                "gen_ai.system": "Anthropic",
                "gen_ai.request.model": "claude-sonnet-4",
                "gen_ai.response.model": "claude-sonnet-4-20250514",
                "gen_ai.prompt.0.role": "system",
                "gen_ai.prompt.0.content": "Be careful.",
                "gen_ai.prompt.1.role": "user",
                "gen_ai.prompt.1.content": "Approve JE-1?",
                "gen_ai.completion.0.role": "assistant",
                "gen_ai.completion.0.finish_reason": "tool_calls",
                "gen_ai.completion.0.tool_calls.0.id": "toolu_1",
                "gen_ai.completion.0.tool_calls.0.name": "lookup",
                "gen_ai.completion.0.tool_calls.0.arguments": '{"id": "JE-1"}',
                "gen_ai.usage.prompt_tokens": 1000,
                "gen_ai.usage.completion_tokens": 100,
                "traceloop.association.properties.user_id": "u1",
            }
        )
    )
    row = _row(b)
    assert (row["convention"], row["kind"], row["provider"]) == ("openllmetry", "LLM", "Anthropic")
    assert json.loads(_content(b, row["input_hash"])) == [
        {"role": "system", "content": "Be careful."},
        {"role": "user", "content": "Approve JE-1?"},
    ]
    assert json.loads(_content(b, row["output_hash"])) == [
        {
            "role": "assistant",
            "tool_calls": [{"id": "toolu_1", "name": "lookup", "arguments": {"id": "JE-1"}}],
        }
    ]
    assert row["user_id"] == "u1" and row["input_preview"] == "Approve JE-1?"
    # priced from the Anthropic table: 1000 * $3 + 100 * $15 per million
    assert row["cost_source"] == "price_table" and row["cost_usd"] == pytest.approx(0.0045)


def test_legacy_content_events() -> None:
    b = _norm(
        _request(
            {"gen_ai.system": "openai", "gen_ai.request.model": "gpt-4o-mini"},
            events=[
                (
                    "gen_ai.content.prompt",
                    {"gen_ai.prompt": json.dumps([{"role": "user", "content": "hi"}])},
                ),
                (
                    "gen_ai.content.completion",
                    {"gen_ai.completion": json.dumps([{"role": "assistant", "content": "hello"}])},
                ),
            ],
        )
    )
    row = _row(b)
    assert row["convention"] == "otel_genai"
    assert json.loads(_content(b, row["input_hash"])) == [{"role": "user", "content": "hi"}]
    assert json.loads(_content(b, row["output_hash"])) == [
        {"role": "assistant", "content": "hello"}
    ]
    assert "gen_ai.content.prompt" in row["events"]


def test_span_in_no_convention_keeps_all_raw_attributes() -> None:
    b = _norm(
        _request(
            {
                "http.method": "GET",
                "retries": 3,
                "ok": True,
                "ratio": 0.5,
                "tags": ["a", "b"],
                "nested": {"x": 1},
                "blob": b"\x00\x01",
            }
        )
    )
    row = _row(b)
    assert (row["convention"], row["kind"], row["cost_source"]) == ("unknown", "UNKNOWN", "none")
    assert dict(row["attributes"]) == {
        "http.method": "GET",
        "retries": "3",
        "ok": "true",
        "ratio": "0.5",
        "tags": '["a","b"]',
        "nested": '{"x":1}',
        "blob": "AAE=",
    }
    assert row["duration_ms"] == 250.0


def test_cost_reported_by_the_span_wins_over_the_price_table() -> None:
    row = _row(
        _norm(
            _request(
                {
                    "openinference.span.kind": "LLM",
                    "llm.model_name": "gpt-4o",
                    "llm.token_count.prompt": 10,
                    "llm.cost.total": 1.25,
                }
            )
        )
    )
    assert (row["cost_usd"], row["cost_source"]) == (1.25, "span")
    row = _row(
        _norm(
            _request(
                {
                    "openinference.span.kind": "LLM",
                    "llm.model_name": "house-model-7",
                    "llm.token_count.prompt": 10,
                }
            )
        )
    )
    assert (row["cost_usd"], row["cost_source"]) == (0.0, "none")


def test_price_table_override(tmp_path, monkeypatch) -> None:
    from agentledger.schemas import PriceTable

    path = tmp_path / "prices.json"
    path.write_text(json.dumps({"house": {"house-model": {"input": 1000.0, "output": 0.0}}}))
    req = _request(
        {
            "openinference.span.kind": "LLM",
            "llm.model_name": "house-model-7",
            "llm.provider": "house",
            "llm.token_count.prompt": 10,
        }
    )
    row = normalize_both(
        [(req, SourcePosition("t", 0, "x"))], PriceTable.load(path)
    ).spans.to_pylist()[0]
    assert row["cost_usd"] == pytest.approx(0.01) and row["cost_source"] == "price_table"


def test_large_values_are_stored_once_by_hash_per_tenant() -> None:
    prompt = "You are the controller's assistant. " * 40
    attrs = {
        "openinference.span.kind": "LLM",
        "llm.input_messages.0.message.role": "system",
        "llm.input_messages.0.message.content": prompt,
    }
    b = _norm(_request(attrs), _request(attrs), tenant="t")
    rows = b.spans.to_pylist()
    ref = dict(rows[0]["attribute_refs"])["llm.input_messages.0.message.content"]
    assert (
        ref
        == content_hash(prompt)
        == rows[0]["system_prompt_hash"]
        == rows[1]["system_prompt_hash"]
    )
    assert "llm.input_messages.0.message.content" not in dict(rows[0]["attributes"])
    assert b.contents.column("hash").to_pylist().count(ref) == 1
    two = normalize_both(
        [
            (_request(attrs), SourcePosition("a", 0, "x")),
            (_request(attrs), SourcePosition("b", 0, "x")),
        ]
    )
    assert sorted(r["tenant"] for r in two.contents.to_pylist() if r["hash"] == ref) == ["a", "b"]


def test_principal_attributes_are_stamped() -> None:
    row = _row(
        _norm(
            _request(
                {
                    "agentledger.principal.id": "alice@acme",
                    "agentledger.policy.id": "FIN-7",
                    "agentledger.principal.chain": '["cfo@acme", "alice@acme"]',
                }
            )
        )
    )
    assert (row["principal_id"], row["policy_id"], row["principal_chain"]) == (
        "alice@acme",
        "FIN-7",
        ["cfo@acme", "alice@acme"],
    )
