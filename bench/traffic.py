"""Synthetic agent traffic as real OTLP: the span mix benchmarks (and tests) send.

One agent run = AGENT span, RETRIEVER span, LLM call that chooses a tool, TOOL
span, and a second LLM call that answers — the shape of the demo agent, in
OpenInference attributes, as its instrumentors emit them. Two text mixes:

- ``LIGHT`` (the default of ``requests``, which tests rely on): a ~2 KB system
  prompt shared by every run, 4 documents of ~0.8 KB, a ~0.5 KB question, a
  ~0.6 KB answer, all from a 22-word vocabulary: ~1.6 KB of text per span, most
  of it repeated, so content de-duplication and compression flatter the store.
- ``REALISTIC`` (the default of ``bench/ingest.py``): every text unique to its
  run (the system prompt too), drawn from a 4,096-word Zipf vocabulary so that it
  compresses like prose, 3 documents of ~2 KB, a ~0.6 KB question, a ~1.2 KB tool
  result and a ~1.5 KB answer: about 4 KB of text per span on average, the load
  real agents send.
"""

from __future__ import annotations

import itertools
import json
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

__all__ = ["SPANS_PER_RUN", "LLM_SPANS_PER_RUN", "LIGHT", "REALISTIC", "Mix", "requests", "add_run"]

SPANS_PER_RUN = 5
LLM_SPANS_PER_RUN = 2
_WORDS = (
    "ledger account accrual reversal policy approval threshold controller journal entry "
    "capitalised software amortisation quarter close reconciliation variance evidence "
    "segregation duties review materiality"
).split()
SYSTEM_PROMPT = "You are a finance-controls agent. " + " ".join(
    _WORDS * 12
)  # ~2 KB, same for every run


@dataclass(frozen=True)
class Mix:
    """How much text a run carries and how much of it repeats (see the module docstring)."""

    name: str
    unique_system_prompt: bool
    documents: int
    document_chars: int
    question_chars: int
    result_chars: int
    answer_chars: int
    vocabulary: Sequence[str]
    weights: Sequence[float] | None = None  # cumulative, for ``random.choices``


def _zipf_vocabulary(size: int, seed: int = 11) -> tuple[list[str], list[float]]:
    rng = random.Random(seed)
    letters = "etaoinshrdlcumwfgypbvkjxqz"
    words = [
        "".join(rng.choice(letters[: 8 + rng.randrange(18)]) for _ in range(2 + rng.randrange(9)))
        for _ in range(size)
    ]
    return words, list(itertools.accumulate(1.0 / (rank + 1) for rank in range(size)))


LIGHT = Mix("light", False, 4, 800, 500, 300, 600, _WORDS)
_VOCABULARY, _CUMULATIVE = _zipf_vocabulary(4096)
REALISTIC = Mix("realistic", True, 3, 2000, 600, 1200, 1500, _VOCABULARY, _CUMULATIVE)


def _text(rng: random.Random, n_chars: int, mix: Mix = LIGHT) -> str:
    out: list[str] = []
    size = 0
    while size < n_chars:
        if mix.weights is None:
            words = [rng.choice(mix.vocabulary)]
        else:
            words = rng.choices(mix.vocabulary, cum_weights=mix.weights, k=16)
        for w in words:
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


def add_run(
    scope_spans,
    rng: random.Random,
    run: int,
    start_ns: int,
    *,
    model: str = "gpt-4o",
    principal: str = "alice@acme.example",
    agent: str = "finance-controls-agent",
    tools: Sequence[str] = ("lookup_journal_entry",),
    question: str | None = None,
    provider: str = "openai",
    token_scale: float = 1.0,
    latency_scale: float = 1.0,
    latency_jitter: float = 0.0,
    tool_error: str | None = None,
    llm_error: str | None = None,
    mix: Mix = LIGHT,
) -> str:
    """Append the spans of one agent run to an OTLP ScopeSpans; return its trace id (hex).

    With the defaults: the five spans described in the module docstring. The
    keyword arguments vary the run for analytics tests: ``tools`` (one LLM
    call choosing each tool, then its TOOL span, then the answering call),
    the user ``question``, ``token_scale`` (prompt tokens), ``latency_scale``
    and ``latency_jitter`` (log-normal sigma) of the LLM calls, and an error
    status on the last TOOL span (``tool_error``) or the answering LLM span
    (``llm_error``); ``mix`` sets the sizes and repetition of the texts.
    """
    trace_id = rng.getrandbits(128).to_bytes(16, "big")
    ids = [rng.getrandbits(64).to_bytes(8, "big") for _ in range(3 + 2 * len(tools))]
    agent_id, retr, final = ids[0], ids[1], ids[-1]
    steps = [(ids[2 + 2 * i], ids[3 + 2 * i]) for i in range(len(tools))]
    if question is None:
        question = _text(rng, mix.question_chars, mix)
    docs = [
        (f"POL-{rng.randrange(100)}", _text(rng, mix.document_chars, mix), round(rng.random(), 3))
        for _ in range(mix.documents)
    ]
    system_prompt = (
        f"You are finance-controls agent {run}. " + _text(rng, 2000, mix)
        if mix.unique_system_prompt
        else SYSTEM_PROMPT
    )
    calls = []
    for _ in tools:
        entry = f"JE-{rng.randrange(10_000)}"
        args = json.dumps({"entry_id": entry})
        result = json.dumps(
            {
                "entry_id": entry,
                "amount": rng.randrange(10**7),
                "memo": _text(rng, mix.result_chars, mix),
            }
        )
        calls.append((args, result))
    answer = "ESCALATE: " + _text(rng, mix.answer_chars, mix)
    common = {
        "session.id": f"s-{run % 500}",
        "user.id": f"u-{run % 50}",
        "agentledger.principal.id": principal,
    }
    t = start_ns

    def span(
        sid: bytes,
        parent: bytes | None,
        name: str,
        dur_ms: float,
        attrs: dict[str, object],
        error: str | None = None,
        start: int | None = None,
    ) -> None:
        nonlocal t
        s = scope_spans.spans.add()
        s.trace_id, s.span_id, s.name = trace_id, sid, name
        if parent:
            s.parent_span_id = parent
        s.kind = Span.SPAN_KIND_INTERNAL
        s.start_time_unix_nano = t if start is None else start
        s.end_time_unix_nano = s.start_time_unix_nano + int(dur_ms * 1e6)
        s.status.code = 1
        if error is not None:
            s.status.code, s.status.message = 2, error
        _attrs(s, {**common, **attrs})

    def llm_ms(base: float) -> float:
        scale = latency_scale * (
            rng.lognormvariate(0.0, latency_jitter) if latency_jitter > 0 else 1.0
        )
        return base * scale if scale != 1.0 else base

    span(
        retr,
        agent_id,
        "retrieve_policies",
        12,
        {
            "openinference.span.kind": "RETRIEVER",
            "input.value": question,
            **{
                f"retrieval.documents.{i}.document.{k}": v
                for i, d in enumerate(docs)
                for k, v in (("id", d[0]), ("content", d[1]), ("score", d[2]))
            },
        },
    )
    t += 13_000_000
    msgs1 = [("system", system_prompt), ("user", question)]
    llm_common = {
        "llm.model_name": f"{model}-2024-08-06",
        "llm.provider": provider,
        "llm.system": provider,
        "llm.invocation_parameters": json.dumps({"model": model, "temperature": 0}),
    }
    history: dict[str, object] = {}
    for i, (tool_name, (llm_id, tool_id), (args, result)) in enumerate(zip(tools, steps, calls)):
        call_id = f"call_{run}" if i == 0 else f"call_{run}_{i}"
        prompt = 700 + 400 * i + rng.randrange(200)
        dur = llm_ms(850)
        span(
            llm_id,
            agent_id,
            "ChatCompletion",
            dur,
            {
                "openinference.span.kind": "LLM",
                **llm_common,
                **{
                    f"llm.input_messages.{j}.message.{k}": v
                    for j, (r, c) in enumerate(msgs1)
                    for k, v in (("role", r), ("content", c))
                },
                **history,
                "llm.output_messages.0.message.role": "assistant",
                "llm.output_messages.0.message.tool_calls.0.tool_call.id": call_id,
                "llm.output_messages.0.message.tool_calls.0.tool_call.function.name": tool_name,
                "llm.output_messages.0.message.tool_calls.0.tool_call.function.arguments": args,
                "llm.token_count.prompt": int(prompt * token_scale)
                if token_scale != 1.0
                else prompt,
                "llm.token_count.completion": 20,
                "llm.token_count.total": 900,
                "llm.token_count.prompt_details.cache_read": 512,
            },
        )
        t += int((dur + 1) * 1e6) if dur != 850 else 851_000_000
        last_tool = i == len(tools) - 1
        span(
            tool_id,
            agent_id,
            tool_name,
            30,
            {
                "openinference.span.kind": "TOOL",
                "tool.name": tool_name,
                "input.value": args,
                "output.value": result,
            },
            error=tool_error if last_tool else None,
        )
        t += 31_000_000
        base = 2 + 2 * i
        history.update(
            {
                f"llm.input_messages.{base}.message.role": "assistant",
                f"llm.input_messages.{base}.message.tool_calls.0.tool_call.id": call_id,
                f"llm.input_messages.{base}.message.tool_calls.0.tool_call.function.name": tool_name,
                f"llm.input_messages.{base}.message.tool_calls.0.tool_call.function.arguments": args,
                f"llm.input_messages.{base + 1}.message.role": "tool",
                f"llm.input_messages.{base + 1}.message.content": result,
                f"llm.input_messages.{base + 1}.message.tool_call_id": call_id,
            }
        )
    prompt = 1100 + rng.randrange(200)
    dur = llm_ms(1400)
    span(
        final,
        agent_id,
        "ChatCompletion",
        dur,
        {
            "openinference.span.kind": "LLM",
            **llm_common,
            **{
                f"llm.input_messages.{i}.message.{k}": v
                for i, (r, c) in enumerate(msgs1)
                for k, v in (("role", r), ("content", c))
            },
            **history,
            "llm.output_messages.0.message.role": "assistant",
            "llm.output_messages.0.message.content": answer,
            "llm.token_count.prompt": int(prompt * token_scale) if token_scale != 1.0 else prompt,
            "llm.token_count.completion": 150,
            "llm.token_count.total": 1300,
        },
        error=llm_error,
    )
    t += int((dur + 1) * 1e6) if dur != 1400 else 1_401_000_000
    span(
        agent_id,
        None,
        agent,
        (t - start_ns) / 1e6,
        start=start_ns,
        attrs={
            "openinference.span.kind": "AGENT",
            "agent.name": agent,
            "input.value": question,
            "output.value": answer,
        },
    )
    return trace_id.hex()


def requests(
    n_runs: int,
    runs_per_request: int = 100,
    seed: int = 7,
    start_ns: int = 1_790_000_000_000_000_000,
    mix: Mix = LIGHT,
) -> Iterator[ExportTraceServiceRequest]:
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
            add_run(scope, rng, run, start_ns + run * 3_000_000_000, mix=mix)
            run += 1
        yield req
