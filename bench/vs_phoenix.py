"""AgentLedger against Arize Phoenix in one run: the same OTLP load into each, stored spans/s.

The load is ``bench/ingest.py``'s: the realistic mix of ``bench.traffic`` (OpenInference
attributes, traces of 5 spans, every text unique, ~4 KB of text per span) as OTLP/HTTP protobuf
in 200-span requests from 4 concurrent senders (``bench.sender``, the same code for both).

* AgentLedger: ``agentledger serve --no-auth`` (embedded chDB store) from this interpreter;
  stored = ``SELECT count() FROM spans`` through the server's ``/clickhouse`` SQL endpoint.
* Phoenix: ``phoenix serve`` (sqlite in a temporary ``PHOENIX_WORKING_DIR``, telemetry off) from
  its own cached venv (``bench/peer_venvs.py``, ``SERVERS["phoenix"]``: made on the first run);
  stored = ``SELECT count(*) FROM spans`` on its sqlite file, read-only. Phoenix acknowledges a
  request before it stores it (a queue and a bulk inserter), so its stored rate is what counts.

For each: one warm-up request (50 spans) is sent and stored before the clock starts; then the
clock runs from the first send until the last span is stored (or ``--bound-s`` passes: the figure
is then the spans stored by then). Printed: stored spans/s, the server process tree's
CPU-seconds per 10,000 stored spans (``/proc``), acknowledgement p50/p99, and the ratios.
Phoenix gets fewer spans (``--phoenix-runs``) because it stores tens of spans a second; rates are
compared, not totals.

Run: ``.venv/bin/python bench/vs_phoenix.py`` (first run: a few minutes to build Phoenix's venv).
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.peer_venvs import SERVERS, cache_root, peer_python  # noqa: E402
from bench.sender import percentile, send_all, tree_cpu_seconds, wait_until  # noqa: E402
from bench.traffic import LIGHT, REALISTIC, SPANS_PER_RUN, requests  # noqa: E402

PB = {"Content-Type": "application/x-protobuf"}
WARM_SPANS = 50
_MIXES = {m.name: m for m in (REALISTIC, LIGHT)}


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _measure(
    name: str,
    proc: subprocess.Popen[bytes],
    url: str,
    bodies: list[bytes],
    clients: int,
    count: Callable[[], int],
    bound_s: float,
) -> dict[str, Any]:
    """Warm up, then send ``bodies`` and wait for them to be stored; the figures of one server."""
    warm = next(iter(requests(10, runs_per_request=10, seed=99))).SerializeToString()
    assert httpx.post(f"{url}/v1/traces", content=warm, headers=PB, timeout=120).status_code == 200
    wait_until(lambda: count() >= WARM_SPANS, f"{name} warm-up", 300, lambda: proc.poll() is None)
    expected = WARM_SPANS + _spans_in(bodies)
    cpu0 = tree_cpu_seconds(proc.pid)
    t0 = time.perf_counter()
    sent = send_all(url, [[("/v1/traces", b)] for b in bodies], PB, clients)
    if sent.errors:
        raise RuntimeError(f"{name}: {len(sent.errors)} requests failed, first: {sent.errors[0]}")
    stored = count()
    while stored < expected and time.perf_counter() - t0 < bound_s and proc.poll() is None:
        time.sleep(0.2)
        stored = count()
    elapsed = time.perf_counter() - t0
    cpu = tree_cpu_seconds(proc.pid) - cpu0
    stored -= WARM_SPANS
    latencies = sorted(sent.latencies)
    return {
        "name": name,
        "requests": len(bodies),
        "sent": expected - WARM_SPANS,
        "stored": stored,
        "complete": stored >= expected - WARM_SPANS,
        "send_s": sent.seconds,
        "stored_s": elapsed,
        "stored_per_s": stored / elapsed,
        "cpu_per_10k": cpu / max(stored, 1) * 10_000,
        "p50_ms": percentile(latencies, 0.50) * 1e3,
        "p99_ms": percentile(latencies, 0.99) * 1e3,
    }


def _spans_in(bodies: list[bytes]) -> int:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    return sum(
        len(ss.spans)
        for b in bodies
        for rs in ExportTraceServiceRequest.FromString(b).resource_spans
        for ss in rs.scope_spans
    )


def bench_agentledger(bodies: list[bytes], clients: int, bound_s: float) -> dict[str, Any]:
    data_dir = tempfile.mkdtemp(prefix="agentledger-vs-phoenix-")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "AGENTLEDGER_API_KEYS"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "agentledger.cli", "serve", "--no-auth", "--port", str(port)]
        + ["--data-dir", data_dir, "--log-level", "warning"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"

    def count() -> int:
        sql = "SELECT count() FROM spans FORMAT TSV"
        resp = httpx.post(f"{url}/clickhouse", content=sql, timeout=60)
        resp.raise_for_status()
        return int(resp.text.strip())

    try:
        wait_until(
            lambda: httpx.get(f"{url}/readyz", timeout=1).status_code == 200,
            "agentledger serve",
            120,
            lambda: proc.poll() is None,
        )
        return _measure("AgentLedger", proc, url, bodies, clients, count, bound_s)
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def bench_phoenix(bodies: list[bytes], clients: int, bound_s: float) -> dict[str, Any]:
    with open(cache_root().parent / "bench-venvs-install.log", "a") as install_log:
        python = peer_python("phoenix", install_log)
    work = tempfile.mkdtemp(prefix="phoenix-vs-agentledger-")
    port = _free_port()
    env = {
        **os.environ,
        "PHOENIX_WORKING_DIR": work,
        "PHOENIX_HOST": "127.0.0.1",
        "PHOENIX_PORT": str(port),
        "PHOENIX_GRPC_PORT": str(_free_port()),
        "PHOENIX_TELEMETRY_ENABLED": "false",
    }
    with open(Path(work) / "phoenix.log", "wb") as out:
        proc = subprocess.Popen(
            [str(python.parent / "phoenix"), "serve"], stdout=out, stderr=subprocess.STDOUT, env=env
        )
    url = f"http://127.0.0.1:{port}"

    def count() -> int:
        db = Path(work) / "phoenix.db"
        try:
            with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)) as conn:
                return int(conn.execute("SELECT count(*) FROM spans").fetchone()[0])
        except sqlite3.OperationalError:  # not created yet, or locked past the timeout
            return 0

    try:
        wait_until(
            lambda: httpx.get(f"{url}/healthz", timeout=1).status_code == 200,
            f"phoenix serve (log: {work}/phoenix.log)",
            300,
            lambda: proc.poll() is None,
        )
        return _measure("Phoenix", proc, url, bodies, clients, count, bound_s)
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def _row(r: dict[str, Any]) -> str:
    done = "all" if r["complete"] else f"{r['stored']:,} of"
    return (
        f"{r['name']:<12} {done} {r['sent']:>6,} spans in {r['stored_s']:7.1f} s "
        f"(acked in {r['send_s']:6.1f} s) | {r['stored_per_s']:9,.0f} stored spans/s | "
        f"{r['cpu_per_10k']:7.2f} CPU-s/10k spans | ack p50 {r['p50_ms']:7.0f} ms, "
        f"p99 {r['p99_ms']:7.0f} ms"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=4000, help="AgentLedger's agent runs (5 spans)")
    ap.add_argument("--phoenix-runs", type=int, default=600, help="Phoenix's agent runs")
    ap.add_argument("--runs-per-request", type=int, default=40, help="40 runs = 200 spans")
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--mix", choices=sorted(_MIXES), default=REALISTIC.name)
    ap.add_argument("--bound-s", type=float, default=900, help="longest wait for stored spans")
    args = ap.parse_args()
    mix = _MIXES[args.mix]
    traffic = [
        r.SerializeToString()
        for r in requests(args.runs, runs_per_request=args.runs_per_request, mix=mix)
    ]
    per_request = args.runs_per_request * SPANS_PER_RUN
    phoenix_bodies = traffic[: max(1, args.phoenix_runs // args.runs_per_request)]
    print(
        f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}, "
        f"python {sys.version.split()[0]}; {mix.name} mix, "
        f"{per_request}-span OTLP/HTTP protobuf requests, {args.clients} senders; "
        f"Phoenix {SERVERS['phoenix'][0][0].split('==')[1]} (sqlite) gets the first "
        f"{len(phoenix_bodies) * per_request:,} of AgentLedger's {len(traffic) * per_request:,} spans"
    )
    ours = bench_agentledger(traffic, args.clients, args.bound_s)
    print(_row(ours), flush=True)
    theirs = bench_phoenix(phoenix_bodies, args.clients, args.bound_s)
    print(_row(theirs), flush=True)
    ratio = ours["stored_per_s"] / max(theirs["stored_per_s"], 1e-9)
    cpu = theirs["cpu_per_10k"] / max(ours["cpu_per_10k"], 1e-9)
    print(
        f"load average now {os.getloadavg()[0]:.1f}; "
        f"ratio: AgentLedger stores {ratio:,.1f}x Phoenix's spans/s "
        f"(target: at least 100x) and uses {cpu:,.1f}x less server CPU per span"
    )


if __name__ == "__main__":
    main()
