"""instrument()/uninstrument(): idempotence, joining an application's provider, attribution,
configuration from the environment, model pins."""

from __future__ import annotations

import asyncio
from typing import Any

import openai
import pytest
from opentelemetry import baggage, context, propagate
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import agentledger
from agentledger.instrumentation import config, lifecycle
from agentledger.instrumentation.principal import _no_principal
from agentledger.pipeline.services import queries
from agentledger.schemas.attributes import AgentLedger as AL

MESSAGES = [{"role": "user", "content": "Is JE-4471 within policy?"}]


def _chat(provider: Any, model: str = "gpt-4o", **kwargs: Any) -> Any:
    with openai.OpenAI(base_url=provider.base_url, api_key="test") as client:
        result = client.chat.completions.create(model=model, messages=MESSAGES, **kwargs)
        return list(result) if kwargs.get("stream") else result


def test_instrument_is_idempotent_and_uninstrument_undoes_it(
    server: Any, provider: Any, proxy: Any, instrumented: Any
) -> None:
    original = openai.OpenAI.request
    first = instrumented(instrumentors=["openai", "anthropic"])
    assert set(first.frameworks) == {"openai", "anthropic"}
    patched = openai.OpenAI.request
    assert patched is not original
    assert agentledger.instrument() is first  # a second call changes nothing
    assert openai.OpenAI.request is patched
    assert len(first._switchboard.processors) == 2
    _chat(provider)
    assert agentledger.flush() and len(proxy.spans()) == 1

    agentledger.uninstrument()
    agentledger.uninstrument()  # twice is fine
    assert lifecycle.instrumentation() is None
    assert openai.OpenAI.request is original
    from openinference.instrumentation.anthropic import AnthropicInstrumentor

    assert not AnthropicInstrumentor().is_instrumented_by_opentelemetry
    _chat(provider)
    assert len(proxy.spans()) == 1  # nothing recorded any more
    assert first._switchboard.processors == ()

    again = instrumented(instrumentors=["openai"], tracer_provider=first.provider)
    assert again is not first and again._switchboard is first._switchboard  # reused, not stacked
    _chat(provider)
    assert agentledger.flush() and len(proxy.spans()) == 2


def test_joins_the_applications_provider_without_replacing_it(
    server: Any, provider: Any, proxy: Any, instrumented: Any
) -> None:
    app_provider = TracerProvider()
    app_exporter = InMemorySpanExporter()
    app_provider.add_span_processor(SimpleSpanProcessor(app_exporter))
    state = instrumented(instrumentors=["openai"], tracer_provider=app_provider)
    assert state.provider is app_provider and not state.owns_provider
    with agentledger.acting_for("controller@acme.example"):
        with app_provider.get_tracer("app").start_as_current_span("app-step"):
            _chat(provider)
    assert agentledger.flush()
    names = sorted(s.name for s in app_exporter.get_finished_spans())
    assert names == [
        "ChatCompletion",
        "app-step",
    ]  # the application's exporter still gets everything
    assert all(
        s.attributes[AL.PRINCIPAL_ID] == "controller@acme.example"
        for s in app_exporter.get_finished_spans()
    )
    assert sorted(s.name for s in proxy.spans()) == names  # and so does the collector


def test_unattributed_spans_are_marked_and_baggage_carries_the_principal(
    server: Any, instrumented: Any
) -> None:
    state = instrumented(instrumentors=[])
    tracer = state.provider.get_tracer("app")
    with _no_principal(), tracer.start_as_current_span("nobody"):
        pass
    # an upstream service acted for a principal and called us with W3C baggage
    carrier: dict[str, str] = {}
    with agentledger.acting_for("cfo@acme.example", policy="FIN-7"):
        with agentledger.acting_for("controller-bot"):
            propagate.inject(carrier)
    assert "baggage" in carrier
    incoming = propagate.extract(carrier)
    token = context.attach(incoming)
    try:
        assert baggage.get_baggage(AL.PRINCIPAL_ID) == "controller-bot"
        with tracer.start_as_current_span("downstream"):
            pass
    finally:
        context.detach(token)
    assert agentledger.flush()
    rows = {
        r["name"]: r
        for t in queries.list_traces(server.store, "default")
        for r in queries.get_trace(server.store, "default", t["trace_id"])
    }
    assert (
        rows["nobody"]["principal_id"] == ""
        and rows["nobody"]["attributes"][AL.UNATTRIBUTED] == "true"
    )
    down = rows["downstream"]
    assert down["principal_id"] == "controller-bot"
    assert down["principal_chain"] == ["cfo@acme.example", "controller-bot"]
    assert down["policy_id"] == "FIN-7" and AL.UNATTRIBUTED not in down["attributes"]


def test_configuration_from_arguments_then_agentledger_then_otel_env(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in (
        "AGENTLEDGER_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "AGENTLEDGER_API_KEY",
        "OTEL_EXPORTER_OTLP_HEADERS",
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
    ):
        monkeypatch.delenv(name, raising=False)
    assert config.resolve_endpoint() == "http://127.0.0.1:4318/v1/traces"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://otel:4318")
    assert config.resolve_endpoint() == "http://otel:4318/v1/traces"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://otel:4318/custom")
    assert config.resolve_endpoint() == "http://otel:4318/custom"
    monkeypatch.setenv("AGENTLEDGER_ENDPOINT", "https://ledger.example")
    assert config.resolve_endpoint() == "https://ledger.example/v1/traces"
    assert (
        config.resolve_endpoint("http://127.0.0.1:9999/v1/traces")
        == "http://127.0.0.1:9999/v1/traces"
    )
    monkeypatch.setenv("AGENTLEDGER_ENDPOINT", "ledger.example:4318")
    with pytest.raises(ValueError, match="AGENTLEDGER_ENDPOINT"):
        config.resolve_endpoint()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-team=ops,authorization=Bearer%20otel")
    assert config.resolve_headers() == {"x-team": "ops", "authorization": "Bearer otel"}
    monkeypatch.setenv("AGENTLEDGER_API_KEY", "key-acme-123")
    assert config.resolve_headers()["authorization"] == "Bearer key-acme-123"
    assert config.resolve_headers(api_key="explicit")["authorization"] == "Bearer explicit"
    monkeypatch.setenv("AGENTLEDGER_ON_PIN_MISMATCH", "explode")
    with pytest.raises(ValueError, match="AGENTLEDGER_ON_PIN_MISMATCH"):
        agentledger.instrument(export=False)
    monkeypatch.delenv("AGENTLEDGER_ON_PIN_MISMATCH")
    with pytest.raises(ValueError, match="unknown instrumentors"):
        agentledger.instrument(instrumentors=["openai", "cobol"], export=False)
    assert lifecycle.instrumentation() is None


def test_api_key_reaches_the_collector(auth_server: Any, provider: Any) -> None:
    from tests.conftest import API_KEYS

    agentledger.instrument(
        endpoint=auth_server.url,
        api_key=API_KEYS["globex"],
        instrumentors=["openai"],
        tracer_provider=TracerProvider(),
    )
    try:
        _chat(provider)
        assert agentledger.flush()
    finally:
        agentledger.uninstrument()
    assert len(queries.list_traces(auth_server.store, "globex")) == 1
    assert queries.list_traces(auth_server.store, "acme") == []


def test_model_pin_flags_a_different_answered_model(
    server: Any, provider: Any, instrumented: Any
) -> None:
    instrumented(
        instrumentors=["openai"],
        agent_name="finance-agent",
        model_pins={"finance-agent": "gpt-4o-2024-05-13", "other-agent": "gpt-4o-2024-08-06"},
    )
    answer = _chat(provider)  # flag: the call goes through
    with agentledger.as_agent("other-agent"):
        _chat(provider)
    assert answer.model == "gpt-4o-2024-08-06"
    assert agentledger.flush()
    rows = {
        r["agent_name"]: r
        for t in queries.list_traces(server.store, "default")
        for r in queries.get_trace(server.store, "default", t["trace_id"])
    }
    flagged = rows["finance-agent"]["attributes"]
    assert flagged[AL.MODEL_PIN] == "gpt-4o-2024-05-13" and flagged[AL.MODEL_PIN_MISMATCH] == "true"
    assert rows["other-agent"]["attributes"][AL.MODEL_PIN_MISMATCH] == "false"


@pytest.mark.parametrize("mode", ["plain", "stream", "async"])
def test_model_pin_raises_when_told_to(
    server: Any, provider: Any, instrumented: Any, mode: str
) -> None:
    instrumented(
        instrumentors=["openai"], model_pins={"*": "gpt-4o-2024-05-13"}, on_pin_mismatch="raise"
    )
    with pytest.raises(agentledger.ModelPinMismatch) as caught:
        if mode == "plain":
            _chat(provider)
        elif mode == "stream":
            _chat(provider, stream=True)
        else:

            async def run() -> None:
                async with openai.AsyncOpenAI(base_url=provider.base_url, api_key="test") as client:
                    await client.chat.completions.create(model="gpt-4o", messages=MESSAGES)

            asyncio.run(run())
    assert (
        caught.value.pinned == "gpt-4o-2024-05-13" and caught.value.answered == "gpt-4o-2024-08-06"
    )
    assert agentledger.flush()
    (row,) = queries.get_trace(
        server.store, "default", queries.list_traces(server.store, "default")[0]["trace_id"]
    )
    assert row["status_code"] == "ERROR" and "ModelPinMismatch" in row["status_message"]
    assert row["attributes"][AL.MODEL_PIN_MISMATCH] == "true"
    # the pinned model answering is fine
    provider.set_model_aliases({"gpt-4o": "gpt-4o-2024-05-13"})
    assert _chat(provider).model == "gpt-4o-2024-05-13"


def test_pins_flag_spans_other_instrumentors_recorded(
    server: Any, provider: Any, instrumented: Any
) -> None:
    import anthropic

    instrumented(instrumentors=["anthropic"], model_pins={"*": "claude-haiku-4-5"})
    with anthropic.Anthropic(base_url=provider.anthropic_base_url, api_key="test") as client:
        client.messages.create(model="claude-haiku-4-5", max_tokens=64, messages=MESSAGES)
    assert agentledger.flush()
    (row,) = queries.get_trace(
        server.store, "default", queries.list_traces(server.store, "default")[0]["trace_id"]
    )
    assert row["response_model"] == "claude-haiku-4-5-20251001"
    assert row["attributes"][AL.MODEL_PIN_MISMATCH] == "true"
