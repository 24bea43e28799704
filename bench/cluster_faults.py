"""Ingest-to-queryable latency through the faults of tests/cluster, under a steady load.

Each fault gets a fresh stack (bench/cluster_stack.py: collector(s) -> the topic at replication 3
on the three-broker cluster -> two ``agentledger pipeline run`` consumers in one group -> the
chDB-backed ClickHouse endpoint) and the same open-loop load (``--rate`` spans/s of one 5-span
agent run per request; a request answered 429/503 or not at all is sent again to a collector, as
an exporter does). Once every consumer has stored a batch (the group formed with both) and the
backlog is under two seconds of traffic, a
baseline of ``--baseline`` seconds is measured, then the fault is injected:

* ``leader-kill``: the leader of the spans topic's partition 0 killed with -9, restarted after
  ``--down`` seconds (deploy/kafka/cluster.sh kill9 / start-node);
* ``pipeline-kill``: one of the two consumers killed with -9 mid-batch and a third one started;
* ``store-stall``: the store answers 503 to everything for 30 s;
* ``collector-kill``: two collector replicas taking requests in turn; one killed with -9 with
  requests in flight (the sender retries those at the other).

The broker fault runs last: a restarted broker catches up and takes its partitions' leadership
back (Kafka's preferred-leader election) for minutes after, which would fall into the baselines of
the faults after it.

Reported per fault, from the acknowledgement (200) of every request to its trace being readable:
p99 over 10 s windows (by acknowledgement time) from the fault to ``--recovery`` seconds after it
ended, the worst of those windows, the seconds from the fault until every later window's p99 was
back under the steady-state bound (twice the p99 of the baseline before the fault, its last 10 s
left out, at least 1 s),
and the traces acknowledged versus stored (equal, or something was lost). Writes
docs/soak/cluster_faults.json.

Run: ``KAFKA_CLUSTER_DIR=... AGENTLEDGER_KAFKA_BOOTSTRAP_SERVERS=$(deploy/kafka/cluster.sh
bootstrap) AGENTLEDGER_KAFKA_REPLICATION_FACTOR=3 .venv/bin/python bench/cluster_faults.py``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.cluster_stack import Load, Probe, Stack, loadavg, quantiles  # noqa: E402
from bench.kafka_path import ROOT  # noqa: E402
from bench.traffic import SPANS_PER_RUN  # noqa: E402

CLUSTER_SH = ROOT / "deploy" / "kafka" / "cluster.sh"
FAULTS = ("pipeline-kill", "store-stall", "collector-kill", "leader-kill")  # leader last: see below
WINDOW_S = 10.0


def cluster_sh(*command: str) -> str:
    out = subprocess.run(
        [str(CLUSTER_SH), *command], capture_output=True, text=True, timeout=240, check=True
    )
    return out.stdout.strip()


def partition_leader(bootstrap: str, topic: str, partition: int = 0) -> int:
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        (described,) = admin.describe_topics([topic])
        (found,) = [p for p in described["partitions"] if p["partition_index"] == partition]
        return int(found["leader_id"])
    finally:
        admin.close()


def inject(fault: str, stack: Stack, down_s: float) -> dict[str, Any]:
    """Start the fault; returns once it is over (the node back, the store answering, ...)."""
    if fault == "leader-kill":
        leader = partition_leader(stack.bootstrap, stack.topic)
        cluster_sh("kill9", str(leader))
        time.sleep(down_s)  # the outage itself: the node stays dead this long
        cluster_sh("start-node", str(leader))  # returns when the node answers again
        return {"killed_node": leader}
    if fault == "pipeline-kill":
        stack.kill("consumer1")
        stack.add_consumer("consumer3")
        return {"killed": "consumer1", "added": "consumer3"}
    if fault == "store-stall":
        stack.set_store_available(False)
        try:
            time.sleep(30)  # the stall itself
        finally:
            stack.set_store_available(True)
        return {"stalled_s": 30}
    if fault == "collector-kill":
        stack.kill("collector1")
        return {"killed": "collector1", "left": sorted(stack.urls)}
    raise ValueError(fault)


def windows(latencies: list[tuple[float, float]], start: float, end: float) -> list[dict[str, Any]]:
    out = []
    t = start
    while t < end:
        values = [v for a, v in latencies if t <= a < t + WINDOW_S]
        out.append({"from_s": t - start, "traces": len(values), **quantiles(values)})
        t += WINDOW_S
    return out


def run_fault(fault: str, bootstrap: str, args: argparse.Namespace) -> dict[str, Any]:
    stack = Stack(bootstrap, partitions=4, prefix=f"f{fault.split('-')[0][:5]}")
    try:
        stack.start(collectors=2 if fault == "collector-kill" else 1, consumers=2)
        deadline = time.monotonic() + 120
        while not stack.consumers_ready() and time.monotonic() < deadline:
            time.sleep(0.5)
        probe = Probe(stack.db_url, stack.database).start()
        rate = args.rate / SPANS_PER_RUN
        total = args.baseline + args.down + 30 + args.recovery + 120  # ended by stop, not by this
        load = Load(stack, rate, total, seed=200 + FAULTS.index(fault), threads=16, probe=probe)
        loader = threading.Thread(target=load.run)
        loader.start()
        deadline = time.monotonic() + 180
        while not stack.consumers_storing() and time.monotonic() < deadline:
            time.sleep(0.5)
        settled = probe.settled(backlog=int(2 * rate), timeout=120)
        baseline_at = time.monotonic()
        time.sleep(args.baseline)
        fault_at = time.monotonic()
        lag_before = stack.lag()
        detail = inject(fault, stack, args.down)
        fault_end = time.monotonic()
        lags: list[tuple[float, int | None]] = [(fault_end - fault_at, stack.lag())]
        while time.monotonic() < fault_end + args.recovery:
            time.sleep(5)
            lags.append((time.monotonic() - fault_at, stack.lag()))
        load.stop.set()
        loader.join()
        probe.drain(timeout=240)
        ended = time.monotonic()
        import clickhouse_connect

        client = clickhouse_connect.get_client(dsn=stack.db_url, database=stack.database)
        stored_traces, rows, distinct = client.query(
            "SELECT uniqExact(trace_id), count(), uniqExact(trace_id, span_id) FROM spans"
        ).result_rows[0]
    finally:
        stack.close()
    lat = probe.latencies
    # not the last 10 s: those traces may still be on their way when the fault strikes
    baseline = [v for a, v in lat if baseline_at <= a < fault_at - WINDOW_S]
    base_q = quantiles(baseline)
    bound_s = max(1.0, 2 * base_q.get("p99_ms", 500) / 1e3)
    win = windows(lat, fault_at, min(ended, fault_end + args.recovery))
    worst = max((w.get("p99_ms", 0.0) for w in win), default=0.0)
    acks = windows(load.ack_delays, fault_at, min(ended, fault_end + args.recovery))
    over = [w["from_s"] for w in win if w.get("p99_ms", 0.0) > bound_s * 1e3]
    recovered_s = (max(over) + WINDOW_S) if over else 0.0
    return {
        "fault": fault,
        **detail,
        "spans_per_s": args.rate,
        "fault_seconds": fault_end - fault_at,
        "settled_before_baseline": settled,
        "baseline": base_q,
        "bound_s": bound_s,
        "worst_p99_ms": worst,
        "recovered_after_s": recovered_s if not over or max(over) < win[-1]["from_s"] else None,
        "windows": win,
        "worst_ack_p99_ms": max((w.get("p99_ms", 0.0) for w in acks), default=0.0),
        "ack_windows": acks,
        "lag_before": lag_before,
        "lag": lags,
        "acked_traces": load.acked,
        "retries": load.retries,
        "given_up": load.given_up,
        "stored_traces": stored_traces,
        "stored_rows": rows,
        "stored_distinct_spans": distinct,
        "never_queryable": len(probe.pending),
        "exact": stored_traces == load.acked and rows == distinct == load.acked * SPANS_PER_RUN,
        "loadavg": loadavg(),
    }


def print_table(rows: list[dict[str, Any]]) -> None:
    print(
        "fault            baseline p99  bound  worst 10-s p99  back under bound after  "
        "send-to-200 worst p99  acked/stored traces  retries  exact  load avg"
    )
    for r in rows:
        back = "never" if r["recovered_after_s"] is None else f"{r['recovered_after_s']:.0f} s"
        print(
            f"{r['fault']:<16} {r['baseline'].get('p99_ms', 0):>8.0f} ms  {r['bound_s']:.1f} s  "
            f"{r['worst_p99_ms'] / 1e3:>10.1f} s  {back:>22}  "
            f"{r['worst_ack_p99_ms'] / 1e3:>19.1f} s  "
            f"{r['acked_traces']:>8}/{r['stored_traces']:<8}  {r['retries']:>7}  "
            f"{'yes' if r['exact'] else 'NO':>5}  {r['loadavg']}"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--faults", default=",".join(FAULTS))
    ap.add_argument("--rate", type=float, default=200.0, help="spans/s (5-span runs)")
    ap.add_argument("--baseline", type=float, default=40.0, help="seconds before the fault")
    ap.add_argument("--down", type=float, default=20.0, help="seconds the killed broker stays dead")
    ap.add_argument("--recovery", type=float, default=90.0, help="seconds observed after")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "soak" / "cluster_faults.json")
    args = ap.parse_args()
    bootstrap = os.environ.get("AGENTLEDGER_KAFKA_BOOTSTRAP_SERVERS")
    if not bootstrap or not os.environ.get("KAFKA_CLUSTER_DIR"):
        sys.exit("set KAFKA_CLUSTER_DIR and AGENTLEDGER_KAFKA_BOOTSTRAP_SERVERS (cluster.sh)")
    rows = []
    for fault in args.faults.split(","):
        rows.append(run_fault(fault, bootstrap, args))
        print_table(rows[-1:])
    result = {"window_s": WINDOW_S, "faults": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print()
    print_table(rows)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
