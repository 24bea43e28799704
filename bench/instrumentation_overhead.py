"""Caller-thread cost of instrumenting an OpenAI chat call: AgentLedger vs OpenInference,
OpenLLMetry and OpenLIT, on the same scripted calls, in one run.

Each peer runs in a virtual environment of its own (their dependencies conflict:
OpenLIT needs openai<3), created and cached by ``peer_venvs.py`` under
``~/.cache/agentledger/bench-venvs/<peer>-<hash of its requirements>`` from
PyPI on first use; AgentLedger runs in the interpreter running this script (the
project's environment). Every contender runs the same harness
(``overhead_worker.py``) in a process of its own:

1. an OpenAI client on an in-process ``httpx.MockTransport`` (no network)
   answering a canned chat completion (tool offered, usage, fingerprint);
2. the contender's instrumentation on, exporting in batches
   (``BatchSpanProcessor`` / the library's default batch mode / AgentLedger's
   export queue) over OTLP/HTTP to a counting sink in another process on
   127.0.0.1;
3. ``--calls`` calls timed on the calling thread (``perf_counter_ns``, after a
   warm-up) in 10 alternating blocks, bare and instrumented: the functions the
   contender patched into the SDK are swapped out and back in, so load on a
   shared machine hits both alike;
4. reported: p50 and p99 of both, the cost added per call on the caller's
   thread (the median over blocks of instrumented p50 - bare p50, and p99 -
   bare p99), the whole process's CPU per instrumented call (every thread: the
   export thread's rewriting, encoding and sending included), and the spans the
   sink received against the calls made (a span a contender dropped, e.g.
   ``Queue full, dropping Span``, shows here);
5. ``--burst N`` instead: N calls as fast as they go, then a flush; spans
   received, wall time, process CPU per call.

Processes are repeated ``--repeats`` times, contenders interleaved, and the
median of each figure is reported (each run's added p50 and spans are printed
too).

Run: ``.venv/bin/python bench/instrumentation_overhead.py`` (``--quick`` for a
short run, ``--only agentledger,openinference`` to pick contenders; the first
run builds the peers' venvs, a few minutes).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peer_venvs import PEERS, cache_root, peer_python  # noqa: E402 - a script beside this one

HERE = Path(__file__).resolve().parent
WORKER = HERE / "overhead_worker.py"
CONTENDERS = ("agentledger", *PEERS)
VARIANTS = {"agentledger+redact": "agentledger"}
"""Extra rows run in another contender's environment: AgentLedger with every redaction preset on."""


def _interpreters(names: list[str]) -> dict[str, Path]:
    """The Python of each contender's environment (the peers' venvs are built on first use)."""
    out: dict[str, Path] = {}
    log_path = cache_root().parent / "bench-venvs-install.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a") as log:
        for name in names:
            env = VARIANTS.get(name, name)
            if env == "agentledger":
                out[name] = Path(sys.executable)
            elif env in PEERS:
                out[name] = peer_python(env, log)
            else:
                raise SystemExit(f"unknown contender {name!r}; known: {[*CONTENDERS, *VARIANTS]}")
    return out


def _run_worker(python: Path, *args: str) -> dict[str, Any]:
    # -P: the worker's folder is not put on sys.path (bench/'s modules must not shadow a peer's)
    with tempfile.TemporaryDirectory() as spool:  # AgentLedger's spool: never the user's
        out = subprocess.run(
            [str(python), "-P", str(WORKER), *args],
            check=False,
            capture_output=True,
            text=True,
            timeout=900,
            env={**os.environ, "AGENTLEDGER_SPOOL_DIR": spool},
        )
    if out.returncode != 0:
        raise SystemExit(f"{args[0]} failed:\n{out.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


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
    if args.quick:
        args.calls, args.repeats = 500, 1
    names = [n.strip() for n in args.only.split(",")] if args.only else [*CONTENDERS, *VARIANTS]
    pythons = _interpreters(names)
    sink = subprocess.Popen([sys.executable, "-c", SINK], stdout=subprocess.PIPE, text=True)
    try:
        endpoint = f"http://127.0.0.1:{sink.stdout.readline().strip()}"  # type: ignore[union-attr]
        results: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
        for r in range(args.repeats):
            order = list(names)
            random.Random(r).shuffle(order)
            for n in order:
                figures = _run_worker(
                    pythons[n], n, endpoint, str(args.calls), str(args.warmup), str(args.burst)
                )
                figures["spans_received"] = float(_received(endpoint))
                results[n].append(figures)
                if args.burst:
                    print(f"  run {r + 1}/{args.repeats} {n}: {json.dumps(figures)}")
                    continue
                print(
                    f"  run {r + 1}/{args.repeats} {n}: +{figures['added_p50_blocks']:.0f} µs, "
                    f"{figures['spans_received']:.0f}/{figures['spans_expected']:.0f} spans",
                    file=sys.stderr,
                )
        if args.burst:
            return 0
        detail = None
        if "agentledger" in pythons:
            detail = _run_worker(pythons["agentledger"], "breakdown")
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
