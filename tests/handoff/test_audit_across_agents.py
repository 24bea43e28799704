"""The audit of an action taken by agent B lists what B saw and what the agents upstream saw and
passed on, each item with its agent, span, time and the delegation step it came through."""

from __future__ import annotations

import time
from typing import Any

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

from agentledger.instrumentation import acting_for, as_agent, inject_handoff, receive_handoff
from agentledger.pipeline.normalize import OtlpNormalizer, SourcePosition
from agentledger.pipeline.services import reads
from agentledger.pipeline.services.audit import to_html, to_markdown
from agentledger.pipeline.store.writer import StoreWriter

POLICY = "Entries above EUR 10,000 need a second approver (FIN-7)."


def _span(recorded, name: str, attrs: dict[str, Any]) -> None:
    with recorded.tracer.start_as_current_span(name, attributes=attrs):
        pass


def _store(store, spans: list[Any]) -> None:
    batch = OtlpNormalizer().normalize(
        [(encode_spans(spans), SourcePosition("acme", time.time_ns(), "t", 0, 1))]
    )
    StoreWriter(store).write(batch, f"audit-{time.time_ns()}")


def test_the_executors_posting_shows_what_the_planner_saw(recorded, store) -> None:
    with acting_for("alice@acme.example", role="controller"), as_agent("planner"):
        with recorded.tracer.start_as_current_span(
            "plan", attributes={"openinference.span.kind": "AGENT"}
        ):
            _span(
                recorded,
                "retrieve_policies",
                {
                    "openinference.span.kind": "RETRIEVER",
                    "input.value": "approval thresholds",
                    "retrieval.documents.0.document.id": "FIN-7",
                    "retrieval.documents.0.document.content": POLICY,
                },
            )
            _span(
                recorded,
                "ChatCompletion",
                {
                    "openinference.span.kind": "LLM",
                    "llm.model_name": "gpt-4o-2024-08-06",
                    "llm.input_messages.0.message.role": "user",
                    "llm.input_messages.0.message.content": "Plan the posting of JE-4471",
                    "llm.output_messages.0.message.role": "assistant",
                    "llm.output_messages.0.message.content": "Hand JE-4471 to the executor",
                },
            )
            carrier = inject_handoff({}, to_agent="executor", tracer_provider=recorded.provider)
    with receive_handoff(carrier, agent_name="executor", tracer_provider=recorded.provider):
        _span(
            recorded,
            "post_journal_entry",
            {
                "openinference.span.kind": "TOOL",
                "tool.name": "post_journal_entry",
                "input.value": '{"entry_id": "JE-4471"}',
                "output.value": '{"posted": true}',
            },
        )
    _store(store, recorded.spans())
    posting = recorded.named("post_journal_entry")
    span_id = format(posting.context.span_id, "016x")

    report = reads.audit(store, "acme", span_id)
    (action,) = report.actions
    assert action.action.name == "post_journal_entry"
    assert action.llm_calls == [] and action.documents == []  # B itself saw nothing earlier
    (hop,) = action.upstream
    assert hop.delegation_step == "planner -> executor" and hop.sender_recorded
    assert hop.principal_id == "alice@acme.example"
    assert hop.trace_id == format(recorded.named("plan").context.trace_id, "032x")
    assert hop.trace_id != report.trace_id  # a queue handoff: the planner's own trace
    (document,) = hop.documents
    assert document.content == POLICY and document.verified
    assert document.model_extra["agent"] == "planner"
    assert document.model_extra["delegation_step"] == "planner -> executor"
    (llm,) = hop.llm_calls
    assert llm.model_extra["agent"] == "planner"
    assert "Plan the posting of JE-4471" in str(llm.messages)
    assert hop.integrity is not None and hop.integrity.changed == []

    markdown = to_markdown(report.model_dump())
    assert "What upstream agents saw and handed on" in markdown
    assert "`planner -> executor`" in markdown and POLICY in markdown
    assert "planner -&gt; executor" in to_html(report.model_dump())


def test_a_sender_whose_spans_never_arrived_is_named_not_invented(recorded, store) -> None:
    with acting_for("bob@acme.example"), as_agent("planner"):
        carrier = inject_handoff({}, to_agent="executor", tracer_provider=recorded.provider)
    with receive_handoff(carrier, agent_name="executor", tracer_provider=recorded.provider):
        _span(recorded, "post", {"openinference.span.kind": "TOOL", "tool.name": "post"})
    _store(store, [s for s in recorded.spans() if not s.name.startswith("handoff")])
    (action,) = reads.audit(
        store, "acme", format(recorded.named("post").context.span_id, "016x")
    ).actions
    (hop,) = action.upstream
    assert not hop.sender_recorded and hop.from_agent == "planner" and hop.llm_calls == []
