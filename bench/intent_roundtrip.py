"""Intent round trip of a governed tool against the embedded server on loopback.

Starts ``agentledger serve`` (collector + embedded chDB store) in a subprocess,
then measures from this process:

* ``intent``: one ``POST /v1/intents`` answered once the intent is durable (fsynced in
  the governance journal beside the embedded store, which inserts it within 50 ms;
  what a governed tool waits for before its body runs), p50/p99;
* ``governed call``: a no-op ``@governed_tool`` call end to end (intent, span,
  outcome queued), p50/p99;
* ``concurrent``: intents/s with ``--clients`` agents asking at once (group commit);
* floors, to read the figures by: ``http_floor`` (``GET /healthz`` on the same kept-alive
  connection: loopback HTTP + the ASGI stack) and ``insert_floor`` (one intent row inserted
  into an embedded store in this process: what an answer after the insert would cost).

Target: intent round trip <= 5 ms p50. Run: ``.venv/bin/python bench/intent_roundtrip.py``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "p50_ms": round(statistics.median(ordered) * 1000, 3),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, 3),
        "n": len(ordered),
    }


def _body(tool: str = "bench_tool") -> dict[str, object]:
    args = json.dumps({"account": "ACME-001", "amount": 250}, separators=(",", ":"), sort_keys=True)
    return {
        "intent_id": uuid.uuid4().hex,
        "tool_name": tool,
        "arguments": args,
        "arguments_sha256": hashlib.sha256(args.encode()).hexdigest(),
        "agent_name": "bench",
        "session_id": "bench-session",
        "principal_id": "bench@example",
        "principal_chain": ["bench@example"],
    }


def _insert_floor(n: int, parent: str | None) -> dict[str, float]:
    from agentledger.pipeline.governance.records import Decision, IntentIn, intent_record
    from agentledger.pipeline.store import migrate
    from agentledger.pipeline.store.embedded import EmbeddedStore
    from agentledger.pipeline.store.records import append_records

    floor_dir = tempfile.mkdtemp(prefix="agentledger-bench-floor-", dir=parent)
    store = EmbeddedStore(floor_dir, database="floor")
    migrate(store)
    samples = []
    for i in range(n):
        body = _body()
        record = intent_record(
            "default", IntentIn.model_validate(body), Decision.PROCEED, "", time.time_ns()
        )
        t0 = time.perf_counter()
        append_records(store, [record])
        if i >= n // 10:
            samples.append(time.perf_counter() - t0)
    store.close()
    shutil.rmtree(floor_dir, ignore_errors=True)
    return _percentiles(samples)


def _http_floor(url: str, n: int) -> dict[str, float]:
    import http.client

    conn = http.client.HTTPConnection(url.split("//", 1)[1])
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        conn.request("GET", "/healthz")
        conn.getresponse().read()
        samples.append(time.perf_counter() - t0)
    conn.close()
    return _percentiles(samples)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n", type=int, default=1000, help="Sequential intents measured.")
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument(
        "--clients", type=int, default=8, help="Concurrent agents for the throughput run."
    )
    parser.add_argument("--per-client", type=int, default=200)
    parser.add_argument(
        "--data-dir",
        default=None,
        help="Parent directory of the server's data dir (default: the system temp dir; "
        "/dev/shm shows the cost without the disk).",
    )
    opts = parser.parse_args()
    load_at_start = round(os.getloadavg()[0], 2)

    from agentledger.instrumentation._intent_client import IntentClient
    from agentledger.instrumentation.governance import (
        configure_governance,
        flush_outcomes,
        governed_tool,
    )

    data_dir = tempfile.mkdtemp(prefix="agentledger-bench-intents-", dir=opts.data_dir)
    port = _free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "agentledger.cli",
            "serve",
            "--no-auth",
            "--port",
            str(port),
            "--data-dir",
            data_dir,
            "--log-level",
            "warning",
        ],
        env={**os.environ, "AGENTLEDGER_API_KEYS": ""},
        stdout=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit("server did not start")
            time.sleep(0.1)

        client = IntentClient(url)
        for _ in range(opts.warmup):
            client.post("/v1/intents", _body())
        samples = []
        for _ in range(opts.n):
            body = _body()
            t0 = time.perf_counter()
            ack = client.post("/v1/intents", body)
            samples.append(time.perf_counter() - t0)
            assert ack["stored"] and ack["decision"] == "proceed"
        intent = _percentiles(samples)
        http_floor = _http_floor(url, opts.n)

        configure_governance(url)

        @governed_tool
        def noop(account: str, amount: int) -> dict[str, object]:
            return {"ok": True}

        for _ in range(opts.warmup):
            noop("ACME-001", 1)
        calls = []
        for i in range(opts.n):
            t0 = time.perf_counter()
            noop("ACME-001", i)
            calls.append(time.perf_counter() - t0)
        flush_outcomes(30)
        governed = _percentiles(calls)

        errors: list[BaseException] = []

        def agent() -> None:
            own = IntentClient(url)
            try:
                for _ in range(opts.per_client):
                    own.post("/v1/intents", _body("concurrent"))
            except BaseException as exc:
                errors.append(exc)
            finally:
                own.close()

        threads = [threading.Thread(target=agent) for _ in range(opts.clients)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - t0
        if errors:
            raise SystemExit(f"concurrent run failed: {errors[0]}")
        total = opts.clients * opts.per_client
        result = {
            "intent_round_trip": intent,
            "governed_call": governed,
            "concurrent": {
                "clients": opts.clients,
                "intents": total,
                "intents_per_s": round(total / elapsed),
                "mean_ms": round(elapsed / opts.per_client * 1000, 3),
            },
            "http_floor": http_floor,
            "insert_floor": _insert_floor(min(opts.n, 500), opts.data_dir),
            "target_p50_ms": 5.0,
            "meets_target": intent["p50_ms"] <= 5.0,
            "data_dir": data_dir,
            "cpus": os.cpu_count(),
            "load_average_1m_at_start": load_at_start,
            "load_average_1m_at_end": round(os.getloadavg()[0], 2),
        }
        print(json.dumps(result, indent=2))
    finally:
        server.terminate()
        server.wait(30)
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
