"""The benchmark's harness, run inside each contender's own environment (one process per run).

Kept apart from ``instrumentation_overhead.py`` (which orchestrates, counts
and reports) because it is executed by the peers' interpreters too: it
imports only the standard library at module level, and each contender's
packages inside the functions that need them. Protocol: one JSON line on
stdout with the figures (see ``worker``, ``burst`` and ``breakdown``).

    python bench/overhead_worker.py CONTENDER ENDPOINT CALLS WARMUP BURST
    python bench/overhead_worker.py breakdown
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

MESSAGES = [
    {
        "role": "system",
        "content": "You are a finance-controls agent. Decide whether a journal entry may be "
        "approved. Look up the entry before deciding; cite the policy ids you used.",
    },
    {
        "role": "user",
        "content": "Should we approve the USD 4,000,000 reclassification in journal entry JE-4471, "
        "moving capitalised software costs to R&D expense? Reach me at cfo@acme.example.",
    },
]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "lookup_journal_entry",
            "description": "Fetch a journal entry from the ledger.",
            "parameters": {
                "type": "object",
                "properties": {"entry_id": {"type": "string"}},
                "required": ["entry_id"],
            },
        },
    }
]
RESPONSE = {
    "id": "chatcmpl-bench",
    "object": "chat.completion",
    "created": 1700000000,
    "model": "gpt-4o-2024-08-06",
    "system_fingerprint": "fp_bench",
    "service_tier": "default",
    "choices": [
        {
            "index": 0,
            "finish_reason": "tool_calls",
            "logprobs": None,
            "message": {
                "role": "assistant",
                "content": None,
                "refusal": None,
                "tool_calls": [
                    {
                        "id": "call_JE4471",
                        "type": "function",
                        "function": {
                            "name": "lookup_journal_entry",
                            "arguments": '{"entry_id": "JE-4471"}',
                        },
                    }
                ],
            },
        }
    ],
    "usage": {
        "prompt_tokens": 142,
        "completion_tokens": 24,
        "total_tokens": 166,
        "prompt_tokens_details": {"cached_tokens": 64, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 6,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    },
}


def _client() -> Any:
    import openai

    if int(openai.__version__.split(".")[0]) >= 3:
        import httpx2 as httpx  # openai 3.x is built on httpx2
    else:
        import httpx
    body = json.dumps(RESPONSE).encode()

    def handler(request: Any) -> Any:
        return httpx.Response(200, content=body, headers={"content-type": "application/json"})

    return openai.OpenAI(
        api_key="bench",
        base_url="http://bench.invalid/v1",
        max_retries=0,
        http_client=httpx.Client(transport=httpx.MockTransport(handler)),
    )


def _time_calls(client: Any, n: int) -> tuple[list[int], list[int]]:
    wall, cpu = [], []
    create = client.chat.completions.create
    clock, cpu_clock = time.perf_counter_ns, time.thread_time_ns
    for _ in range(n):
        t0, c0 = clock(), cpu_clock()
        create(model="gpt-4o", messages=MESSAGES, tools=TOOLS, temperature=0)
        cpu.append(cpu_clock() - c0)
        wall.append(clock() - t0)
    return wall, cpu


def _pct(values: list[int], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))] / 1000.0


def _instrument(name: str, endpoint: str) -> Any:
    """Turn the contender on, exporting in batches to ``endpoint``; returns a flush function."""
    traces = endpoint.rstrip("/") + "/v1/traces"
    if name.startswith("agentledger"):
        import agentledger

        agentledger.instrument(
            endpoint=endpoint,
            service_name="bench",
            instrumentors=["openai"],
            redact="all" if name == "agentledger+redact" else None,
        )
        return agentledger.flush
    if name == "openinference":
        from openinference.instrumentation.openai import OpenAIInstrumentor
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        tp = TracerProvider()
        tp.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=traces)))
        OpenAIInstrumentor().instrument(tracer_provider=tp)
        return tp.force_flush
    if name == "openllmetry":
        from traceloop.sdk import Traceloop
        from traceloop.sdk.instruments import Instruments

        Traceloop.init(
            app_name="bench",
            api_endpoint=endpoint,
            disable_batch=False,
            telemetry_enabled=False,
            instruments={Instruments.OPENAI},
        )
        from opentelemetry import trace

        return trace.get_tracer_provider().force_flush  # type: ignore[attr-defined]
    if name == "openlit":
        import tempfile

        import openlit

        prices = (
            Path(tempfile.mkdtemp()) / "pricing.json"
        )  # OpenLIT fetches prices from the internet otherwise
        prices.write_text(
            json.dumps({"chat": {"gpt-4o": {"promptPrice": 0.0025, "completionPrice": 0.01}}})
        )
        openlit.init(
            otlp_endpoint=endpoint,
            application_name="bench",
            disable_batch=False,
            disable_metrics=True,
            capture_message_content=True,
            pricing_json=str(prices),
        )
        from opentelemetry import trace

        return trace.get_tracer_provider().force_flush  # type: ignore[attr-defined]
    raise SystemExit(f"unknown contender {name}")


_MISSING = object()
_PATCHED_LIBRARIES = ("openai", "httpx", "httpx2", "httpcore", "httpcore2")


def _patch_points() -> dict[tuple[Any, str], Any]:
    """Every function attribute of the OpenAI SDK's and its HTTP stack's modules and classes."""
    points: dict[tuple[Any, str], Any] = {}
    for mod_name, mod in list(sys.modules.items()):
        if mod is None or mod_name.split(".")[0] not in _PATCHED_LIBRARIES:
            continue
        for attr, obj in list(vars(mod).items()):
            if isinstance(obj, type) and getattr(obj, "__module__", None) == mod_name:
                for key, value in list(vars(obj).items()):
                    points[(obj, key)] = value
            elif callable(obj):
                points[(mod, attr)] = obj
    return points


class _Toggle:
    """Switches a library's instrumentation off and on by swapping the attributes it patched.

    Every contender instruments by replacing functions on the SDK's classes
    (wrapt or plain assignment); comparing the SDK before and after
    instrumenting finds them. Alternating bare and instrumented blocks in one
    process cancels the drift of a shared machine's load.
    """

    def __init__(self, before: dict[tuple[Any, str], Any]) -> None:
        owners = {owner for owner, _ in before}
        self.changes = [
            (owner, key, before.get((owner, key), _MISSING), value)
            for (owner, key), value in _patch_points().items()
            # modules and classes imported only by the instrumentation are not patches
            if owner in owners
            and not key.startswith("__")
            and before.get((owner, key), _MISSING) is not value
        ]

    def set(self, on: bool) -> None:
        for owner, key, old, new in self.changes:
            value = new if on else old
            if value is _MISSING:
                delattr(owner, key)
            else:
                setattr(owner, key, value)


def worker(name: str, endpoint: str, calls: int, warmup: int, blocks: int = 10) -> dict[str, Any]:
    import gc

    client = _client()
    _time_calls(client, warmup)
    before = _patch_points()
    flush = _instrument(name, endpoint)
    toggle = _Toggle(before)
    if not toggle.changes:
        raise SystemExit(f"{name}: instrumenting changed nothing in the OpenAI SDK")
    _time_calls(client, warmup)
    flush()
    gc.collect()
    per_block = max(1, calls // blocks)
    proc0 = time.process_time_ns()
    bare_wall: list[int] = []
    bare_cpu: list[int] = []
    wall: list[int] = []
    cpu: list[int] = []
    added: list[float] = []
    for _ in range(blocks):
        toggle.set(False)
        bw, bc = _time_calls(client, per_block)
        toggle.set(True)
        iw, ic = _time_calls(client, per_block)
        added.append(_pct(iw, 0.5) - _pct(bw, 0.5))
        bare_wall += bw
        bare_cpu += bc
        wall += iw
        cpu += ic
    t0 = time.perf_counter()
    flush()
    # the process's CPU over the blocks and the final flush, less the bare calls' own: what the
    # instrumented calls cost every thread (export work of one block may run in the next)
    proc_cpu = time.process_time_ns() - proc0 - sum(bare_cpu)
    return {
        "proc_cpu_per_call": proc_cpu / len(wall) / 1000.0,
        "bare_proc_cpu_per_call": sum(bare_cpu) / len(bare_wall) / 1000.0,
        "spans_expected": float(warmup + len(wall)),
        "bare_p50": _pct(bare_wall, 0.5),
        "bare_p99": _pct(bare_wall, 0.99),
        "p50": _pct(wall, 0.5),
        "p99": _pct(wall, 0.99),
        "bare_cpu_p50": _pct(bare_cpu, 0.5),
        "cpu_p50": _pct(cpu, 0.5),
        "added_p50_blocks": statistics.median(added),
        "patched": len(toggle.changes),
        "final_flush_ms": (time.perf_counter() - t0) * 1000,
    }


def burst(name: str, endpoint: str, calls: int) -> dict[str, Any]:
    """``calls`` chat calls as fast as they go, then a flush: what arrives, and what it cost."""
    import threading

    client = _client()
    flush = _instrument(name, endpoint)
    create = client.chat.completions.create
    cpu0, t0 = time.process_time_ns(), time.perf_counter()
    for _ in range(calls):
        create(model="gpt-4o", messages=MESSAGES, tools=TOOLS, temperature=0)
    calls_s = time.perf_counter() - t0
    flush()
    out: dict[str, Any] = {
        "calls_s": calls_s,
        "total_s": time.perf_counter() - t0,
        "proc_cpu_per_call": (time.process_time_ns() - cpu0) / calls / 1000.0,
        "spans_expected": float(calls),
    }
    for t in threading.enumerate():  # the export thread's CPU (Linux: a thread's own clock)
        if t.name == "agentledger-export" and t.ident is not None:
            clock = time.pthread_getcpuclockid(t.ident)
            out["export_thread_cpu_s"] = time.clock_gettime_ns(clock) / 1e9
    if name.startswith("agentledger"):
        from agentledger.instrumentation import lifecycle

        state = lifecycle.instrumentation()
        queue = state.export_queue if state is not None else None
        if queue is not None:
            out.update(
                lost=queue.losses.total,
                caller_waits=queue.waited,
                built_on_caller=queue.built_on_caller,
                spilled=queue.spilled,
            )
    return out


def breakdown(repeat: int = 5, number: int = 2000) -> dict[str, float]:
    """Where AgentLedger's time goes, without the HTTP call (min over repeats, µs per call or span).

    Caller thread: the OpenAI wrapper's own work (request and response
    attributes, span start and end, the attribution processor, the batch
    queue). Export thread: the edge exporter's rewrite (with and without every
    redaction preset) and the OTLP protobuf encoding of the same span.
    """
    import timeit

    import openai
    from opentelemetry import context as context_api
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from agentledger.instrumentation._lean import LeanTracer
    from agentledger.instrumentation._openai import OpenAIChatWrapper
    from agentledger.instrumentation.capture import CaptureConfig
    from agentledger.instrumentation.exporter import SpanRewriter
    from agentledger.instrumentation.processors import AttributionProcessor, Switchboard
    from agentledger.instrumentation.redaction import RedactionPolicy

    def best(fn: Any) -> float:
        return min(timeit.repeat(fn, number=number, repeat=repeat)) / number * 1e6

    completion = openai.types.chat.ChatCompletion.model_validate(RESPONSE)
    options = openai._models.FinalRequestOptions(
        method="post",
        url="/chat/completions",
        json_data={"model": "gpt-4o", "messages": MESSAGES, "tools": TOOLS, "temperature": 0},
    )
    client = openai.OpenAI(api_key="bench", base_url="http://bench.invalid/v1")
    memory = InMemorySpanExporter()
    tp = TracerProvider()
    board = Switchboard()  # as instrument() wires it: one switchboard, the lean tracer over it
    board.set(
        (
            AttributionProcessor("bench-agent"),
            BatchSpanProcessor(memory, max_queue_size=1_000_000, schedule_delay_millis=3_600_000),
        )
    )
    tp.add_span_processor(board)
    wrapper = OpenAIChatWrapper(LeanTracer(tp.get_tracer("agentledger.instrumentation"), board))
    wrapper.install()
    chat = openai.types.chat.ChatCompletion

    def one() -> None:
        call, token = wrapper._start(client, (chat, options))  # type: ignore[misc]
        context_api.detach(token)
        wrapper._result(call, completion, None)  # type: ignore[arg-type]

    out = {"caller_wrapper_us": best(one)}
    wrapper.uninstall()
    tp.force_flush()
    span = memory.get_finished_spans()[-1]
    plain = SpanRewriter(CaptureConfig(), None)
    redacting = SpanRewriter(CaptureConfig(), RedactionPolicy())
    out["export_rewrite_us"] = best(lambda: plain.span(span))
    out["export_redact_all_presets_us"] = best(lambda: redacting.span(span))
    out["export_otlp_encode_us"] = best(lambda: encode_spans([span]).SerializeToString())
    try:
        from agentledger.instrumentation.otlp import encode_request

        out["export_fast_encode_us"] = best(lambda: encode_request([span]))
    except ImportError:  # an older checkout
        pass
    out["span_attributes"] = float(len(span.attributes or {}))
    return out


def main(argv: list[str]) -> int:
    if argv[:1] == ["breakdown"]:
        print(json.dumps(breakdown()))
        return 0
    name, endpoint, calls, warmup, burst_calls = argv[0], argv[1], *map(int, argv[2:5])
    if burst_calls:
        print(json.dumps(burst(name, endpoint, burst_calls)))
    else:
        print(json.dumps(worker(name, endpoint, calls, warmup)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
