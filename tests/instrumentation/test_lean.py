"""Lean spans (``instrumentation/_lean.py``) hand the exporter what the SDK's spans would.

Each case runs the same OpenAI call twice through ``instrument()``: once on a
provider where the lean path applies, once where it cannot (the provider has
one more span processor, so the SDK's spans are used); both export into memory
through the edge exporter. Every recorded field is compared except ids and
times, which differ by nature.

The fast path is gated on the opentelemetry-sdk release (``TESTED_SDK``) and on
the SDK internals it finds; these tests also hold the gate: outside it, spans
export the same through the SDK's path. scripts/test_otel_versions.sh runs this
file against several SDK releases (without the root conftest).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from pathlib import Path
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
from agentledger.instrumentation import _lean
from agentledger.instrumentation._lean import (
    LeanSpan,
    LeanTracer,
    context_with,
    fast_path_status,
    fast_path_supported,
)
from agentledger.instrumentation.processors import Switchboard
from agentledger.schemas.attributes import OpenInference as OI

MESSAGES = [
    {"role": "system", "content": "You are a finance-controls agent."},
    {"role": "user", "content": "Should we approve journal entry JE-4471?"},
]


ROOT = Path(__file__).resolve().parents[2]
SHIPPED_RANGE = _lean.TESTED_SDK
GATE_LOGGER = "agentledger.instrumentation._lean"


@pytest.fixture(autouse=True)
def _gate(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test decides the gate afresh, with ``AGENTLEDGER_FAST_PATH`` unset.

    On an SDK release outside ``TESTED_SDK`` (a new release being vetted by
    scripts/test_otel_versions.sh) the range is widened to it, so the lean path
    is still compared with the SDK's there before the range moves.
    """
    monkeypatch.delenv(_lean.FAST_PATH_ENV, raising=False)
    monkeypatch.setattr(_lean, "_status", None)
    version = _lean._installed_sdk_version() or ""
    release = _lean._release(version)
    low, high = SHIPPED_RANGE
    if release is not None and release < _lean._release(low):  # type: ignore[operator]
        monkeypatch.setattr(_lean, "TESTED_SDK", (version, high))
    elif release is not None and release > _lean._release(high):  # type: ignore[operator]
        monkeypatch.setattr(_lean, "TESTED_SDK", (low, version))


def _need_fast_path() -> None:
    """Skip where this SDK lacks what the fast path needs (e.g. 1.40, 1.41: always-on self-metrics)."""
    supported, why = fast_path_status()
    if not supported:
        pytest.skip(f"the fast path is off here: {why}")


@pytest.fixture
def provider() -> Iterator[Any]:
    """The scripted model (as tests/conftest.py's): here too, so scripts/test_otel_versions.sh can
    run this file without the root conftest and the server extras it needs."""
    from agentledger.demo.provider import ScriptedProvider, default_script

    with ScriptedProvider(default_script()) as p:
        yield p


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
    _need_fast_path()
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
    _need_fast_path()

    def body(seen: list[Any]) -> None:
        with _client(provider, seen) as client:
            client.chat.completions.create(model="gpt-4o", messages=MESSAGES)

    lean, _ = _record(body, lean=True, limits=SpanLimits(max_span_attributes=6))
    sdk, _ = _record(body, lean=False, limits=SpanLimits(max_span_attributes=6))
    assert len(lean[0].attributes) == len(sdk[0].attributes) == 6
    assert lean[0].dropped_attributes == sdk[0].dropped_attributes > 0


def test_the_lean_path_steps_aside_when_it_could_change_the_record() -> None:
    _need_fast_path()

    def tracer_on(tp: TracerProvider, board: Switchboard) -> LeanTracer:
        tp.add_span_processor(board)
        return LeanTracer(tp.get_tracer("t"), board)

    board = Switchboard()
    board.set((SimpleSpanProcessor(InMemorySpanExporter()),))
    assert isinstance(tracer_on(TracerProvider(), board).start_span("x"), LeanSpan)
    # a sampler of the application's, a value length limit (any, or spans'), a processor with its
    # own on_start
    for tp in (
        TracerProvider(sampler=ParentBased(TraceIdRatioBased(0.5))),
        TracerProvider(span_limits=SpanLimits(max_attribute_length=64)),
        TracerProvider(span_limits=SpanLimits(max_span_attribute_length=64)),
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


# -- the gate: SDK releases it was tested with, internals it finds, AGENTLEDGER_FAST_PATH ---------


def _chat(provider: Any, seen: list[Any]) -> None:
    """A chat call, then one the provider refuses (an error span)."""
    with _client(provider, seen) as client:
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES, temperature=0)
    provider.fail_next(status=429)
    with _client(provider, seen, max_retries=0) as client, pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)


def _gate_records(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == GATE_LOGGER and r.levelno == logging.DEBUG and "path is off" in r.getMessage()
    ]


@pytest.mark.parametrize("version", ["1.0.0", "99.0.0", "1.45.0rc1"])
def test_an_untested_sdk_takes_the_sdk_path_exports_the_same_and_says_why_once(
    provider: Any,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    version: str,
) -> None:
    body = lambda seen: _chat(provider, seen)  # noqa: E731
    # what the fast path exports (where this SDK has one), else what the SDK's own path does
    reference, reference_seen = _record(body, lean=fast_path_supported())
    assert reference_seen and all(
        isinstance(s, LeanSpan) is fast_path_supported() for s in reference_seen
    )

    monkeypatch.setattr(_lean, "_installed_sdk_version", lambda: version)
    monkeypatch.setattr(_lean, "_status", None)
    caplog.set_level(logging.DEBUG, logger=GATE_LOGGER)
    gated, gated_seen = _record(body, lean=True)  # a provider the lean path would otherwise take
    again, _ = _record(body, lean=True)

    assert gated_seen and not any(isinstance(s, LeanSpan) for s in gated_seen)
    assert [_comparable(s) for s in gated] == [_comparable(s) for s in reference]
    assert [_comparable(s) for s in again] == [_comparable(s) for s in reference]
    assert not fast_path_supported()
    (message,) = _gate_records(caplog)  # once, however many tracers and spans
    assert f"opentelemetry-sdk {version} is outside the tested range" in message


def test_the_fast_path_is_supported_on_the_pinned_sdk() -> None:
    pinned = re.search(
        r"^opentelemetry-sdk==(\S+)$",
        (ROOT / "scripts" / "constraints.txt").read_text(),
        re.MULTILINE,
    )
    floor = re.search(r'"opentelemetry-sdk>=([0-9.]+)"', (ROOT / "pyproject.toml").read_text())
    assert pinned and floor
    low, high = (_lean._release(v) for v in SHIPPED_RANGE)
    assert low <= _lean._release(floor.group(1)) <= high, "pyproject's floor is not tested"  # type: ignore[operator]
    assert low <= _lean._release(pinned.group(1)) <= high, "the pin is outside TESTED_SDK"  # type: ignore[operator]
    installed = _lean._installed_sdk_version()
    if installed != pinned.group(1):
        pytest.skip(f"opentelemetry-sdk {installed} installed, {pinned.group(1)} pinned")
    assert fast_path_supported(), fast_path_status()[1]
    assert fast_path_status() == (
        True,
        f"opentelemetry-sdk {installed} is within the tested range {SHIPPED_RANGE[0]} to "
        f"{SHIPPED_RANGE[1]}",
    )


@pytest.mark.parametrize("setting", ["0", "off", " False "])
def test_AGENTLEDGER_FAST_PATH_0_turns_it_off(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, setting: str
) -> None:
    _need_fast_path()
    monkeypatch.setenv("AGENTLEDGER_FAST_PATH", setting)
    monkeypatch.setattr(_lean, "_status", None)
    caplog.set_level(logging.DEBUG, logger=GATE_LOGGER)
    board = Switchboard()
    board.set((SimpleSpanProcessor(InMemorySpanExporter()),))
    tp = TracerProvider()
    tp.add_span_processor(board)
    span = LeanTracer(tp.get_tracer("t"), board).start_span("x")
    assert not isinstance(span, LeanSpan) and span.is_recording()
    span.end()
    assert fast_path_status() == (False, f"turned off by AGENTLEDGER_FAST_PATH={setting.strip()}")
    assert len(_gate_records(caplog)) == 1


def test_AGENTLEDGER_FAST_PATH_1_leaves_it_to_the_gate(monkeypatch: pytest.MonkeyPatch) -> None:
    _need_fast_path()
    monkeypatch.setenv("AGENTLEDGER_FAST_PATH", "1")
    monkeypatch.setattr(_lean, "_status", None)
    assert fast_path_supported()
    monkeypatch.setattr(_lean, "_installed_sdk_version", lambda: "1.0.0")
    monkeypatch.setattr(_lean, "_status", None)
    assert not fast_path_supported()  # never forced on outside the tested range


def _lean_tracer() -> tuple[LeanTracer, InMemorySpanExporter]:
    memory = InMemorySpanExporter()
    board = Switchboard()
    board.set((SimpleSpanProcessor(memory),))
    tp = TracerProvider()
    tp.add_span_processor(board)
    return LeanTracer(tp.get_tracer("t"), board), memory


def test_a_missing_api_internal_turns_it_off_and_context_with_takes_the_public_path(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    _need_fast_path()
    monkeypatch.setattr(_lean, "_SPAN_KEY", None)
    monkeypatch.setattr(_lean, "_status", None)
    caplog.set_level(logging.DEBUG, logger=GATE_LOGGER)
    tracer, memory = _lean_tracer()
    span = tracer.start_span("x")
    assert not isinstance(span, LeanSpan)
    supported, why = fast_path_status()
    assert not supported and "_SPAN_KEY" in why and why in _gate_records(caplog)[0]
    key = _lean.context_api.create_key("agentledger-test")
    ctx = context_with(span, {key: "v"})
    assert trace_api.get_current_span(ctx) is span and _lean.context_api.get_value(key, ctx) == "v"
    span.end()
    assert [s.name for s in memory.get_finished_spans()] == ["x"]


def test_failures_on_the_fast_path_fall_back_to_the_sdk_and_never_raise(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    _need_fast_path()
    caplog.set_level(logging.DEBUG, logger=GATE_LOGGER)

    # starting a lean span fails (an SDK whose span context is unlike the tested ones)
    tracer, memory = _lean_tracer()

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise TypeError("unexpected SpanContext signature")

    with monkeypatch.context() as m:
        m.setattr(_lean, "SpanContext", broken)
        spans = [tracer.start_span("a"), tracer.start_span("b")]
    assert not any(isinstance(s, LeanSpan) for s in spans)
    for s in spans:
        s.end()
    assert [s.name for s in memory.get_finished_spans()] == ["a", "b"]

    # judging the tracer fails (its limits lack what is read)
    tracer, memory = _lean_tracer()
    tracer.limits = object()
    span = tracer.start_span("c")
    assert not isinstance(span, LeanSpan)
    span.end()

    # a tracer without a private attribute the lean span reads
    tracer, memory = _lean_tracer()
    tracer.tracer = _Without(tracer.tracer, "_instrumentation_scope")
    span = tracer.start_span("d")
    assert not isinstance(span, LeanSpan)
    span.end()

    told = [
        r.getMessage() for r in caplog.records if "step aside for this tracer" in r.getMessage()
    ]
    assert len(told) == 3  # once a tracer
    assert "SpanContext signature" in told[0] and "judging the tracer failed" in told[1]
    assert "has no _instrumentation_scope" in told[2]


class _Without(_lean.sdk_trace.Tracer):
    """An SDK tracer without one private attribute (as a later SDK might keep it under another
    name): its own spans still start, from the tracer it stands for."""

    def __init__(self, tracer: Any, name: str) -> None:
        self.__dict__.update({k: v for k, v in vars(tracer).items() if k != name})
        self._inner = tracer

    def start_span(self, *args: Any, **kwargs: Any) -> Any:
        return self._inner.start_span(*args, **kwargs)


def test_without_the_fast_path_attributes_are_set_through_the_public_call(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from agentledger.instrumentation._spans import set_attributes

    tp = TracerProvider()
    calls: list[Any] = []
    for supported in (True, False):
        monkeypatch.setattr(_lean, "_status", (supported, "test"))
        span = tp.get_tracer("t").start_span("x")
        public = span.set_attributes
        monkeypatch.setattr(span, "set_attributes", lambda a, p=public: (calls.append(a), p(a)))
        set_attributes(span, {"k": supported})
        assert span.attributes["k"] is supported
        span.end()
    assert calls == [{"k": False}]  # only off the fast path
