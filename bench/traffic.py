"""Synthetic agent traffic as real OTLP: the span mix benchmarks (and tests) send.

One agent run = AGENT span, RETRIEVER span (4 documents of ~0.8 KB), LLM call
that chooses a tool (shared ~2 KB system prompt, ~0.5 KB question), TOOL span,
and a second LLM call that answers (~0.6 KB) — the shape of the demo agent, in
OpenInference attributes, as its instrumentors emit them.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

__all__ = ["SPANS_PER_RUN", "LLM_SPANS_PER_RUN", "requests", "add_run"]

SPANS_PER_RUN = 5
LLM_SPANS_PER_RUN = 2
_WORDS = ("ledger account accrual reversal policy approval threshold controller journal entry "
          "capitalised software amortisation quarter close reconciliation variance evidence "
          "segregation duties review materiality").split()
SYSTEM_PROMPT = "You are a finance-controls agent. " + " ".join(_WORDS * 12)  # ~2 KB, same for every run


def _text(rng: random.Random, n_chars: int) -> str:
    out: list[str] = []
    size = 0
    while size < n_chars:
        w = rng.choice(_WORDS)
        out.append(w)
        size += len(w) + 1
    return " ".join(out)


def _attrs(span: Span, attrs: dict[str, object]) -> None:
    for k, v in attrs.items():
        kv = span.attributes.add()
        kv.key = k
        if isinstance(v, bool):
            kv.value.bool_value = v
        elif isinstance(v, int):
            kv.value.int_value = v
        elif isinstance(v, float):
            kv.value.double_value = v
        else:
            kv.value.string_value = str(v)


def add_run(scope_spans, rng: random.Random, run: int, start_ns: int, *, model: str = "gpt-4o",
            principal: str = "alice@acme.example") -> None:
    """Append the five spans of one agent run to an OTLP ScopeSpans."""
    trace_id = rng.getrandbits(128).to_bytes(16, "big")
    ids = [rng.getrandbits(64).to_bytes(8, "big") for _ in range(SPANS_PER_RUN)]
    agent, retr, llm1, tool, llm2 = ids
    question = _text(rng, 500)
    docs = [(f"POL-{rng.randrange(100)}", _text(rng, 800), round(rng.random(), 3)) for _ in range(4)]
    entry = f"JE-{rng.randrange(10_000)}"
    args = json.dumps({"entry_id": entry})
    result = json.dumps({"entry_id": entry, "amount": rng.randrange(10**7), "memo": _text(rng, 300)})
    answer = "ESCALATE: " + _text(rng, 600)
    common = {"session.id": f"s-{run % 500}", "user.id": f"u-{run % 50}", "agentledger.principal.id": principal}
    t = start_ns

    def span(sid: bytes, parent: bytes | None, name: str, dur_ms: float, attrs: dict[str, object]) -> None:
        nonlocal t
        s = scope_spans.spans.add()
        s.trace_id, s.span_id, s.name = trace_id, sid, name
        if parent:
            s.parent_span_id = parent
        s.kind = Span.SPAN_KIND_INTERNAL
        s.start_time_unix_nano = t
        s.end_time_unix_nano = t + int(dur_ms * 1e6)
        s.status.code = 1
        _attrs(s, {**common, **attrs})

    span(retr, agent, "retrieve_policies", 12, {
        "openinference.span.kind": "RETRIEVER", "input.value": question,
        **{f"retrieval.documents.{i}.document.{k}": v for i, d in enumerate(docs)
           for k, v in (("id", d[0]), ("content", d[1]), ("score", d[2]))},
    })
    t += 13_000_000
    msgs1 = [("system", SYSTEM_PROMPT), ("user", question)]
    span(llm1, agent, "ChatCompletion", 850, {
        "openinference.span.kind": "LLM", "llm.model_name": f"{model}-2024-08-06", "llm.provider": "openai",
        "llm.system": "openai", "llm.invocation_parameters": json.dumps({"model": model, "temperature": 0}),
        **{f"llm.input_messages.{i}.message.{k}": v for i, (r, c) in enumerate(msgs1) for k, v in (("role", r), ("content", c))},
        "llm.output_messages.0.message.role": "assistant",
        "llm.output_messages.0.message.tool_calls.0.tool_call.id": f"call_{run}",
        "llm.output_messages.0.message.tool_calls.0.tool_call.function.name": "lookup_journal_entry",
        "llm.output_messages.0.message.tool_calls.0.tool_call.function.arguments": args,
        "llm.token_count.prompt": 700 + rng.randrange(200), "llm.token_count.completion": 20,
        "llm.token_count.total": 900, "llm.token_count.prompt_details.cache_read": 512,
    })
    t += 851_000_000
    span(tool, agent, "lookup_journal_entry", 30, {
        "openinference.span.kind": "TOOL", "tool.name": "lookup_journal_entry", "input.value": args,
        "output.value": result,
    })
    t += 31_000_000
    span(llm2, agent, "ChatCompletion", 1400, {
        "openinference.span.kind": "LLM", "llm.model_name": f"{model}-2024-08-06", "llm.provider": "openai",
        "llm.system": "openai", "llm.invocation_parameters": json.dumps({"model": model, "temperature": 0}),
        **{f"llm.input_messages.{i}.message.{k}": v for i, (r, c) in enumerate(msgs1) for k, v in (("role", r), ("content", c))},
        "llm.input_messages.2.message.role": "assistant",
        "llm.input_messages.2.message.tool_calls.0.tool_call.id": f"call_{run}",
        "llm.input_messages.2.message.tool_calls.0.tool_call.function.name": "lookup_journal_entry",
        "llm.input_messages.2.message.tool_calls.0.tool_call.function.arguments": args,
        "llm.input_messages.3.message.role": "tool", "llm.input_messages.3.message.content": result,
        "llm.input_messages.3.message.tool_call_id": f"call_{run}",
        "llm.output_messages.0.message.role": "assistant", "llm.output_messages.0.message.content": answer,
        "llm.token_count.prompt": 1100 + rng.randrange(200), "llm.token_count.completion": 150,
        "llm.token_count.total": 1300,
    })
    t += 1_401_000_000
    span(agent, None, "finance-controls-agent", t - start_ns, {
        "openinference.span.kind": "AGENT", "agent.name": "finance-controls-agent", "input.value": question,
        "output.value": answer,
    })
    t = start_ns


def requests(n_runs: int, runs_per_request: int = 100, seed: int = 7,
             start_ns: int = 1_790_000_000_000_000_000) -> Iterator[ExportTraceServiceRequest]:
    """OTLP requests holding ``n_runs`` agent runs, ``runs_per_request`` each."""
    rng = random.Random(seed)
    run = 0
    while run < n_runs:
        req = ExportTraceServiceRequest()
        rs = req.resource_spans.add()
        for k, v in (("service.name", "finance-controls"), ("telemetry.sdk.language", "python")):
            kv = rs.resource.attributes.add()
            kv.key, kv.value.string_value = k, v
        scope = rs.scope_spans.add()
        scope.scope.name = "openinference.instrumentation.openai"
        for _ in range(min(runs_per_request, n_runs - run)):
            add_run(scope, rng, run, start_ns + run * 3_000_000_000)
            run += 1
        yield req
