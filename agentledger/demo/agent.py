"""The sample agent that ``agentledger demo`` runs: a finance-controls reviewer.

It is written to be copied. Everything a real agent does is here, each step
recorded as an OpenInference span so AgentLedger can replay and audit it:

1. an AGENT span around the whole run (who asked, in which session, what was decided);
2. a RETRIEVER span for the policy search, with every document and its score;
3. LLM spans for each model call, made by ``OpenAIInstrumentor`` around the real
   ``openai`` SDK (prompt, tools offered, answered model, token counts);
4. a TOOL span for each tool the model asks for, with arguments and result;
5. optionally (``act``), what the agent does with its decision, inside the same run: in the
   two-agent demo a governed posting (:mod:`agentledger.demo.team`).

The model behind ``openai_base_url`` is normally the scripted provider of
:mod:`agentledger.demo.provider`, but any OpenAI-compatible endpoint works.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from openai import OpenAI
from openai.types.chat import ChatCompletionMessageFunctionToolCall
from openinference.instrumentation import get_attributes_from_context, using_attributes
from openinference.instrumentation.openai import OpenAIInstrumentor
from openinference.semconv.trace import (
    DocumentAttributes,
    OpenInferenceMimeTypeValues,
    OpenInferenceSpanKindValues,
    SpanAttributes,
)
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import Span, Status, StatusCode, Tracer
from opentelemetry.util.types import AttributeValue

from agentledger.demo.documents import (
    LOOKUP_JOURNAL_ENTRY,
    LOOKUP_JOURNAL_ENTRY_SCHEMA,
    RetrievedDocument,
    lookup_journal_entry,
    search_policies,
)

__all__ = [
    "AGENT_NAME",
    "DEFAULT_QUESTION",
    "DEFAULT_SESSION_ID",
    "DEFAULT_USER_ID",
    "MODEL",
    "SYSTEM_PROMPT",
    "AgentRun",
    "ToolCallRecord",
    "openai_instrumented",
    "retrieve_policies",
    "run_finance_agent",
]

logger = logging.getLogger(__name__)

AGENT_NAME = "finance-controls-agent"
MODEL = "gpt-4o"
DEFAULT_SESSION_ID = "demo-session-0001"
DEFAULT_USER_ID = "controller@acme-corp.example"
DEFAULT_QUESTION = (
    "Should we approve the USD 4,000,000 reclassification in journal entry JE-4471, "
    "moving capitalised software costs to R&D expense? Check it against our approval policies."
)
SYSTEM_PROMPT = (
    "You are a finance-controls agent. Decide whether a journal entry may be approved. "
    "Look up the entry before deciding. Start your answer with APPROVE or ESCALATE, "
    "then give the reason and cite the policy ids (e.g. FIN-7) you relied on."
)
TOOL_DESCRIPTION = "Fetch a journal entry from the ledger: amounts, accounts, preparer, approver."
TOOLS: list[dict[str, Any]] = [
    {
        "type": "function",
        "function": {
            "name": LOOKUP_JOURNAL_ENTRY,
            "description": TOOL_DESCRIPTION,
            "parameters": LOOKUP_JOURNAL_ENTRY_SCHEMA,
        },
    }
]
TOOL_FUNCTIONS: dict[str, Callable[..., dict[str, Any]]] = {
    LOOKUP_JOURNAL_ENTRY: lookup_journal_entry,
}

_KIND = SpanAttributes.OPENINFERENCE_SPAN_KIND
_JSON = OpenInferenceMimeTypeValues.JSON.value
_TEXT = OpenInferenceMimeTypeValues.TEXT.value


@dataclass(frozen=True)
class ToolCallRecord:
    """One tool call the model asked for, and what the tool returned."""

    call_id: str
    name: str
    arguments: dict[str, Any]
    result: dict[str, Any]


@dataclass(frozen=True)
class AgentRun:
    """What one run did, so callers (the CLI, tests) can find and check its trace."""

    trace_id: str
    """Hex (32 digits) id of the trace holding every span of the run."""
    session_id: str
    user_id: str
    question: str
    decision: str
    tool_calls: list[ToolCallRecord] = field(default_factory=list)
    documents: list[RetrievedDocument] = field(default_factory=list)
    models: list[str] = field(default_factory=list)
    """The model that answered each LLM call (the provider's name, not the one requested)."""

    @property
    def llm_calls(self) -> int:
        return len(self.models)

    @property
    def expected_span_count(self) -> int:
        """AGENT + RETRIEVER + one LLM span per model call + one TOOL span per tool call."""
        return 2 + self.llm_calls + len(self.tool_calls)

    @property
    def approved(self) -> bool:
        return self.decision.lstrip().upper().startswith("APPROVE")


def run_finance_agent(
    openai_base_url: str,
    tracer_provider: TracerProvider,
    *,
    session_id: str = DEFAULT_SESSION_ID,
    user_id: str = DEFAULT_USER_ID,
    question: str = DEFAULT_QUESTION,
    model: str = MODEL,
    api_key: str = "demo",
    max_turns: int = 4,
    act: Callable[[str], list[ToolCallRecord]] | None = None,
) -> AgentRun:
    """Run the agent once and return what it did; its spans go to ``tracer_provider``.

    ``act`` runs once the model has decided, still inside the run's AGENT span, so that the
    action the decision leads to belongs to the run that decided it (for the audit, the
    action's context is the run); what it returns is added to ``tool_calls``.

    The OpenAI instrumentation is switched on for the run and off afterwards,
    so the function can run several times in one process. If the application
    already instrumented OpenAI itself, that instrumentation is left alone
    (and the LLM spans go wherever it sends them).

    Spans are not flushed here: the caller owns the provider and its processors.
    """
    tracer = tracer_provider.get_tracer("agentledger.demo.agent")
    # using_attributes puts session and user in the context: the instrumentor
    # copies them onto the LLM spans, and _span onto ours.
    with (
        openai_instrumented(tracer_provider),
        using_attributes(session_id=session_id, user_id=user_id),
        OpenAI(base_url=openai_base_url, api_key=api_key) as client,
    ):
        run = _run(tracer, client, model, question, session_id, user_id, max_turns, act)
    logger.info("agent run %s decided: %.60s", run.trace_id, run.decision)
    return run


@contextmanager
def openai_instrumented(tracer_provider: TracerProvider) -> Iterator[None]:
    """OpenInference's OpenAI instrumentation on for the body and off afterwards, so an agent can
    run several times in one process; an instrumentation the application set up is left alone
    (and the LLM spans go wherever it sends them)."""
    instrumentor = OpenAIInstrumentor()
    owns_instrumentation = not instrumentor.is_instrumented_by_opentelemetry
    if owns_instrumentation:
        instrumentor.instrument(tracer_provider=tracer_provider)
    else:
        logger.warning("OpenAI already instrumented; LLM spans use the existing tracer provider")
    try:
        yield
    finally:
        if owns_instrumentation:
            instrumentor.uninstrument()


def _run(
    tracer: Tracer,
    client: OpenAI,
    model: str,
    question: str,
    session_id: str,
    user_id: str,
    max_turns: int,
    act: Callable[[str], list[ToolCallRecord]] | None = None,
) -> AgentRun:
    """The agent proper: retrieve, let the model call tools until it decides, then act."""
    agent_attributes: dict[str, AttributeValue] = {
        _KIND: OpenInferenceSpanKindValues.AGENT.value,
        SpanAttributes.AGENT_NAME: AGENT_NAME,
        SpanAttributes.INPUT_VALUE: question,
        SpanAttributes.INPUT_MIME_TYPE: _TEXT,
    }
    with _span(tracer, AGENT_NAME, agent_attributes) as agent_span:
        documents = retrieve_policies(tracer, question)
        messages: list[dict[str, Any]] = [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": _user_prompt(question, documents)},
        ]
        tool_calls: list[ToolCallRecord] = []
        models: list[str] = []
        for _ in range(max_turns):
            completion = client.chat.completions.create(
                model=model,
                messages=messages,  # type: ignore[arg-type]  # plain dicts, as users write them
                tools=TOOLS,  # type: ignore[arg-type]
                temperature=0,
            )
            models.append(completion.model)
            reply = completion.choices[0].message
            calls = [
                c
                for c in reply.tool_calls or ()
                if isinstance(c, ChatCompletionMessageFunctionToolCall)
            ]
            if not calls:
                decision = reply.content or ""
                break
            # Echo the assistant turn back, then answer each call with a tool turn.
            messages.append(
                {
                    "role": "assistant",
                    "content": reply.content,
                    "tool_calls": [c.model_dump(include={"id", "type", "function"}) for c in calls],
                }
            )
            for call in calls:
                record = call_tool(tracer, call.id, call.function.name, call.function.arguments)
                tool_calls.append(record)
                messages.append(
                    {"role": "tool", "tool_call_id": call.id, "content": json.dumps(record.result)}
                )
        else:
            raise RuntimeError(f"no decision after {max_turns} model calls")
        if act is not None:
            tool_calls.extend(act(decision))
        agent_span.set_attribute(SpanAttributes.OUTPUT_VALUE, decision)
        agent_span.set_attribute(SpanAttributes.OUTPUT_MIME_TYPE, _TEXT)
        trace_id = format(agent_span.get_span_context().trace_id, "032x")
    return AgentRun(
        trace_id=trace_id,
        session_id=session_id,
        user_id=user_id,
        question=question,
        decision=decision,
        tool_calls=tool_calls,
        documents=documents,
        models=models,
    )


def retrieve_policies(tracer: Tracer, query: str, top_k: int = 3) -> list[RetrievedDocument]:
    """Search the policy corpus inside a RETRIEVER span that lists each document found."""
    attributes: dict[str, AttributeValue] = {
        _KIND: OpenInferenceSpanKindValues.RETRIEVER.value,
        SpanAttributes.INPUT_VALUE: query,
        SpanAttributes.INPUT_MIME_TYPE: _TEXT,
    }
    with _span(tracer, "retrieve_policies", attributes) as span:
        found = search_policies(query, top_k=top_k)
        for i, hit in enumerate(found):
            prefix = f"{SpanAttributes.RETRIEVAL_DOCUMENTS}.{i}"
            metadata = {"title": hit.document.title, **hit.document.metadata}
            span.set_attribute(f"{prefix}.{DocumentAttributes.DOCUMENT_ID}", hit.document.id)
            span.set_attribute(
                f"{prefix}.{DocumentAttributes.DOCUMENT_CONTENT}", hit.document.content
            )
            span.set_attribute(f"{prefix}.{DocumentAttributes.DOCUMENT_SCORE}", hit.score)
            span.set_attribute(
                f"{prefix}.{DocumentAttributes.DOCUMENT_METADATA}", json.dumps(metadata)
            )
        return found


def call_tool(tracer: Tracer, call_id: str, name: str, arguments_json: str) -> ToolCallRecord:
    """Run the tool the model asked for inside a TOOL span with its schema, input and output.

    Bad arguments or an unknown tool become an error *result* the model can
    read, as most agent frameworks do, rather than an exception ending the run.
    """
    attributes: dict[str, AttributeValue] = {
        _KIND: OpenInferenceSpanKindValues.TOOL.value,
        SpanAttributes.TOOL_NAME: name,
        SpanAttributes.TOOL_ID: call_id,
        SpanAttributes.TOOL_DESCRIPTION: TOOL_DESCRIPTION,
        SpanAttributes.TOOL_PARAMETERS: json.dumps(LOOKUP_JOURNAL_ENTRY_SCHEMA),
        SpanAttributes.INPUT_VALUE: arguments_json,
        SpanAttributes.INPUT_MIME_TYPE: _JSON,
    }
    with _span(tracer, name, attributes) as span:
        try:
            arguments = json.loads(arguments_json or "{}")
            result = TOOL_FUNCTIONS[name](**arguments)
        except (KeyError, TypeError, ValueError) as exc:
            logger.warning("tool call %s(%s) failed: %s", name, arguments_json, exc)
            arguments, result = {}, {"error": f"{type(exc).__name__}: {exc}"}
        span.set_attribute(SpanAttributes.OUTPUT_VALUE, json.dumps(result))
        span.set_attribute(SpanAttributes.OUTPUT_MIME_TYPE, _JSON)
        return ToolCallRecord(call_id, name, arguments, result)


def _user_prompt(question: str, documents: list[RetrievedDocument]) -> str:
    excerpts = "\n".join(
        f"[{d.document.id}] {d.document.title}: {d.document.content}" for d in documents
    )
    return f"{question}\n\nRelevant policy excerpts:\n{excerpts or '(none found)'}"


@contextmanager
def _span(tracer: Tracer, name: str, attributes: dict[str, AttributeValue]) -> Iterator[Span]:
    """Start a current span carrying the context's session/user; mark it OK if the step succeeds.

    (On an exception the SDK records it and sets the ERROR status itself.)
    """
    with tracer.start_as_current_span(
        name, attributes={**dict(get_attributes_from_context()), **attributes}
    ) as span:
        yield span
        span.set_status(Status(StatusCode.OK))
