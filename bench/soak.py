"""Soak: collector -> Kafka -> two pipeline consumers -> ClickHouse, at a fixed rate, for a fixed time.

Reports, per minute: ingest-to-queryable latency p50/p95/p99 (from the collector's 200 to the
trace being readable in the store), the consumer group's lag, and the resident memory of every
process (collector, both consumers, the database); flat memory is the goal. Writes the series as
JSON and a PNG plot (``--out``, default docs/soak/).

The database is the tests' chDB-backed ClickHouse HTTP endpoint in a process of its own
(production's topology: consumers talk to a server through clickhouse-connect). Kafka: the broker
of AGENTLEDGER_KAFKA_BOOTSTRAP_SERVERS, else one started with deploy/kafka/kafka.sh.

Run: ``.venv/bin/python bench/soak.py --minutes 10 --rate 40`` (requests/s of one 5-span run).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.kafka_path import _ENDPOINT, PB, ROOT, _free_port, _wait_ready  # noqa: E402
from bench.traffic import SPANS_PER_RUN, requests  # noqa: E402


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _lag(bootstrap: str, group: str, topic: str) -> int:
    from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        ends = consumer.end_offsets(parts)
        committed = admin.list_group_offsets({group: None}).get(group, {})
        return sum(
            end - max(0, committed[tp].offset if tp in committed else 0) for tp, end in ends.items()
        )
    finally:
        consumer.close()
        admin.close()


class Soak:
    def __init__(self, bootstrap: str, rate: float, minutes: float) -> None:
        self.bootstrap, self.rate, self.seconds = bootstrap, rate, minutes * 60
        tag = uuid.uuid4().hex[:8]
        self.topic, self.group = f"soak{tag}.spans", f"soak{tag}"
        self.database = f"soak_{tag}"
        self.env = {
            **os.environ,
            "AGENTLEDGER_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "AGENTLEDGER_KAFKA_SPANS_TOPIC": self.topic,
            "AGENTLEDGER_KAFKA_DEAD_LETTER_TOPIC": f"soak{tag}.dlq",
            "AGENTLEDGER_KAFKA_GROUP_ID": self.group,
            "AGENTLEDGER_KAFKA_PARTITIONS": "4",
            "AGENTLEDGER_DATABASE": self.database,
            "AGENTLEDGER_BATCH_MAX_SECONDS": "0.5",
        }
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.sent: dict[str, float] = {}  # trace id -> when the collector answered 200
        self.latencies: list[tuple[float, float]] = []  # (second of the run, latency s)
        self.samples: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()

    def start(self) -> None:
        port = _free_port()
        endpoint = subprocess.Popen(
            [
                sys.executable,
                "-c",
                _ENDPOINT,
                tempfile.mkdtemp(prefix="soak-ch-"),
                str(port),
                str(ROOT),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        assert endpoint.stdout is not None and endpoint.stdout.readline().strip() == b"ready"
        self.procs["database"] = endpoint
        self.env["AGENTLEDGER_CLICKHOUSE_URL"] = self.db_url = f"http://127.0.0.1:{port}"
        subprocess.run(
            [sys.executable, "-m", "agentledger.cli", "pipeline", "topics"],
            env=self.env,
            check=True,
        )
        cport = _free_port()
        self.url = f"http://127.0.0.1:{cport}"
        self.procs["collector"] = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "agentledger.cli",
                "collector",
                "--no-auth",
                "--host",
                "127.0.0.1",
                "--port",
                str(cport),
            ]
            + ["--log-level", "warning"],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        _wait_ready(self.url, self.procs["collector"])
        for i in (1, 2):
            self.procs[f"consumer{i}"] = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "agentledger.cli",
                    "pipeline",
                    "run",
                    "--log-level",
                    "warning",
                ],
                env={**self.env, "AGENTLEDGER_METRICS_PORT": str(_free_port())},
                stdout=subprocess.DEVNULL,
                stderr=subprocess.STDOUT,
            )

    def send(self) -> None:
        """One request of one agent run every 1/rate seconds, on schedule (not after the last)."""
        started = time.monotonic()
        reqs = requests(int(self.rate * self.seconds) + 1, runs_per_request=1, seed=7)
        with httpx.Client(timeout=60) as client:
            for n, req in enumerate(reqs):
                due = started + n / self.rate
                if due - started > self.seconds or self.stop.is_set():
                    return
                time.sleep(max(0.0, due - time.monotonic()))
                response = client.post(
                    f"{self.url}/v1/traces", content=req.SerializeToString(), headers=PB
                )
                if response.status_code == 200:
                    trace = req.resource_spans[0].scope_spans[0].spans[0].trace_id.hex()
                    with self.lock:
                        self.sent[trace] = time.monotonic()

    def probe(self, t0: float) -> None:
        """Every 0.25 s: which sent traces are readable now (all their spans stored)."""
        import clickhouse_connect

        client = clickhouse_connect.get_client(dsn=self.db_url, database=self.database)
        while not self.stop.is_set() or self.sent:
            with self.lock:
                pending = list(self.sent)[:2000]
            if pending:
                rows = client.query(
                    "SELECT trace_id FROM spans WHERE trace_id IN {ids:Array(String)} "
                    "GROUP BY trace_id HAVING count() >= {n:UInt32}",
                    parameters={"ids": pending, "n": SPANS_PER_RUN},
                ).result_rows
                now = time.monotonic()
                with self.lock:
                    for (trace,) in rows:
                        acked = self.sent.pop(trace, None)
                        if acked is not None:
                            self.latencies.append((acked - t0, now - acked))
            if self.stop.is_set() and time.monotonic() - t0 > self.seconds + 120:
                return  # whatever is still pending after two minutes is reported as such
            time.sleep(0.25)

    def sample(self, t0: float) -> None:
        while not self.stop.wait(5):
            row: dict[str, Any] = {"t": time.monotonic() - t0}
            for name, proc in self.procs.items():
                row[f"rss_{name}_mb"] = _rss_mb(proc.pid)
            try:
                row["lag"] = _lag(self.bootstrap, self.group, self.topic)
            except Exception:  # the group may not exist in the first seconds
                row["lag"] = None
            self.samples.append(row)

    def run(self) -> dict[str, Any]:
        self.start()
        t0 = time.monotonic()
        threads = [
            threading.Thread(target=self.send),
            threading.Thread(target=self.probe, args=(t0,)),
            threading.Thread(target=self.sample, args=(t0,)),
        ]
        for th in threads:
            th.start()
        threads[0].join()
        self.stop.set()
        for th in threads[1:]:
            th.join()
        for proc in self.procs.values():
            proc.terminate()
            proc.wait(timeout=60)
        return self.report()

    def report(self) -> dict[str, Any]:
        minutes: list[dict[str, Any]] = []
        last = max(0, math.ceil(self.seconds / 60) - 1)  # the run's edge belongs to its last minute

        def minute(t: float) -> int:
            return min(int(t // 60), last)

        for m in range(last + 1):
            lat = sorted(v for t, v in self.latencies if minute(t) == m)
            rows = [s for s in self.samples if minute(s["t"]) == m]
            if not lat:
                continue
            q = statistics.quantiles(lat, n=100) if len(lat) > 1 else [lat[0]] * 99
            minutes.append(
                {
                    "minute": m + 1,
                    "traces": len(lat),
                    "p50_ms": q[49] * 1e3,
                    "p95_ms": q[94] * 1e3,
                    "p99_ms": q[98] * 1e3,
                    "max_lag": max((r["lag"] or 0) for r in rows) if rows else None,
                    **{
                        k: max(r[k] for r in rows)
                        for k in (rows[0] if rows else {})
                        if k.startswith("rss_")
                    },
                }
            )
        return {
            "rate_requests_per_s": self.rate,
            "spans_per_s": self.rate * SPANS_PER_RUN,
            "seconds": self.seconds,
            "traces_queryable": len(self.latencies),
            "traces_never_queryable": len(self.sent),
            "minutes": minutes,
            "samples": self.samples,
        }


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2, ax3) = plt.subplots(3, 1, figsize=(9, 9), sharex=True)
    minutes = [m["minute"] - 0.5 for m in result["minutes"]]  # each minute at its middle
    for key in ("p50_ms", "p95_ms", "p99_ms"):
        ax1.plot(minutes, [m[key] for m in result["minutes"]], marker="o", label=key[:3])
    ax1.set_ylabel("ingest-to-queryable (ms)")
    ax1.legend()
    samples = result["samples"]
    ts = [s["t"] / 60 for s in samples]
    ax2.plot(ts, [s["lag"] or 0 for s in samples])
    ax2.set_ylabel("consumer lag (records)")
    for key in [k for k in (samples[0] if samples else {}) if k.startswith("rss_")]:
        ax3.plot(ts, [s[key] for s in samples], label=key[4:-3])
    ax3.set_ylabel("RSS (MB)")
    ax3.set_xlabel("minutes")
    ax3.legend()
    fig.suptitle(
        f"AgentLedger soak: {result['spans_per_s']:.0f} spans/s, collector -> Kafka -> 2 consumers"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--rate", type=float, default=40.0, help="requests/s of one 5-span agent run")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "soak")
    args = ap.parse_args()
    bootstrap = os.environ.get("AGENTLEDGER_KAFKA_BOOTSTRAP_SERVERS")
    if not bootstrap:
        sys.exit("set AGENTLEDGER_KAFKA_BOOTSTRAP_SERVERS (deploy/kafka/kafka.sh start prints it)")
    result = Soak(bootstrap, args.rate, args.minutes).run()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "soak.json").write_text(json.dumps(result, indent=1))
    plot(result, args.out / "soak.png")
    print(
        f"soak: {result['spans_per_s']:.0f} spans/s for {args.minutes:g} min; "
        f"{result['traces_queryable']} traces queryable, {result['traces_never_queryable']} never"
    )
    print("minute  traces  p50 ms  p95 ms  p99 ms  max lag  RSS MB (max per process)")
    for m in result["minutes"]:
        rss = ", ".join(f"{k[4:-3]} {v:.0f}" for k, v in m.items() if k.startswith("rss_"))
        print(
            f"{m['minute']:>6}  {m['traces']:>6}  {m['p50_ms']:>6.0f}  {m['p95_ms']:>6.0f}  "
            f"{m['p99_ms']:>6.0f}  {m['max_lag'] if m['max_lag'] is not None else '-':>7}  {rss}"
        )
    print(f"wrote {args.out / 'soak.json'} and {args.out / 'soak.png'}")


if __name__ == "__main__":
    main()
