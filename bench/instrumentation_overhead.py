"""Caller-thread cost of instrumenting an OpenAI chat call: AgentLedger vs OpenInference,
OpenLLMetry and OpenLIT, on the same scripted calls, in one run.

Each contender runs in a virtual environment of its own (their dependencies
conflict: OpenLIT needs openai<3), created by this script under
``/tmp/agentledger-bench-venvs/<name>`` from PyPI on first use (pinned versions,
the recipes of ``tests/fixtures/peers/regenerate.sh``); AgentLedger is installed
there from this checkout. Each worker process:

1. builds an OpenAI client on an in-process ``httpx.MockTransport`` (no network)
   answering a canned chat completion (tool offered, usage, fingerprint);
2. turns the contender's instrumentation on, exporting in batches
   (``BatchSpanProcessor`` / the library's default batch mode) over OTLP/HTTP
   to a sink in another process on 127.0.0.1;
3. times ``--calls`` calls on the calling thread (``perf_counter_ns``, after a
   warm-up) in 10 alternating blocks, bare and instrumented: the functions the
   contender patched into the SDK are swapped out and back in (see
   ``_Toggle``), so load on a shared machine hits both alike;
4. reports p50 and p99 of both, the thread's CPU time per call, and the cost
   added per call: the median over blocks of (instrumented p50 - bare p50);
5. beside it, the whole process's CPU per instrumented call (every thread: the
   export thread's rewriting, encoding and sending included) and the number of
   spans the sink received against the number of instrumented calls (a span a
   contender dropped, e.g. ``Queue full, dropping Span``, shows here);
6. ``--burst N`` instead: N calls as fast as they go, then a flush; spans
   received, wall time, and the export thread's CPU (AgentLedger only).

Processes are repeated ``--repeats`` times, contenders interleaved, and the
median of each figure is reported (the spread is printed too).

Run: ``.venv/bin/python bench/instrumentation_overhead.py`` (``--quick`` for a
short run, ``--only agentledger,openinference`` to pick contenders).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
VENV_ROOT = Path(os.environ.get("AGENTLEDGER_BENCH_VENVS", "/tmp/agentledger-bench-venvs"))
OTEL_SDK = "1.45.1"

INSTALL: dict[str, list[list[str]]] = {
    "agentledger": [
        [
            str(REPO),
            "openai==3.54.0",
            "openinference-instrumentation-openai==0.1.66",
            "openinference-instrumentation==0.1.72",
            f"opentelemetry-sdk=={OTEL_SDK}",
            f"opentelemetry-exporter-otlp-proto-http=={OTEL_SDK}",
            "httpx",
        ]
    ],
    "openinference": [
        [
            "openinference-instrumentation-openai==0.1.66",
            "openinference-instrumentation==0.1.72",
            "openinference-semantic-conventions==0.1.42",
            f"opentelemetry-sdk=={OTEL_SDK}",
            f"opentelemetry-exporter-otlp-proto-http=={OTEL_SDK}",
            "openai==3.54.0",
            "httpx",
        ]
    ],
    "openllmetry": [
        ["--no-deps", "traceloop-sdk==0.62.4"],
        [
            "aiohttp<4,>=3.11.11",
            "colorama<0.5.0,>=0.4.6",
            "cuid<0.5,>=0.4",
            "deprecated<2,>=1.2.14",
            "jinja2<4,>=3.1.5",
            "opentelemetry-exporter-otlp-proto-grpc<2,>=1.38.0",
            "opentelemetry-semantic-conventions-ai==0.5.1",
            "pydantic>=1",
            "tenacity<10.0,>=8.2.3",
            "opentelemetry-instrumentation-openai==0.62.4",
            "opentelemetry-instrumentation-threading>=0.59b0",
            "opentelemetry-instrumentation-logging>=0.59b0",
            f"opentelemetry-sdk=={OTEL_SDK}",
            f"opentelemetry-exporter-otlp-proto-http=={OTEL_SDK}",
            "openai==3.54.0",
            "httpx",
        ],
    ],
    "openlit": [
        [
            "openlit==1.45.0",
            "openai==2.54.0",
            f"opentelemetry-sdk=={OTEL_SDK}",
            f"opentelemetry-exporter-otlp-proto-http=={OTEL_SDK}",
        ]
    ],
}
"""pip install steps per contender (OpenLLMetry: traceloop-sdk alone first, as pip backtracks otherwise)."""

CONTENDERS = ("agentledger", "openinference", "openllmetry", "openlit")
VARIANTS = {"agentledger+redact": "agentledger"}
"""Extra rows run in another contender's venv: AgentLedger with every redaction preset on."""

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


# --------------------------------------------------------------------------------- worker


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


# --------------------------------------------------------------------------------- orchestration


def _venv(name: str, log: Any) -> Path:
    root = VENV_ROOT / name
    python = root / "bin" / "python"
    marker = root / ".agentledger-bench-ready"
    if marker.exists():
        if name == "agentledger":  # keep the installed checkout current
            subprocess.run(
                [
                    str(python),
                    "-m",
                    "pip",
                    "install",
                    "-q",
                    "--no-deps",
                    "--force-reinstall",
                    str(REPO),
                ],
                check=True,
                stdout=log,
                stderr=log,
            )
        return python
    print(f"creating {root} (first run only)...", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(root)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "-U", "pip"], check=True, stdout=log, stderr=log
    )
    for step in INSTALL[name]:
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", *step], check=True, stdout=log, stderr=log
        )
    marker.write_text("ok\n")
    return python


SINK = """
import gzip, sys, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
count, lock = [0], threading.Lock()
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        if self.headers.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        req = ExportTraceServiceRequest()
        try:
            req.ParseFromString(body)
            n = sum(len(ss.spans) for rs in req.resource_spans for ss in rs.scope_spans)
        except Exception:
            n = 0
        with lock:
            count[0] += n
        self.send_response(200); self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0"); self.end_headers()
    def do_GET(self):  # /count: spans received since the last /count
        with lock:
            n, count[0] = count[0], 0
        body = str(n).encode()
        self.send_response(200); self.send_header("content-length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a): pass
s = ThreadingHTTPServer(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
"""


def _received(endpoint: str) -> int:
    """Spans the sink received since the last call (it resets)."""
    import urllib.request

    with urllib.request.urlopen(endpoint + "/count", timeout=30) as resp:
        return int(resp.read())


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--endpoint", help=argparse.SUPPRESS)
    p.add_argument("--calls", type=int, default=2000, help="timed calls per block (default 2000)")
    p.add_argument("--warmup", type=int, default=300)
    p.add_argument(
        "--repeats", type=int, default=3, help="worker processes per contender (default 3)"
    )
    p.add_argument("--only", help="comma-separated contenders (default: all)")
    p.add_argument("--quick", action="store_true", help="500 calls, 1 repeat")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    p.add_argument(
        "--burst",
        type=int,
        default=0,
        help="instead: N calls as fast as they go per process, then count the spans received",
    )
    args = p.parse_args()
    if args.worker == "breakdown":
        print(json.dumps(breakdown()))
        return 0
    if args.worker and args.burst:
        print(json.dumps(burst(args.worker, args.endpoint, args.burst)))
        return 0
    if args.worker:
        print(json.dumps(worker(args.worker, args.endpoint, args.calls, args.warmup)))
        return 0
    if args.quick:
        args.calls, args.repeats = 500, 1
    names = [n.strip() for n in args.only.split(",")] if args.only else [*CONTENDERS, *VARIANTS]
    log_path = VENV_ROOT / "install.log"
    VENV_ROOT.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a") as log:
        pythons = {
            n: _venv(VARIANTS.get(n, n), log)
            for n in dict.fromkeys(VARIANTS.get(n, n) for n in names)
        }
    sink = subprocess.Popen([sys.executable, "-c", SINK], stdout=subprocess.PIPE, text=True)
    try:
        endpoint = f"http://127.0.0.1:{sink.stdout.readline().strip()}"  # type: ignore[union-attr]
        results: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
        for r in range(args.repeats):
            order = list(names)
            random.Random(r).shuffle(order)
            for n in order:
                python = pythons[VARIANTS.get(n, n)]
                out = subprocess.run(
                    [
                        str(python),
                        str(Path(__file__).resolve()),
                        "--worker",
                        n,
                        "--endpoint",
                        endpoint,
                        "--calls",
                        str(args.calls),
                        "--warmup",
                        str(args.warmup),
                        "--burst",
                        str(args.burst),
                    ],
                    check=False,
                    capture_output=True,
                    text=True,
                    timeout=900,
                )
                if out.returncode != 0:
                    print(f"{n} failed:\n{out.stderr[-3000:]}", file=sys.stderr)
                    return 1
                results[n].append(json.loads(out.stdout.strip().splitlines()[-1]))
                results[n][-1]["spans_received"] = float(_received(endpoint))
                if args.burst:
                    print(f"  run {r + 1}/{args.repeats} {n}: {json.dumps(results[n][-1])}")
                    continue
                print(
                    f"  run {r + 1}/{args.repeats} {n}: +{results[n][-1]['added_p50_blocks']:.0f} µs",
                    file=sys.stderr,
                )
        if args.burst:
            return 0
        detail = None
        if "agentledger" in pythons:
            out = subprocess.run(
                [
                    str(pythons["agentledger"]),
                    str(Path(__file__).resolve()),
                    "--worker",
                    "breakdown",
                ],
                check=False,
                capture_output=True,
                text=True,
                timeout=900,
            )
            detail = (
                json.loads(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 else None
            )
    finally:
        sink.terminate()
        sink.wait()
    return _report(results, args, detail)


def _report(
    results: dict[str, list[dict[str, Any]]],
    args: argparse.Namespace,
    detail: dict[str, float] | None,
) -> int:
    rows = {}
    for n, runs in results.items():
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        added = [r["added_p50_blocks"] for r in runs]
        rows[n] = {
            **med,
            "added_p50": statistics.median(added),
            "added_p50_runs": added,
            "added_p99": med["p99"] - med["bare_p99"],
            "added_cpu_p50": med["cpu_p50"] - med["bare_cpu_p50"],
            "received_runs": [
                f"{r.get('spans_received', 0):.0f}/{r.get('spans_expected', 0):.0f}" for r in runs
            ],
        }
    if args.json:
        print(json.dumps({"contenders": rows, "agentledger_breakdown": detail}, indent=2))
    print(
        f"\nOpenAI chat call on an in-process MockTransport, {args.calls} calls x {args.repeats} processes, "
        "spans exported in batches over OTLP/HTTP to a sink process (µs, caller thread)\n"
    )
    print(
        f"{'contender':<20}{'bare p50':>10}{'p50':>9}{'p99':>9}{'added p50':>11}{'added p99':>11}"
        f"{'added CPU p50':>15}{'proc CPU/call':>15}{'added proc CPU':>16}  added p50 per run; "
        "spans received/expected per run"
    )
    for n, row in rows.items():
        runs = ", ".join(f"{a:.0f}" for a in row["added_p50_runs"])
        proc = row.get("proc_cpu_per_call", float("nan"))
        proc_added = proc - row.get("bare_proc_cpu_per_call", float("nan"))
        print(
            f"{n:<20}{row['bare_p50']:>10.0f}{row['p50']:>9.0f}{row['p99']:>9.0f}{row['added_p50']:>11.0f}"
            f"{row['added_p99']:>11.0f}{row['added_cpu_p50']:>15.0f}{proc:>15.0f}{proc_added:>16.0f}"
            f"  [{runs}]; [{', '.join(row['received_runs'])}]"
        )
    ours = rows.get("agentledger")
    peers = [rows[n]["added_p50"] for n in ("openinference", "openllmetry", "openlit") if n in rows]
    if ours is not None:
        added = ours["added_p50"]
        print(
            f"\ntarget 1, AgentLedger adds <= 100 µs p50: {'met' if added <= 100 else 'NOT met'} ({added:.0f} µs)"
        )
        if peers:
            best = min(peers)
            print(
                f"target 2, no more than the best peer ({best:.0f} µs): {'met' if added <= best else 'NOT met'}"
            )
    if detail:
        print(
            f"\nAgentLedger breakdown (no HTTP, best of 5, µs): wrapper on the caller thread "
            f"{detail['caller_wrapper_us']:.1f} per call; on the export thread per span "
            f"({detail['span_attributes']:.0f} attributes): rewrite {detail['export_rewrite_us']:.1f}, "
            f"with every redaction preset {detail['export_redact_all_presets_us']:.1f}, "
            f"OTLP protobuf encoding {detail['export_otlp_encode_us']:.1f} with the SDK's encoder, "
            f"{detail.get('export_fast_encode_us', float('nan')):.1f} with AgentLedger's"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
