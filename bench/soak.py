"""Soak: collector -> Kafka -> two pipeline consumers -> ClickHouse, at a fixed rate, for a fixed time.

Reports, per minute: ingest-to-queryable latency p50/p95/p99 (from the collector's 200 to the
trace being readable in the store), the consumer group's lag, and the resident memory of every
process (collector, both consumers, the database); flat memory is the goal. Writes the series as
JSON and a PNG plot (``--out``, default docs/soak/).

The database is the tests' chDB-backed ClickHouse HTTP endpoint in a process of its own
(production's topology: consumers talk to a server through clickhouse-connect). Kafka: the broker
of AGENTLEDGER_KAFKA_BOOTSTRAP_SERVERS. The processes, the open-loop load and the probe are
bench/cluster_stack.py's, shared with bench/cluster_rate.py and bench/cluster_faults.py.

Run: ``.venv/bin/python bench/soak.py --minutes 10 --rate 40`` (requests/s of one 5-span run).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.cluster_stack import Load, Probe, Stack, quantiles  # noqa: E402
from bench.kafka_path import ROOT  # noqa: E402
from bench.traffic import SPANS_PER_RUN  # noqa: E402


class Soak:
    def __init__(self, bootstrap: str, rate: float, minutes: float) -> None:
        self.rate, self.seconds = rate, minutes * 60
        self.stack = Stack(bootstrap, partitions=4, prefix="soak")
        self.samples: list[dict[str, Any]] = []
        self.stop = threading.Event()

    def sample(self, t0: float) -> None:
        while not self.stop.wait(5):
            row: dict[str, Any] = {"t": time.monotonic() - t0}
            for name, mb in self.stack.rss().items():
                row[f"rss_{name}_mb"] = mb
            row["lag"] = self.stack.lag()  # None in the first seconds, before the group exists
            self.samples.append(row)

    def run(self) -> dict[str, Any]:
        try:
            self.stack.start(collectors=1, consumers=2)
            self.probe = Probe(self.stack.db_url, self.stack.database).start()
            load = Load(self.stack, self.rate, self.seconds, seed=7, threads=4, probe=self.probe)
            t0 = time.monotonic()
            sampler = threading.Thread(target=self.sample, args=(t0,))
            sampler.start()
            load.run()
            self.stop.set()
            sampler.join()
            self.probe.drain(timeout=120)  # still pending after two minutes: reported as such
        finally:
            self.stack.close()
        self.latencies = [(acked - t0, v) for acked, v in self.probe.latencies]
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
            minutes.append(
                {
                    "minute": m + 1,
                    "traces": len(lat),
                    **quantiles(lat),
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
            "traces_never_queryable": len(self.probe.pending),
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
