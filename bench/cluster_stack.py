"""The production path as separate processes, driven open-loop and timed trace by trace.

Shared by bench/soak.py, bench/cluster_rate.py and bench/cluster_faults.py, so that the three
measure ingest-to-queryable the same way:

* ``Stack``: the database (the tests' chDB-backed ClickHouse HTTP endpoint, in a process of its
  own, which can be told to answer 503 to simulate a stalled store), the topics, collectors and
  ``agentledger pipeline run`` consumers, each a process whose CPU and memory can be read.
* ``Load``: OTLP requests on a fixed schedule (open loop: request n is due at ``n / rate`` s
  whatever happened to earlier ones, since a sender that waits for answers slows down with the
  system and hides the latency). A request answered 429/503 or not answered at all is sent again
  to the next collector, as an SDK exporter behind a load balancer does; it is acknowledged at
  its first 200.
* ``Probe``: which acknowledged traces are readable, all their spans, every 0.25 s; a trace's
  latency runs from its 200 at the collector to the first probe that sees it whole.
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.kafka_path import PB, ROOT, _cpu_seconds, _free_port, _wait_ready  # noqa: E402
from bench.traffic import SPANS_PER_RUN, requests  # noqa: E402

# The endpoint reads "down"/"up" lines on stdin: a store that answers 503 for a while, as the
# fault tests' endpoint.set_available(False) does in-process.
_DATABASE = """
import sys, threading
sys.path.insert(0, sys.argv[3])
from tests.support.chdb_http import ChdbHttpEndpoint
ep = ChdbHttpEndpoint(sys.argv[1], port=int(sys.argv[2]))
ep.start()
print("ready", flush=True)
for line in sys.stdin:
    ep.set_available(line.strip() != "down")
    print("ok", flush=True)
threading.Event().wait()
"""


def loadavg() -> str:
    """The 1, 5 and 15 minute load averages: the machine is shared, so every figure carries it."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def group_lag(bootstrap: str, group: str, topic: str) -> int:
    """Records on the topic that the group has not committed yet."""
    return topic_offsets(bootstrap, group, topic)[0]


def topic_offsets(bootstrap: str, group: str, topic: str) -> tuple[int, int]:
    """(lag, records written to the topic so far)."""
    from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        ends = consumer.end_offsets(parts)
        committed = admin.list_group_offsets({group: None}).get(group, {})
        lag = sum(
            end - max(0, committed[tp].offset if tp in committed else 0) for tp, end in ends.items()
        )
        return lag, sum(ends.values())
    finally:
        consumer.close()
        admin.close()


def quantiles(values: list[float]) -> dict[str, float]:
    """p50/p95/p99 in ms (NaN-free: one value stands for all three)."""
    if not values:
        return {}
    q = statistics.quantiles(values, n=100) if len(values) > 1 else [values[0]] * 99
    return {"p50_ms": q[49] * 1e3, "p95_ms": q[94] * 1e3, "p99_ms": q[98] * 1e3}


class Stack:
    """Database, topics, collectors and consumers of one run, on their own topic and database."""

    def __init__(self, bootstrap: str, partitions: int = 4, prefix: str = "soak") -> None:
        self.bootstrap = bootstrap
        tag = uuid.uuid4().hex[:8]
        self.topic, self.group = f"{prefix}{tag}.spans", f"{prefix}{tag}"
        self.database = f"{prefix}_{tag}"
        self.env = {
            **os.environ,
            "AGENTLEDGER_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "AGENTLEDGER_KAFKA_SPANS_TOPIC": self.topic,
            "AGENTLEDGER_KAFKA_DEAD_LETTER_TOPIC": f"{prefix}{tag}.dlq",
            "AGENTLEDGER_KAFKA_GROUP_ID": self.group,
            "AGENTLEDGER_KAFKA_PARTITIONS": str(partitions),
            "AGENTLEDGER_DATABASE": self.database,
            "AGENTLEDGER_BATCH_MAX_SECONDS": "0.5",
        }
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.urls: dict[str, str] = {}  # collector name -> base URL
        self.status_ports: dict[str, int] = {}  # consumer name -> metrics port
        self.db_url = ""

    def start(self, collectors: int = 1, consumers: int = 2) -> None:
        port = _free_port()
        database = subprocess.Popen(
            [sys.executable, "-c", _DATABASE, tempfile.mkdtemp(prefix="bench-ch-"), str(port)]
            + [str(ROOT)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        assert database.stdout is not None and database.stdout.readline().strip() == b"ready"
        self.procs["database"] = database
        self.env["AGENTLEDGER_CLICKHOUSE_URL"] = self.db_url = f"http://127.0.0.1:{port}"
        subprocess.run(
            [sys.executable, "-m", "agentledger.cli", "pipeline", "topics"],
            env=self.env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        for i in range(1, collectors + 1):
            self.add_collector(f"collector{i}" if collectors > 1 else "collector")
        for i in range(1, consumers + 1):
            self.add_consumer(f"consumer{i}")

    def add_collector(self, name: str) -> None:
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        self.procs[name] = subprocess.Popen(
            [sys.executable, "-m", "agentledger.cli", "collector", "--no-auth", "--host"]
            + ["127.0.0.1", "--port", str(port), "--log-level", "warning"],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        _wait_ready(url, self.procs[name])
        self.urls = {**self.urls, name: url}  # replaced, not changed: senders read it unlocked

    def add_consumer(self, name: str) -> None:
        self.status_ports[name] = _free_port()
        self.procs[name] = subprocess.Popen(
            [sys.executable, "-m", "agentledger.cli", "pipeline", "run", "--log-level", "warning"],
            env={**self.env, "AGENTLEDGER_METRICS_PORT": str(self.status_ports[name])},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )

    def kill(self, name: str) -> None:
        """SIGKILL: whatever the process was doing (a batch, requests in flight) dies with it."""
        proc = self.procs.pop(name)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        self.urls = {k: v for k, v in self.urls.items() if k != name}
        self.status_ports.pop(name, None)

    def set_store_available(self, available: bool) -> None:
        database = self.procs["database"]
        assert database.stdin is not None and database.stdout is not None
        database.stdin.write(b"up\n" if available else b"down\n")
        database.stdin.flush()
        assert database.stdout.readline().strip() == b"ok"

    def consumers_ready(self) -> bool:
        return all(self.consumer_status(n) is not None for n in self.status_ports)

    def consumers_storing(self) -> bool:
        """Every consumer has stored a batch: the group formed with all of them, so the
        rebalances of their joining are over."""
        statuses = [self.consumer_status(n) for n in self.status_ports]
        return all(s is not None and s["spans"] > 0 for s in statuses)

    def consumer_status(self, name: str) -> dict[str, Any] | None:
        try:
            url = f"http://127.0.0.1:{self.status_ports[name]}/status"
            return dict(httpx.get(url, timeout=2).json())
        except (httpx.HTTPError, ValueError):
            return None

    def cpu(self) -> dict[str, float]:
        """CPU seconds so far of every process, this benchmark's own (load and probe) included."""
        out = {name: _cpu_seconds(p.pid) for name, p in self.procs.items() if p.poll() is None}
        out["bench"] = _cpu_seconds(os.getpid())
        return out

    def rss(self) -> dict[str, float]:
        return {name: rss_mb(p.pid) for name, p in self.procs.items() if p.poll() is None}

    def lag(self) -> int | None:
        offsets = self.offsets()
        return offsets[0] if offsets else None

    def offsets(self) -> tuple[int, int] | None:
        try:
            return topic_offsets(self.bootstrap, self.group, self.topic)
        except Exception:  # the group may not exist yet, or its coordinator is moving
            return None

    def close(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def trace_ids(req: Any) -> list[str]:
    return sorted({s.trace_id.hex() for s in req.resource_spans[0].scope_spans[0].spans})


class Load:
    """``rate`` requests/s of ``runs_per_request`` agent runs each, from ``threads`` senders."""

    def __init__(
        self,
        stack: Stack,
        rate: float,
        seconds: float,
        *,
        runs_per_request: int = 1,
        seed: int = 7,
        start_ns: int = 1_790_000_000_000_000_000,
        threads: int = 1,
        probe: Probe,
    ) -> None:
        self.stack, self.rate, self.seconds = stack, rate, seconds
        self.probe, self.threads = probe, threads
        n = int(rate * seconds) + 1
        self._reqs: Iterator[Any] = iter(
            requests(n * runs_per_request, runs_per_request, seed=seed, start_ns=start_ns)
        )
        self._next = 0
        self._lock = threading.Lock()
        self.stop = threading.Event()
        self.sent = self.acked = self.retries = self.given_up = 0
        self.acked_spans = 0
        self.ack_delays: list[tuple[float, float]] = []  # (ack time, seconds from due to 200)
        self.started = 0.0

    def _take(self) -> tuple[float, Any] | None:
        with self._lock:
            req = next(self._reqs, None)
            due = self.started + self._next / self.rate
            self._next += 1
        if req is None or due - self.started > self.seconds or self.stop.is_set():
            return None
        return due, req

    def _send_one(self, client: httpx.Client, body: bytes) -> bool:
        """Send until a collector answers 200 (next collector on a failure), up to 60 s."""
        deadline = time.monotonic() + 60
        attempt = 0
        while time.monotonic() < deadline:
            urls = list(self.stack.urls.values())
            if not urls:
                return False
            url = urls[(self.sent + attempt) % len(urls)]
            try:
                response = client.post(f"{url}/v1/traces", content=body, headers=PB)
                if response.status_code == 200:
                    return True
                if response.status_code not in (429, 503):
                    raise RuntimeError(f"{response.status_code}: {response.text[:200]}")
            except httpx.TransportError:
                pass
            attempt += 1
            with self._lock:
                self.retries += 1
            time.sleep(min(1.0, 0.05 * attempt))
        return False

    def _sender(self) -> None:
        with httpx.Client(timeout=30) as client:
            while (item := self._take()) is not None:
                due, req = item
                time.sleep(max(0.0, due - time.monotonic()))
                with self._lock:
                    self.sent += 1
                if self._send_one(client, req.SerializeToString()):
                    spans = sum(len(s.spans) for s in req.resource_spans[0].scope_spans)
                    now = time.monotonic()
                    with self._lock:
                        self.acked += 1
                        self.acked_spans += spans
                        self.ack_delays.append((now, now - due))
                    self.probe.acked(trace_ids(req), now)
                else:
                    with self._lock:
                        self.given_up += 1

    def run(self) -> None:
        """Blocks until the schedule is done (or ``stop`` is set) and every sender returned."""
        self.started = time.monotonic()
        senders = [threading.Thread(target=self._sender) for _ in range(self.threads)]
        for th in senders:
            th.start()
        for th in senders:
            th.join()


class Probe:
    """Polls the store for acknowledged traces; ``latencies`` holds (ack time, seconds to
    queryable), ack time on the monotonic clock."""

    def __init__(self, db_url: str, database: str, chunk: int = 5000) -> None:
        self.db_url, self.database, self.chunk = db_url, database, chunk
        self.pending: dict[str, float] = {}
        self.latencies: list[tuple[float, float]] = []
        self.errors = 0
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="probe")

    def acked(self, traces: list[str], at: float) -> None:
        with self.lock:
            for trace in traces:
                self.pending[trace] = at

    def _run(self) -> None:
        import clickhouse_connect

        client = clickhouse_connect.get_client(dsn=self.db_url, database=self.database)
        while not self.stop.is_set():
            with self.lock:
                pending = list(self.pending)[: 4 * self.chunk]
            for i in range(0, len(pending), self.chunk):
                try:
                    rows = client.query(
                        "SELECT trace_id FROM spans WHERE trace_id IN {ids:Array(String)} "
                        "GROUP BY trace_id HAVING count() >= {n:UInt32}",
                        parameters={"ids": pending[i : i + self.chunk], "n": SPANS_PER_RUN},
                    ).result_rows
                except Exception:  # the store is down: nothing is queryable
                    self.errors += 1
                    break
                now = time.monotonic()
                with self.lock:
                    for (trace,) in rows:
                        acked = self.pending.pop(trace, None)
                        if acked is not None:
                            self.latencies.append((acked, now - acked))
            self.stop.wait(0.25)

    def start(self) -> Probe:
        self.thread.start()
        return self

    def settled(self, backlog: int, timeout: float) -> bool:
        """Wait until traces are coming out and at most ``backlog`` wait to be seen: the group
        has formed and the schema exists, so what is measured next is the steady state."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if self.latencies and len(self.pending) <= backlog:
                    return True
            time.sleep(0.25)
        return False

    def drain(self, timeout: float) -> None:
        """Wait until every acknowledged trace was seen whole, or ``timeout`` s passed."""
        deadline = time.monotonic() + timeout
        while self.pending and time.monotonic() < deadline:
            time.sleep(0.25)
        self.stop.set()
        self.thread.join()
