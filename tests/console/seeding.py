"""What the demo does not record, added to a running server the way real clients add it: a
larger multi-agent run than the demo's one handoff (three agents, a queue handoff that fails and a
synchronous one, through the real instrumentation, sent as OTLP with an ingest key) and a drift
report (rebuilt requests read from the API, a replay stored through ``POST /api/v1/replays`` with
an auditor's key). Used by the console tests; ``scripts/screenshots.py`` uses the drift report.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx

__all__ = ["HANDOFF_AGENTS", "seed_handoffs", "seed_replay"]

HANDOFF_AGENTS = ("triage-agent", "posting-agent", "review-agent")


def _llm(tracer: Any, tokens: tuple[int, int], cost: float) -> None:
    from agentledger.schemas.attributes import GenAI

    with tracer.start_as_current_span("chat gpt-4o-mini") as span:
        span.set_attribute(GenAI.OPERATION_NAME, "chat")
        span.set_attribute(GenAI.REQUEST_MODEL, "gpt-4o-mini")
        span.set_attribute(GenAI.INPUT_TOKENS, tokens[0])
        span.set_attribute(GenAI.OUTPUT_TOKENS, tokens[1])
        span.set_attribute("gen_ai.usage.cost", cost)


def seed_handoffs(url: str, ingest_key: str) -> str:
    """triage hands three entries to posting over a queue (the last one fails), posting asks
    review synchronously once; returns the triage trace's id. Sent and flushed before it returns."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    from agentledger.instrumentation import acting_for, as_agent, inject_handoff, receive_handoff
    from agentledger.instrumentation.processors import AttributionProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": "ledger-desk"}))
    provider.add_span_processor(AttributionProcessor())
    provider.add_span_processor(
        SimpleSpanProcessor(
            OTLPSpanExporter(
                endpoint=f"{url}/v1/traces", headers={"Authorization": f"Bearer {ingest_key}"}
            )
        )
    )
    tracer = provider.get_tracer("agentledger.console.seed")
    triage, posting, review = HANDOFF_AGENTS
    carriers: list[dict[str, str]] = []
    with acting_for("controller@acme-corp.example"), as_agent(triage):
        with tracer.start_as_current_span("triage month-end entries") as root:
            _llm(tracer, (420, 60), 0.0009)
            for _ in range(3):
                carriers.append(inject_handoff({}, to_agent=posting, tracer_provider=provider))
            trace_id = format(root.get_span_context().trace_id, "032x")
    for i, carrier in enumerate(carriers):
        try:
            with receive_handoff(carrier, agent_name=posting, tracer_provider=provider):
                _llm(tracer, (310, 45), 0.0007)
                if i == 0:
                    ask = inject_handoff({}, to_agent=review, tracer_provider=provider)
                    with receive_handoff(
                        ask, agent_name=review, synchronous=True, tracer_provider=provider
                    ):
                        _llm(tracer, (150, 20), 0.0003)
                if i == 2:
                    raise RuntimeError("period 2024-Q3 is closed")
        except RuntimeError:
            pass
    provider.force_flush()
    provider.shutdown()
    return trace_id


def seed_replay(url: str, auditor_key: str, agent: str, timeout_s: float = 30) -> str:
    """A drift report over ``agent``'s recorded LLM calls as a candidate model answered them: the
    last call answers differently (another decision, no tool), the others the same. Returns its
    run id. Waits until the calls are readable (the demo's spans are stored before ``serve``)."""
    headers = {"Authorization": f"Bearer {auditor_key}"}
    deadline = time.monotonic() + timeout_s
    while True:
        got = httpx.get(
            f"{url}/api/v1/replay/requests",
            params={"agent": agent, "limit": 20},
            headers=headers,
            timeout=30,
        )
        got.raise_for_status()
        requests = got.json()["requests"]
        if requests or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert requests, f"no recorded LLM call of {agent} to replay"
    requests.sort(key=lambda r: r["started_at"])
    outcomes = []
    for i, r in enumerate(requests):
        recorded = r["recorded"]
        replayed = dict(recorded, model="gpt-4o-mini-2024-07-18")
        if i == len(requests) - 1 and recorded["text"]:
            replayed = {
                "text": recorded["text"].replace("ESCALATE", "APPROVE", 1)
                + "\nNo further approval is needed.",
                "tool_calls": [],
                "model": "gpt-4o-mini-2024-07-18",
            }
        same = (
            replayed["text"] == recorded["text"]
            and replayed["tool_calls"] == recorded["tool_calls"]
        )
        outcomes.append(
            {
                "span_id": r["span_id"],
                "trace_id": r["trace_id"],
                "started_at": r["started_at"],
                "agent_name": r["agent_name"],
                "api": r["api"],
                "recorded_model": r["request_model"],
                "recorded_answered_model": r["response_model"],
                "replay_model": "gpt-4o-mini",
                "source": r["source"],
                "checks": r["checks"],
                "exact": r["exact"],
                "notes": r["notes"],
                "overrides": {"model": "gpt-4o-mini"},
                "recorded": recorded,
                "output_hash": r["output_hash"],
                "replayed": replayed,
                "diff": {
                    "same_tools": same or replayed["tool_calls"] == recorded["tool_calls"],
                    "same_arguments": same or replayed["tool_calls"] == recorded["tool_calls"],
                    "text_similarity": 1.0 if same else 0.82,
                    "token_jaccard": 1.0 if same else 0.74,
                },
                "error": "",
            }
        )
    report = {
        "run_id": uuid.uuid4().hex,
        "tenant": "ignored",
        "candidate_model": "gpt-4o-mini",
        "base_url": "http://candidate.invalid/v1",
        "filter": {"agent": agent},
        "outcomes": outcomes,
    }
    stored = httpx.post(f"{url}/api/v1/replays", json=report, headers=headers, timeout=30)
    stored.raise_for_status()
    return str(stored.json()["run_id"])
