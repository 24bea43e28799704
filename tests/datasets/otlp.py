"""Build OTLP requests of LLM, tool and agent spans the way instrumentors emit them, and send them
to a collector; used to plant exactly the production data a dataset test needs."""

from __future__ import annotations

import itertools
import json
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

_ids = itertools.count(1)
BASE_NS = 1_767_225_600 * 10**9  # 2026-01-01T00:00:00Z


def new_trace_id() -> str:
    return f"{next(_ids):032x}"


def new_span_id() -> str:
    return f"{next(_ids):016x}"


def _set(kv: Any, value: Any) -> None:
    if isinstance(value, bool):
        kv.value.bool_value = value
    elif isinstance(value, int):
        kv.value.int_value = value
    elif isinstance(value, float):
        kv.value.double_value = value
    elif isinstance(value, (list, tuple)):
        for v in value:
            kv.value.array_value.values.add().string_value = str(v)
    else:
        kv.value.string_value = str(value)


def openinference_llm(
    messages: list[dict[str, Any]],
    output: dict[str, Any],
    *,
    model: str = "gpt-4o",
    tools: list[dict[str, Any]] | None = None,
    finish_reason: str = "stop",
) -> dict[str, Any]:
    """OpenInference attributes of a chat call (OpenAI-shaped messages and tools)."""
    attrs: dict[str, Any] = {
        "openinference.span.kind": "LLM",
        "llm.model_name": f"{model}-2024-08-06",
        "llm.system": "openai",
        "llm.invocation_parameters": json.dumps({"model": model, "temperature": 0}),
        "llm.token_count.prompt": 100,
        "llm.token_count.completion": 20,
        "llm.finish_reason": finish_reason,
    }
    for i, tool in enumerate(tools or ()):
        attrs[f"llm.tools.{i}.tool.json_schema"] = json.dumps(tool)

    def put(prefix: str, m: dict[str, Any]) -> None:
        attrs[f"{prefix}.message.role"] = m["role"]
        if m.get("content") is not None:
            attrs[f"{prefix}.message.content"] = m["content"]
        if m.get("tool_call_id"):
            attrs[f"{prefix}.message.tool_call_id"] = m["tool_call_id"]
        for k, call in enumerate(m.get("tool_calls") or ()):
            base = f"{prefix}.message.tool_calls.{k}.tool_call"
            attrs[f"{base}.id"] = call["id"]
            attrs[f"{base}.function.name"] = call["function"]["name"]
            attrs[f"{base}.function.arguments"] = call["function"]["arguments"]

    for i, m in enumerate(messages):
        put(f"llm.input_messages.{i}", m)
    put("llm.output_messages.0", output)
    return attrs


def genai_llm(
    messages: list[dict[str, Any]],
    output_text: str,
    *,
    model: str = "claude-haiku-4-5",
    tools: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """OpenTelemetry GenAI attributes (the newer ``parts`` shape) of a chat call."""

    def parts(m: dict[str, Any]) -> dict[str, Any]:
        out: list[dict[str, Any]] = []
        if m.get("content"):
            out.append({"type": "text", "content": m["content"]})
        for c in m.get("tool_calls") or ():
            out.append(
                {
                    "type": "tool_call",
                    "id": c["id"],
                    "name": c["function"]["name"],
                    "arguments": json.loads(c["function"]["arguments"]),
                }
            )
        if m["role"] == "tool":
            return {
                "role": "tool",
                "parts": [
                    {
                        "type": "tool_call_response",
                        "id": m["tool_call_id"],
                        "response": m["content"],
                    }
                ],
            }
        return {"role": m["role"], "parts": out}

    attrs: dict[str, Any] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "anthropic",
        "gen_ai.request.model": model,
        "gen_ai.response.model": model,
        "gen_ai.usage.input_tokens": 80,
        "gen_ai.usage.output_tokens": 12,
        "gen_ai.input.messages": json.dumps([parts(m) for m in messages]),
        "gen_ai.output.messages": json.dumps(
            [
                {
                    "role": "assistant",
                    "parts": [{"type": "text", "content": output_text}],
                    "finish_reason": "stop",
                }
            ]
        ),
    }
    if tools:
        attrs["gen_ai.tool.definitions"] = json.dumps(
            [{"type": "function", **t["function"]} for t in tools]
        )
    return attrs


@dataclass
class SpanSpec:
    name: str
    attrs: dict[str, Any]
    trace_id: str = field(default_factory=new_trace_id)
    span_id: str = field(default_factory=new_span_id)
    parent_span_id: str = ""
    start_ns: int = BASE_NS
    duration_ns: int = 500_000_000
    error: str | None = None
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


def request(specs: list[SpanSpec], service: str = "dataset-tests") -> ExportTraceServiceRequest:
    req = ExportTraceServiceRequest()
    rs = req.resource_spans.add()
    kv = rs.resource.attributes.add()
    kv.key = "service.name"
    kv.value.string_value = service
    ss = rs.scope_spans.add()
    ss.scope.name = "tests.datasets"
    for spec in specs:
        span: Span = ss.spans.add()
        span.trace_id = bytes.fromhex(spec.trace_id)
        span.span_id = bytes.fromhex(spec.span_id)
        if spec.parent_span_id:
            span.parent_span_id = bytes.fromhex(spec.parent_span_id)
        span.name = spec.name
        span.start_time_unix_nano = spec.start_ns
        span.end_time_unix_nano = spec.start_ns + spec.duration_ns
        for key, value in spec.attrs.items():
            kv = span.attributes.add()
            kv.key = key
            _set(kv, value)
        for name, attrs in spec.events:
            ev = span.events.add()
            ev.name = name
            ev.time_unix_nano = spec.start_ns
            for key, value in attrs.items():
                kv = ev.attributes.add()
                kv.key = key
                _set(kv, value)
        if spec.error is not None:
            span.status.code = Status.STATUS_CODE_ERROR
            span.status.message = spec.error
        else:
            span.status.code = Status.STATUS_CODE_OK
    return req


def send(url: str, specs: list[SpanSpec], api_key: str | None = None) -> None:
    headers = {"Content-Type": "application/x-protobuf"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    resp = httpx.post(
        f"{url}/v1/traces", content=request(specs).SerializeToString(), headers=headers, timeout=30
    )
    assert resp.status_code == 200, resp.text


def chat_span(
    question: str,
    answer: str,
    *,
    system: str = "You are a helpful support agent.",
    start_ns: int | None = None,
    model: str = "gpt-4o",
    **kwargs: Any,
) -> SpanSpec:
    """One LLM span answering ``question`` with ``answer`` (its own trace unless trace_id is given)."""
    msgs = [{"role": "system", "content": system}, {"role": "user", "content": question}]
    attrs = openinference_llm(msgs, {"role": "assistant", "content": answer}, model=model)
    attrs.update(kwargs.pop("extra", {}))
    return SpanSpec(
        "ChatCompletion", attrs, start_ns=start_ns or BASE_NS + next(_ids) * 10**6, **kwargs
    )


def now_ns() -> int:
    return time.time_ns()
