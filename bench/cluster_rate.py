"""The highest rate the three-broker cluster path sustains: collector -> Kafka -> two consumers.

Steps the offered rate up (``--steps``, spans/s) on one running stack (bench/cluster_stack.py: one
collector, the topic at replication 3 on the cluster of AGENTLEDGER_KAFKA_BOOTSTRAP_SERVERS, two
``agentledger pipeline run`` consumers in one group, the chDB-backed ClickHouse endpoint). Per
step: spans/s offered (the schedule), acknowledged (200 from the collector) and stored (the
consumers' counters), ingest-to-queryable p50/p95/p99 of the traces acknowledged in the step, the
group's lag at the step's start and end, and each process's CPU as a share of one core.

A step is sustained when the acknowledged rate is within 5% of the offered one, the lag at its end
is under five seconds of records or below the lag at its start (a lag that grows through the step
means the consumers fall behind, however good the latency of the traces already stored looks),
and p99 is under ``--p99-bound`` (5 s; p99 is taken once the probe drained, so the traces of a
step that fell behind count with their whole wait). The sustained rate is the highest such step;
stepping stops at the first step that does not keep up. Writes docs/soak/cluster_rate.json.

Run (the cluster from deploy/kafka/cluster.sh):
``AGENTLEDGER_KAFKA_BOOTSTRAP_SERVERS=$(deploy/kafka/cluster.sh bootstrap)
AGENTLEDGER_KAFKA_REPLICATION_FACTOR=3 .venv/bin/python bench/cluster_rate.py``
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.cluster_stack import Load, Probe, Stack, loadavg, quantiles  # noqa: E402
from bench.kafka_path import ROOT  # noqa: E402
from bench.traffic import SPANS_PER_RUN  # noqa: E402

DAY_NS = 86_400 * 10**9


def _counters(stack: Stack) -> tuple[int, int, float]:
    """Spans stored, batches and seconds spent in batches, summed over the consumers."""
    spans = batches = 0
    seconds = 0.0
    for name in stack.status_ports:
        status = stack.consumer_status(name)
        if status:
            spans += int(status["spans"])
            batches += int(status["batches"])
            seconds += float(status["batch_seconds"]["sum"])
    return spans, batches, seconds


def run_step(
    stack: Stack, probe: Probe, index: int, spans_per_s: float, seconds: float, runs: int
) -> dict[str, Any]:
    """One step; the load's runs start on a day of their own so that the probe's lookups of
    one step do not scan the rows of the others."""
    rate = spans_per_s / (runs * SPANS_PER_RUN)
    threads = max(4, min(32, int(rate)))  # in flight: about a second's worth of requests
    load = Load(
        stack,
        rate,
        seconds,
        runs_per_request=runs,
        seed=1000 + index,
        start_ns=1_790_000_000_000_000_000 + index * 30 * DAY_NS,
        threads=threads,
        probe=probe,
    )
    lags: list[int] = []
    done = threading.Event()

    def sample() -> None:
        while not done.wait(5):
            lag = stack.lag()
            if lag is not None:
                lags.append(lag)

    start_offsets, cpu0, (stored0, batches0, busy0) = stack.offsets(), stack.cpu(), _counters(stack)
    t0 = time.monotonic()
    sampler = threading.Thread(target=sample)
    sampler.start()
    load.run()
    elapsed = time.monotonic() - t0
    end_offsets, cpu1, (stored1, batches1, busy1) = stack.offsets(), stack.cpu(), _counters(stack)
    done.set()
    sampler.join()
    with probe.lock:
        pending = sum(1 for t in probe.pending.values() if t0 <= t < t0 + elapsed)
    records_per_s = (
        (end_offsets[1] - start_offsets[1]) / elapsed if start_offsets and end_offsets else 0.0
    )
    row: dict[str, Any] = {
        "offered_spans_per_s": spans_per_s,
        "requests_per_s": rate,
        "spans_per_request": runs * SPANS_PER_RUN,
        "seconds": elapsed,
        "sent_spans_per_s": load.sent * runs * SPANS_PER_RUN / elapsed,
        "acked_spans_per_s": load.acked_spans / elapsed,
        "stored_spans_per_s": (stored1 - stored0) / elapsed,
        "batches": batches1 - batches0,
        "mean_batch_ms": 1e3 * (busy1 - busy0) / max(1, batches1 - batches0),
        "retries": load.retries,
        "given_up": load.given_up,
        "traces_pending_at_step_end": pending,
        "acked_from": t0,  # the step's traces, by acknowledgement time (monotonic clock)
        "lag_start": start_offsets[0] if start_offsets else None,
        "lag_end": end_offsets[0] if end_offsets else None,
        "lag_max": max(lags, default=None),
        "records_per_s": records_per_s,
        "cpu_percent": {name: 100 * (cpu1[name] - cpu0.get(name, 0.0)) / elapsed for name in cpu1},
        "loadavg": loadavg(),
    }
    return row


def keeps_up(row: dict[str, Any]) -> bool:
    """Acknowledged what was offered, and the lag at the step's end is under 5 s of records (a
    longer backlog alone puts a new trace over the 5 s p99 bound) or smaller than at its start."""
    end, start = row["lag_end"], row["lag_start"]
    lag_ok = end is not None and (
        end <= 5 * max(row["records_per_s"], 1.0) or (start is not None and end <= start)
    )
    return row["acked_spans_per_s"] >= 0.95 * row["offered_spans_per_s"] and lag_ok


def add_latencies(row: dict[str, Any], probe: Probe, p99_bound_s: float) -> None:
    """After the probe drained, so that the traces of a step that fell behind count with their
    whole wait, not only those already readable when the step ended."""
    t0 = row.pop("acked_from")
    values = [v for t, v in probe.latencies if t0 <= t < t0 + row["seconds"]]
    row["traces_queryable"] = len(values)
    row.update(quantiles(values))
    row["sustained"] = keeps_up(row) and row.get("p99_ms", float("inf")) <= p99_bound_s * 1e3


def print_table(rows: list[dict[str, Any]]) -> None:
    print(
        "offered  acked  stored  p50 ms  p95 ms  p99 ms  batch ms  lag start->end (max)  "
        "CPU % (collector, consumers, database, bench)  load avg  sustained"
    )
    for r in rows:
        cpu = r["cpu_percent"]
        consumers = "+".join(f"{v:.0f}" for k, v in cpu.items() if k.startswith("consumer"))
        print(
            f"{r['offered_spans_per_s']:>7.0f} {r['acked_spans_per_s']:>6.0f} "
            f"{r['stored_spans_per_s']:>7.0f} {r.get('p50_ms', 0):>7.0f} {r.get('p95_ms', 0):>7.0f} "
            f"{r.get('p99_ms', 0):>7.0f} {r['mean_batch_ms']:>9.0f}  "
            f"{r['lag_start']}->{r['lag_end']} ({r['lag_max']})  "
            f"{cpu.get('collector', 0):.0f}, {consumers}, {cpu.get('database', 0):.0f}, "
            f"{cpu.get('bench', 0):.0f}  {r['loadavg']}  {'yes' if r['sustained'] else 'NO'}"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--steps", default="200,400,800,1600,3200", help="offered spans/s, ascending")
    ap.add_argument("--seconds", type=float, default=60.0, help="length of each step")
    ap.add_argument(
        "--runs-per-request",
        type=int,
        default=4,
        help="agent runs (5 spans each) per OTLP request, as an SDK's batch exporter sends them",
    )
    ap.add_argument("--p99-bound", type=float, default=5.0, help="seconds")
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "soak" / "cluster_rate.json")
    args = ap.parse_args()
    bootstrap = os.environ.get("AGENTLEDGER_KAFKA_BOOTSTRAP_SERVERS")
    if not bootstrap:
        sys.exit("set AGENTLEDGER_KAFKA_BOOTSTRAP_SERVERS (deploy/kafka/cluster.sh bootstrap)")
    stack = Stack(bootstrap, partitions=args.partitions, prefix="rate")
    rows: list[dict[str, Any]] = []
    try:
        stack.start(collectors=1, consumers=2)
        probe = Probe(stack.db_url, stack.database).start()
        deadline = time.monotonic() + 120
        while not stack.consumers_ready() and time.monotonic() < deadline:
            time.sleep(0.5)
        steps = [float(s) for s in args.steps.split(",")]
        rate0 = steps[0] / SPANS_PER_RUN / args.runs_per_request
        warm = Load(
            stack,
            rate0,
            20.0,
            runs_per_request=args.runs_per_request,
            seed=999,
            threads=4,
            probe=probe,
        )
        warm.run()  # not reported: the group forming and the schema being created
        deadline = time.monotonic() + 120
        while not stack.consumers_storing() and time.monotonic() < deadline:
            time.sleep(0.5)
        probe.settled(backlog=0, timeout=120)
        for i, spans_per_s in enumerate(steps, start=1):
            row = run_step(stack, probe, i, spans_per_s, args.seconds, args.runs_per_request)
            rows.append(row)
            print(
                f"step {spans_per_s:.0f} spans/s: acked {row['acked_spans_per_s']:.0f}, "
                f"stored {row['stored_spans_per_s']:.0f}, lag {row['lag_start']}->"
                f"{row['lag_end']}, load avg {row['loadavg']}",
                flush=True,
            )
            if not keeps_up(row):
                break
        probe.drain(timeout=180)
        for row in rows:
            add_latencies(row, probe, args.p99_bound)
    finally:
        stack.close()
    best = max((r["offered_spans_per_s"] for r in rows if r["sustained"]), default=None)
    result = {
        "topology": "1 collector -> Kafka (3 brokers, RF 3, min.insync.replicas 2, "
        f"{args.partitions} partitions) -> 2 pipeline consumers (one group) -> ClickHouse "
        "(chDB-backed HTTP endpoint)",
        "p99_bound_s": args.p99_bound,
        "runs_per_request": args.runs_per_request,
        "sustained_spans_per_s": best,
        "traces_never_queryable": len(probe.pending),
        "steps": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print_table(rows)
    print(f"sustained: {best} spans/s (p99 <= {args.p99_bound:g} s, lag bounded); wrote {args.out}")


if __name__ == "__main__":
    main()
