"""Lean spans (``instrumentation/_lean.py``) hand the exporter what the SDK's spans would.

Each case runs the same OpenAI call twice through ``instrument()``: once on a
provider where the lean path applies, once where it cannot (the provider has
one more span processor, so the SDK's spans are used); both export into memory
through the edge exporter. Every recorded field is compared except ids and
times, which differ by nature.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import openai
import pytest
from opentelemetry import trace as trace_api
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

import agentledger
from agentledger.instrumentation._lean import LeanSpan, LeanTracer
from agentledger.instrumentation.processors import Switchboard
from agentledger.schemas.attributes import OpenInference as OI

MESSAGES = [
    {"role": "system", "content": "You are a finance-controls agent."},
    {"role": "user", "content": "Should we approve journal entry JE-4471?"},
]


class _Watcher(SpanProcessor):
    """An application's own processor: its presence alone makes the lean path step aside."""

    def __init__(self) -> None:
        self.started: list[Any] = []

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        self.started.append(span)


def _record(
    body: Callable[[Any], Any], *, lean: bool, limits: SpanLimits | None = None, **kwargs: Any
) -> tuple[list[ReadableSpan], list[Any]]:
    """Run ``body(provider)`` instrumented; the spans exported and the spans current inside calls."""
    memory = InMemorySpanExporter()
    tp = TracerProvider(
        resource=Resource.create({"service.name": "lean-tests"}), span_limits=limits
    )
    if not lean:
        tp.add_span_processor(_Watcher())
    agentledger.instrument(
        tracer_provider=tp,
        exporter=memory,
        instrumentors=["openai"],
        agent_name="finance-agent",
        **kwargs,
    )
    seen: list[Any] = []
    try:
        body(seen)
        assert agentledger.flush()
    finally:
        agentledger.uninstrument()
    return list(memory.get_finished_spans()), seen


def _comparable(span: ReadableSpan) -> dict[str, Any]:
    return {
        "name": span.name,
        "kind": span.kind,
        "status": (span.status.status_code, span.status.description),
        "attributes": dict(span.attributes or {}),
        "events": [
            (e.name, {k: v for k, v in (e.attributes or {}).items() if k != "exception.stacktrace"})
            for e in span.events
        ],
        "dropped": (span.dropped_attributes, span.dropped_events, span.dropped_links),
        "resource": dict(span.resource.attributes),
        "scope": span.instrumentation_scope.name,
        "has_parent": span.parent is not None,
        "ended_after_start": span.end_time >= span.start_time,
    }


def _both(
    body: Callable[[Any], Any], **kwargs: Any
) -> tuple[list[ReadableSpan], list[ReadableSpan]]:
    lean, lean_seen = _record(body, lean=True, **kwargs)
    sdk, sdk_seen = _record(body, lean=False, **kwargs)
    assert lean_seen and all(isinstance(s, LeanSpan) for s in lean_seen), (
        "the lean path was not taken"
    )
    assert sdk_seen and not any(isinstance(s, LeanSpan) for s in sdk_seen), (
        "the SDK path was not taken"
    )
    assert [_comparable(s) for s in lean] == [_comparable(s) for s in sdk]
    return lean, sdk


def _current_span_hook(seen: list[Any]) -> dict[str, Any]:
    """An httpx event hook: notes the span current while the SDK sends the request."""
    return {"request": [lambda request: seen.append(trace_api.get_current_span())]}


def _client(provider: Any, seen: list[Any], **kwargs: Any) -> openai.OpenAI:
    import httpx2

    return openai.OpenAI(
        base_url=provider.base_url,
        api_key="test",
        http_client=httpx2.Client(event_hooks=_current_span_hook(seen)),
        **kwargs,
    )


def test_a_chat_call_inside_an_application_span_and_a_principal(provider: Any) -> None:
    def body(seen: list[Any]) -> None:
        tracer = _app_tracer()
        with agentledger.acting_for(
            "cfo@acme.example", name="Dana Reyes", role="cfo", policy="FIN-7"
        ):
            with (
                tracer.start_as_current_span("approve-journal-entry"),
                _client(provider, seen) as client,
            ):
                client.chat.completions.create(model="gpt-4o", messages=MESSAGES, temperature=0)

    lean, _ = _both(body)
    chat = next(s for s in lean if s.name == "ChatCompletion")
    outer = next(s for s in lean if s.name == "approve-journal-entry")
    assert chat.parent is not None and chat.parent.span_id == outer.context.span_id
    assert chat.context.trace_id == outer.context.trace_id and chat.context.trace_flags.sampled
    assert chat.attributes[OI.LLM_RESPONSE_MODEL] == "gpt-4o-2024-08-06"
    assert chat.attributes["agentledger.principal.id"] == "cfo@acme.example"


def _app_tracer() -> Any:
    """The application's tracer, on the provider instrument() joined."""
    from agentledger.instrumentation import lifecycle

    state = lifecycle.instrumentation()
    assert state is not None
    return state.provider.get_tracer("app")


def test_a_failed_call_records_the_error_the_same_way(provider: Any) -> None:
    def body(seen: list[Any]) -> None:
        provider.fail_next(status=429)
        with _client(provider, seen, max_retries=0) as client, pytest.raises(openai.RateLimitError):
            client.chat.completions.create(model="gpt-4o", messages=MESSAGES)

    lean, _ = _both(body)
    (span,) = lean
    assert span.status.status_code.name == "ERROR" and "RateLimitError" in span.status.description
    assert [e.name for e in span.events] == ["exception"]
    assert "RateLimitError" in span.events[0].attributes["exception.stacktrace"]


def test_a_stream_and_attributes_set_by_code_inside_the_call(provider: Any) -> None:
    def body(seen: list[Any]) -> None:
        with _client(provider, seen) as client:
            stream = client.chat.completions.create(
                model="gpt-4o",
                messages=MESSAGES,
                stream=True,
                stream_options={"include_usage": True},
            )
            # what an application's hook may do to the current span: kept, validated as the SDK does
            current = seen[-1]
            current.set_attribute("app.retry", 2)
            current.set_attribute("app.tags", ["a", "b"])
            current.set_attribute(
                "app.odd", object()
            )  # not an attribute value: cleaned as the SDK does
            current.add_event("app.note", {"n": 1})
            for _ in stream:
                pass

    lean, _ = _both(body)
    (span,) = lean
    assert span.attributes["app.retry"] == 2 and tuple(span.attributes["app.tags"]) == ("a", "b")
    assert span.attributes[OI.TOKENS_TOTAL] > 0 and span.attributes[OI.LLM_FINISH_REASON]


def test_messages_changed_after_the_call_are_recorded_as_sent(provider: Any) -> None:
    def body(seen: list[Any]) -> None:
        messages = [dict(m) for m in MESSAGES]
        with _client(provider, seen) as client:
            answer = client.chat.completions.create(model="gpt-4o", messages=messages)
        messages.append(
            {"role": "assistant", "content": answer.choices[0].message.content}
        )  # the agent goes on
        messages[1]["content"] = "edited afterwards"

    lean, _ = _both(body)
    attrs = lean[0].attributes
    assert attrs[f"{OI.LLM_INPUT_MESSAGES}.1.{OI.MESSAGE_CONTENT}"] == MESSAGES[1]["content"]
    assert f"{OI.LLM_INPUT_MESSAGES}.2.{OI.MESSAGE_ROLE}" not in attrs


def test_the_attribute_count_limit_is_applied_and_counted(provider: Any) -> None:
    def body(seen: list[Any]) -> None:
        with _client(provider, seen) as client:
            client.chat.completions.create(model="gpt-4o", messages=MESSAGES)

    lean, _ = _record(body, lean=True, limits=SpanLimits(max_span_attributes=6))
    sdk, _ = _record(body, lean=False, limits=SpanLimits(max_span_attributes=6))
    assert len(lean[0].attributes) == len(sdk[0].attributes) == 6
    assert lean[0].dropped_attributes == sdk[0].dropped_attributes > 0


def test_the_lean_path_steps_aside_when_it_could_change_the_record() -> None:
    def tracer_on(tp: TracerProvider, board: Switchboard) -> LeanTracer:
        tp.add_span_processor(board)
        return LeanTracer(tp.get_tracer("t"), board)

    board = Switchboard()
    board.set((SimpleSpanProcessor(InMemorySpanExporter()),))
    assert isinstance(tracer_on(TracerProvider(), board).start_span("x"), LeanSpan)
    # a sampler of the application's, a value length limit, a processor with its own on_start
    for tp in (
        TracerProvider(sampler=ParentBased(TraceIdRatioBased(0.5))),
        TracerProvider(span_limits=SpanLimits(max_attribute_length=64)),
    ):
        assert not isinstance(tracer_on(tp, board).start_span("x"), LeanSpan)
    watched = Switchboard()
    watched.set((_Watcher(),))
    assert not isinstance(tracer_on(TracerProvider(), watched).start_span("x"), LeanSpan)
    # an unsampled parent: the SDK's non-recording span, as the default sampler decides
    lean = tracer_on(TracerProvider(), board)
    parent = trace_api.NonRecordingSpan(
        trace_api.SpanContext(1, 2, is_remote=True, trace_flags=trace_api.TraceFlags(0))
    )
    with trace_api.use_span(parent):
        span = lean.start_span("x")
    assert not span.is_recording() and not isinstance(span, LeanSpan)
    # the switchboard's processors change: checked again
    board.set((_Watcher(),))
    assert not isinstance(lean.start_span("x"), LeanSpan)
