"""The planner of the two-agent demo: it reads the controller's request, decides which agent does
the work, and hands it over a queue.

Like the finance-controls agent it is written to be copied, and records the same OpenInference
spans: an AGENT span around its run, a RETRIEVER span for the policies it read, the LLM span of
its model call, and a TOOL span for the ``hand_off`` the model chose. Inside that TOOL span
``inject_handoff`` starts the ``handoff`` span the receiving agent's run links to, and writes its
context (trace, principal, delegation chain, the scopes handed on) into the queue message. So the
audit of whatever the receiver does later can list what the planner saw before it handed over.
"""

from __future__ import annotations

import json
import queue
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from openai import OpenAI
from openai.types.chat import ChatCompletionMessageFunctionToolCall
from openinference.instrumentation import using_attributes
from openinference.semconv.trace import (
    OpenInferenceMimeTypeValues,
    OpenInferenceSpanKindValues,
    SpanAttributes,
)
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.util.types import AttributeValue

from agentledger.demo.agent import (
    DEFAULT_QUESTION,
    DEFAULT_USER_ID,
    MODEL,
    _span,
    openai_instrumented,
    retrieve_policies,
)
from agentledger.demo.documents import HAND_OFF, HAND_OFF_SCHEMA, ROSTER, RetrievedDocument
from agentledger.instrumentation.handoff import inject_handoff
from agentledger.instrumentation.processors import as_agent

__all__ = [
    "PLANNER_NAME",
    "PLANNER_SESSION_ID",
    "PLANNER_SYSTEM_PROMPT",
    "PlannerRun",
    "WorkItem",
    "run_planner",
]

PLANNER_NAME = "planner-agent"
PLANNER_SESSION_ID = "demo-planning-0001"
"""The controller's conversation with the planner (the executor's work has a session of its own)."""
PLANNER_SYSTEM_PROMPT = (
    "You are the planning agent of the month-end close. Do not review entries yourself: decide "
    "which agent does the work and hand it over with the hand_off tool, with a one-sentence "
    "task. Agents: " + "; ".join(f"{name} {does}" for name, does in ROSTER.items()) + "."
)
HAND_OFF_DESCRIPTION = "Queue a work item for another agent; it runs under your principal."
_TOOLS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": HAND_OFF,
            "description": HAND_OFF_DESCRIPTION,
            "parameters": HAND_OFF_SCHEMA,
        },
    }
]
_KIND = SpanAttributes.OPENINFERENCE_SPAN_KIND
_TEXT = OpenInferenceMimeTypeValues.TEXT.value
_JSON = OpenInferenceMimeTypeValues.JSON.value


@dataclass(frozen=True)
class WorkItem:
    """One message on the demo's queue: the work, and the handoff's context to continue it."""

    to_agent: str
    entry_id: str
    task: str
    question: str
    """The controller's request as the planner received it."""
    handoff: dict[str, str] = field(repr=False)
    """The carrier ``inject_handoff`` wrote (W3C traceparent, tracestate, baggage)."""


@dataclass(frozen=True)
class PlannerRun:
    """What the planner did, so the demo and tests can find its trace and its handoff."""

    trace_id: str
    handoff_span_id: str
    """The ``handoff`` span the receiver's run links to (16 hex digits)."""
    item: WorkItem
    documents: list[RetrievedDocument]
    model: str
    """The model that answered the planner's call."""


def run_planner(
    openai_base_url: str,
    tracer_provider: TracerProvider,
    outbox: queue.Queue[WorkItem],
    *,
    question: str = DEFAULT_QUESTION,
    session_id: str = PLANNER_SESSION_ID,
    user_id: str = DEFAULT_USER_ID,
    handed_scopes: Iterable[str] | None = None,
    model: str = MODEL,
    api_key: str = "demo",
) -> PlannerRun:
    """Plan ``question`` once and put the work item on ``outbox``; spans go to
    ``tracer_provider``. ``handed_scopes``: the part of the principal's authority the receiver
    gets (``inject_handoff(scopes=)``: never more than the principal holds)."""
    tracer = tracer_provider.get_tracer("agentledger.demo.planner")
    attributes: dict[str, AttributeValue] = {
        _KIND: OpenInferenceSpanKindValues.AGENT.value,
        SpanAttributes.AGENT_NAME: PLANNER_NAME,
        SpanAttributes.INPUT_VALUE: question,
        SpanAttributes.INPUT_MIME_TYPE: _TEXT,
    }
    with (
        openai_instrumented(tracer_provider),
        as_agent(PLANNER_NAME),
        using_attributes(session_id=session_id, user_id=user_id),
        OpenAI(base_url=openai_base_url, api_key=api_key) as client,
        _span(tracer, PLANNER_NAME, attributes) as agent_span,
    ):
        documents = retrieve_policies(tracer, question)
        excerpts = "\n".join(f"[{d.id}] {d.document.title}" for d in documents)
        completion = client.chat.completions.create(
            model=model,
            messages=[
                {"role": "system", "content": PLANNER_SYSTEM_PROMPT},
                {"role": "user", "content": f"{question}\n\nPolicies that apply:\n{excerpts}"},
            ],
            tools=_TOOLS,  # type: ignore[arg-type]  # plain dicts, as users write them
            temperature=0,
        )
        calls = [
            c
            for c in completion.choices[0].message.tool_calls or ()
            if isinstance(c, ChatCompletionMessageFunctionToolCall) and c.function.name == HAND_OFF
        ]
        if not calls:
            raise RuntimeError(f"the planner's model handed nothing over: {completion}")
        call = calls[0]
        tool_attributes: dict[str, AttributeValue] = {
            _KIND: OpenInferenceSpanKindValues.TOOL.value,
            SpanAttributes.TOOL_NAME: HAND_OFF,
            SpanAttributes.TOOL_ID: call.id,
            SpanAttributes.TOOL_DESCRIPTION: HAND_OFF_DESCRIPTION,
            SpanAttributes.TOOL_PARAMETERS: json.dumps(HAND_OFF_SCHEMA),
            SpanAttributes.INPUT_VALUE: call.function.arguments,
            SpanAttributes.INPUT_MIME_TYPE: _JSON,
        }
        with _span(tracer, HAND_OFF, tool_attributes) as tool_span:
            arguments = json.loads(call.function.arguments)
            carrier: dict[str, str] = {}
            inject_handoff(
                carrier,
                to_agent=arguments["agent"],
                scopes=handed_scopes,
                tracer_provider=tracer_provider,
            )
            item = WorkItem(
                arguments["agent"], arguments["entry_id"], arguments["task"], question, carrier
            )
            outbox.put(item)
            queued = {"queued": True, "agent": item.to_agent, "entry_id": item.entry_id}
            tool_span.set_attribute(SpanAttributes.OUTPUT_VALUE, json.dumps(queued))
            tool_span.set_attribute(SpanAttributes.OUTPUT_MIME_TYPE, _JSON)
        summary = f"Handed {item.entry_id} to {item.to_agent}: {item.task}"
        agent_span.set_attribute(SpanAttributes.OUTPUT_VALUE, summary)
        agent_span.set_attribute(SpanAttributes.OUTPUT_MIME_TYPE, _TEXT)
        trace_id = format(agent_span.get_span_context().trace_id, "032x")
    return PlannerRun(
        trace_id=trace_id,
        handoff_span_id=_traceparent_span(carrier),
        item=item,
        documents=documents,
        model=completion.model,
    )


def _traceparent_span(carrier: dict[str, str]) -> str:
    """The sending span's id from a W3C ``traceparent`` (version-trace-span-flags)."""
    parts = carrier.get("traceparent", "").split("-")
    return parts[2] if len(parts) == 4 else ""
