"""Kafka path benchmark on a real broker: collector -> Kafka, Kafka -> store, ingest-to-queryable.

Prints spans/s through the collector (and per CPU-second of the collector
process), spans/s per consumer (and per CPU-second), and the ingest-to-queryable
latency p50/p95; the collector runs with and without the ``crc32c`` package. The
consumer runs twice: into the embedded store (the ClickHouse engine's inserts and
merges counted as the consumer's CPU) and into a ClickHouse server through
clickhouse-connect (the tests' chDB-backed HTTP endpoint in a process of its own,
its CPU reported apart as the database's). ``--runs`` sets the volume (the
consumer's per-CPU figure is steadier over more batches, e.g. ``--runs 16000``). The consumer's
figures are given from its start-up and, as its throughput, from its first stored batch on (start-up:
imports, joining the group, the schema's DDL, is a one-off cost a long-running consumer does not repeat).
Each consumer stage starts once the machine is quiet (see ``_settle``).

Run: ``.venv/bin/python bench/kafka_path.py`` (starts its own broker with
deploy/kafka/kafka.sh unless AGENTLEDGER_KAFKA_BOOTSTRAP_SERVERS is set).
"""

from __future__ import annotations

import argparse
import os
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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.traffic import LIGHT, REALISTIC, SPANS_PER_RUN, requests  # noqa: E402

PB = {"Content-Type": "application/x-protobuf"}
_CLK = os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLK  # utime + stime


def _machine_busy(seconds: float) -> float:
    """Fraction of all cores busy over ``seconds`` (from /proc/stat)."""

    def sample() -> tuple[int, int]:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return sum(values), values[3] + values[4]  # total, idle + iowait

    total0, idle0 = sample()
    time.sleep(seconds)
    total1, idle1 = sample()
    return 1.0 - (idle1 - idle0) / max(1, total1 - total0)


def _settle(limit_s: float = 180.0) -> float:
    """Wait until the machine is quiet (under 10% busy over 2 s); returns the seconds waited.

    So that nothing that ran before (the collector processes, another consumer)
    is still at work on the cores the consumer is measured on.
    """
    started = time.monotonic()
    while time.monotonic() - started < limit_s and _machine_busy(2.0) > 0.10:
        pass
    return time.monotonic() - started


def _wait_ready(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("collector did not start")
        time.sleep(0.2)


def bench_collector(
    env: dict[str, str], bodies: list[bytes], clients: int, crc32c: bool
) -> dict[str, float]:
    port = _free_port()
    block = "" if crc32c else "sys.modules['crc32c'] = None; "
    code = (
        f"import sys; {block}sys.argv = ['agentledger', 'collector', '--no-auth', '--port', '{port}', "
        "'--host', '127.0.0.1', '--log-level', 'warning']; from agentledger.cli import main; main()"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, proc)
        httpx.post(f"{url}/v1/traces", content=bodies[0], headers=PB, timeout=60)  # warm-up
        queue = list(bodies[1:])
        lock = threading.Lock()
        failures: list[int] = []

        def send() -> None:
            with httpx.Client(timeout=120) as client:
                while True:
                    with lock:
                        if not queue:
                            return
                        body = queue.pop()
                    r = client.post(f"{url}/v1/traces", content=body, headers=PB)
                    if r.status_code != 200:
                        failures.append(r.status_code)

        cpu0 = _cpu_seconds(proc.pid)
        t0 = time.perf_counter()
        threads = [threading.Thread(target=send) for _ in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - t0
        cpu = _cpu_seconds(proc.pid) - cpu0
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    if failures:
        raise RuntimeError(f"{len(failures)} requests failed: {failures[:5]}")
    return {"seconds": elapsed, "cpu": cpu}


_ENDPOINT = """
import sys, time
sys.path.insert(0, sys.argv[3])
from tests.support.chdb_http import ChdbHttpEndpoint
ep = ChdbHttpEndpoint(sys.argv[1], port=int(sys.argv[2]))
ep.start()
print("ready", flush=True)
time.sleep(1e9)
"""


def bench_consumer(
    env: dict[str, str], expected_spans: int, server: bool = False
) -> dict[str, float]:
    """One pipeline consumer from the spans topic into the embedded store (the ClickHouse engine in
    the consumer's process, its inserts and merges counted as consumer CPU), or, with ``server``,
    into a ClickHouse server over HTTP through clickhouse-connect (production's topology; here the
    tests' chDB-backed ClickHouse HTTP endpoint in a process of its own, whose CPU is the
    database's and is reported apart)."""
    data_dir = tempfile.mkdtemp(prefix="agentledger-bench-consumer-")
    metrics_port = _free_port()
    env = {
        **env,
        "AGENTLEDGER_METRICS_PORT": str(metrics_port),
        "AGENTLEDGER_BATCH_MAX_SPANS": "20000",
    }
    endpoint = None
    if server:
        port = _free_port()
        endpoint = subprocess.Popen(
            [
                sys.executable,
                "-c",
                _ENDPOINT,
                tempfile.mkdtemp(prefix="agentledger-bench-ch-"),
                str(port),
                str(ROOT),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        assert endpoint.stdout is not None and endpoint.stdout.readline().strip() == b"ready"
        env["AGENTLEDGER_CLICKHOUSE_URL"] = f"http://127.0.0.1:{port}"
        env["AGENTLEDGER_DATABASE"] = f"bench_{uuid.uuid4().hex[:8]}"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "agentledger.cli",
            "pipeline",
            "run",
            "--data-dir",
            data_dir,
            "--log-level",
            "warning",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        status: dict = {}
        first_spans_at = None
        cpu0 = None
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            try:
                status = httpx.get(f"http://127.0.0.1:{metrics_port}/status", timeout=2).json()
            except httpx.HTTPError:
                time.sleep(0.2)
                continue
            if cpu0 is None:
                cpu0, t0 = _cpu_seconds(proc.pid), time.perf_counter()
                db0 = _cpu_seconds(endpoint.pid) if endpoint else 0.0
            if (
                status["spans"] > 0 and first_spans_at is None
            ):  # start-up (imports, group join, DDL) is over
                first_spans_at, first_spans = time.perf_counter(), status["spans"]
                first_cpu = _cpu_seconds(proc.pid)
                first_db = _cpu_seconds(endpoint.pid) if endpoint else 0.0
            if status["spans"] >= expected_spans:
                break
            time.sleep(0.05)
        end = time.perf_counter()
        elapsed = end - t0
        cpu_now = _cpu_seconds(proc.pid)
        cpu = cpu_now - (cpu0 or 0)
        db_now = _cpu_seconds(endpoint.pid) if endpoint else 0.0
        db_cpu = db_now - db0
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        if endpoint:
            endpoint.terminate()
            endpoint.wait(timeout=60)
    if status.get("spans", 0) < expected_spans:
        raise RuntimeError(f"consumer stored {status.get('spans')} of {expected_spans} spans")
    steady = status["spans"] - first_spans  # after the first batch stored: the steady state
    return {
        "seconds": elapsed,
        "cpu": cpu,
        "db_cpu": db_cpu,
        "spans": status["spans"],
        "steady_spans": steady,
        "steady_seconds": end - first_spans_at,
        "steady_cpu": cpu_now - first_cpu,
        "steady_db_cpu": db_now - first_db,
    }


def _consumer_line(k: dict[str, float]) -> str:
    return (
        f"{k['spans'] / k['seconds']:,.0f} spans/s, {k['spans'] / max(k['cpu'], 1e-9):,.0f} spans per consumer "
        f"CPU-second from start-up; steady state after the first stored batch "
        f"({k['steady_spans']:,.0f} spans): {k['steady_spans'] / max(k['steady_seconds'], 1e-9):,.0f} spans/s, "
        f"{k['steady_spans'] / max(k['steady_cpu'], 1e-9):,.0f} spans per consumer CPU-second"
    )


def bench_latency(kafka_env: dict[str, str], n: int) -> list[float]:
    """Ack at the collector -> row queryable in the store, one trace at a time, consumer in-process."""
    from agentledger.collector import CollectorSettings
    from agentledger.compose import build_edge_app
    from agentledger.pipeline.consumers.spans import SpanConsumer
    from agentledger.pipeline.normalize import make_normalizer
    from agentledger.pipeline.settings import KafkaSettings, PipelineSettings
    from agentledger.pipeline.sinks.kafka import KafkaSink
    from agentledger.pipeline.store import migrate
    from agentledger.pipeline.store.embedded import EmbeddedStore
    from agentledger.server import AppServer

    tag = uuid.uuid4().hex[:8]
    kafka = KafkaSettings(
        bootstrap_servers=kafka_env["AGENTLEDGER_KAFKA_BOOTSTRAP_SERVERS"],
        spans_topic=f"lat{tag}.spans",
        group_id=f"lat{tag}",
        partitions=2,
    )
    store = EmbeddedStore(tempfile.mkdtemp(prefix="agentledger-bench-lat-"))
    migrate(store)
    consumer = SpanConsumer(
        kafka, PipelineSettings(batch_max_seconds=0.2, metrics_port=0), store, make_normalizer()
    )
    thread = threading.Thread(target=consumer.run, daemon=True)
    thread.start()
    latencies = []
    with AppServer(
        build_edge_app(CollectorSettings(no_auth=True, port=0), KafkaSink(kafka))
    ) as collector:
        bodies = [r.SerializeToString() for r in requests(n, runs_per_request=1, seed=99)]
        traces = [
            r.resource_spans[0].scope_spans[0].spans[0].trace_id.hex()
            for r in requests(n, runs_per_request=1, seed=99)
        ]
        for body, trace_id in zip(bodies, traces):
            assert (
                httpx.post(
                    f"{collector.url}/v1/traces", content=body, headers=PB, timeout=30
                ).status_code
                == 200
            )
            acked = time.perf_counter()
            while (
                store.query_scalar(
                    "SELECT count() FROM spans WHERE trace_id = {t:String}", {"t": trace_id}
                )
                < SPANS_PER_RUN
            ):
                time.sleep(0.01)
                if time.perf_counter() - acked > 30:
                    raise RuntimeError("span not queryable within 30 s")
            latencies.append(time.perf_counter() - acked)
            time.sleep(0.05)
    consumer.stop()
    thread.join(timeout=30)
    store.close()
    return latencies


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=4000, help="agent runs (5 spans each)")
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--latency-samples", type=int, default=40)
    ap.add_argument(
        "--mix",
        choices=(REALISTIC.name, LIGHT.name),
        default=REALISTIC.name,
        help="the span mix of bench/traffic.py (realistic: unique text, ~4 KB per span)",
    )
    ap.add_argument("--runs-per-request", type=int, default=40, help="40 runs = 200 spans")
    args = ap.parse_args()
    mix = REALISTIC if args.mix == REALISTIC.name else LIGHT
    broker = None
    bootstrap = os.environ.get("AGENTLEDGER_KAFKA_BOOTSTRAP_SERVERS")
    if not bootstrap:
        kafka_env = {
            **os.environ,
            "KAFKA_PORT": str(_free_port()),
            "KAFKA_CONTROLLER_PORT": str(_free_port()),
            "KAFKA_DATA_DIR": tempfile.mkdtemp(prefix="agentledger-bench-kafka-"),
        }
        subprocess.run([str(ROOT / "deploy/kafka/kafka.sh"), "start"], env=kafka_env, check=True)
        bootstrap = f"127.0.0.1:{kafka_env['KAFKA_PORT']}"
        broker = kafka_env
    try:
        bodies = [
            r.SerializeToString()
            for r in requests(args.runs, runs_per_request=args.runs_per_request, mix=mix)
        ]
        spans = args.runs * SPANS_PER_RUN
        print(
            f"machine: {os.cpu_count()} cores; {mix.name} mix, {spans} spans ({sum(map(len, bodies)) / 1e6:.0f} MB OTLP protobuf) "
            f"in {len(bodies)} requests, {args.clients} clients; broker {bootstrap}"
        )
        results = {}
        for crc in (True, False):
            tag = uuid.uuid4().hex[:8]
            env = {
                **os.environ,
                "AGENTLEDGER_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
                "AGENTLEDGER_KAFKA_SPANS_TOPIC": f"bench{tag}.spans",
                "AGENTLEDGER_KAFKA_PARTITIONS": "2",
                "AGENTLEDGER_KAFKA_GROUP_ID": f"bench{tag}",
            }
            c = bench_collector(env, bodies, args.clients, crc)
            sent = spans - args.runs_per_request * SPANS_PER_RUN  # the warm-up request is not timed
            results[crc] = (env, c)
            print(
                f"collector -> Kafka ({'with' if crc else 'without'} crc32c): {sent / c['seconds']:,.0f} spans/s, "
                f"{sent / max(c['cpu'], 1e-9):,.0f} spans per collector CPU-second"
            )
        env, _ = results[True]
        print(f"(machine quiet after {_settle():.0f} s)")
        k = bench_consumer(env, spans)
        print(
            f"Kafka -> store (one consumer, embedded store, the ClickHouse engine's CPU included): "
            f"{_consumer_line(k)}"
        )
        env = {**env, "AGENTLEDGER_KAFKA_GROUP_ID": env["AGENTLEDGER_KAFKA_GROUP_ID"] + "-server"}
        print(f"(machine quiet after {_settle():.0f} s)")
        k = bench_consumer(env, spans, server=True)
        print(
            f"Kafka -> ClickHouse server (one consumer, clickhouse-connect): {_consumer_line(k)} "
            f"(the database used {k['db_cpu'] / max(k['spans'], 1) * 1e6:.0f} us CPU per span)"
        )
        lat = sorted(bench_latency(env, args.latency_samples))
        print(
            f"ingest-to-queryable: p50 {statistics.median(lat) * 1e3:.0f} ms, "
            f"p95 {lat[int(len(lat) * 0.95) - 1] * 1e3:.0f} ms over {len(lat)} traces"
        )
    finally:
        if broker is not None:
            subprocess.run([str(ROOT / "deploy/kafka/kafka.sh"), "stop"], env=broker, check=False)


if __name__ == "__main__":
    main()
