"""What the ingest benchmarks share: the concurrent OTLP/HTTP sender, a server's CPU time from
``/proc``, and waiting for a server to answer.

One sender for ``bench/ingest.py`` and ``bench/vs_phoenix.py``, so that AgentLedger and a peer
are loaded the same way: ``clients`` threads, each with its own keep-alive ``httpx.Client``, take
the next item off one queue and post its requests in order, timing each until its answer.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import httpx

__all__ = [
    "SendResult",
    "parse_stat",
    "percentile",
    "process_cpu_seconds",
    "send_all",
    "tree_cpu_seconds",
    "wait_until",
]

Item = Sequence[tuple[str, bytes]]
"""One unit of work: (path, body) requests one sender posts in order (traces, then its logs)."""


@dataclasses.dataclass
class SendResult:
    """Wall time from the first send to the last answer, each request's latency, and the
    answers that were not 200 (status and the start of the body)."""

    seconds: float
    latencies: list[float]
    errors: list[str]


def send_all(url: str, items: Sequence[Item], headers: dict[str, str], clients: int) -> SendResult:
    """Post every item's requests to ``url`` from ``clients`` concurrent senders."""
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    queue = list(items)

    def post(client: httpx.Client, path: str, body: bytes) -> None:
        t = time.perf_counter()
        resp = client.post(f"{url}{path}", content=body, headers=headers)
        with lock:
            latencies.append(time.perf_counter() - t)
            if resp.status_code != 200:
                errors.append(f"{resp.status_code} {resp.text[:100]}")

    def sender() -> None:
        with httpx.Client(timeout=120) as client:
            while True:
                with lock:
                    if not queue:
                        return
                    item = queue.pop()
                for path, body in item:
                    post(client, path, body)

    threads = [threading.Thread(target=sender) for _ in range(clients)]
    t0 = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return SendResult(time.perf_counter() - t0, latencies, errors)


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) of sorted values, nearest rank below (ingest.py's convention)."""
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * q))]


def parse_stat(text: str) -> tuple[int, int, int]:
    """(pid, parent pid, CPU clock ticks) of one ``/proc/<pid>/stat``: user + system time of the
    process and of its children it has waited for. The command name may hold spaces and
    parentheses, so the fields are split after its last ``)``."""
    head, _, tail = text.rpartition(")")
    fields = tail.split()
    pid = int(head.split("(", 1)[0])
    return pid, int(fields[1]), sum(int(f) for f in fields[11:15])


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (all its threads), from ``/proc/<pid>/stat``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(pid: int, proc: Path = Path("/proc")) -> float:
    """CPU of a process and every live descendant (a server's workers), plus what the ones that
    exited had used (their parents' waited-for children time)."""
    stats: dict[int, tuple[int, int]] = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            p, parent, ticks = parse_stat((entry / "stat").read_text())
        except (OSError, ValueError, IndexError):
            continue  # exited while listed
        stats[p] = (parent, ticks)
    children: dict[int, list[int]] = {}
    for p, (parent, _) in stats.items():
        children.setdefault(parent, []).append(p)
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        if p in stats:
            total += stats[p][1]
            todo.extend(children.get(p, ()))
    return total / os.sysconf("SC_CLK_TCK")


def wait_until(
    ready: Callable[[], bool], what: str, timeout_s: float, alive: Callable[[], bool]
) -> None:
    """Poll ``ready`` until it holds; raise naming ``what`` after ``timeout_s`` or once
    ``alive`` says the process is gone."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if ready():
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or not alive():
            raise RuntimeError(f"{what}: not ready after {timeout_s:.0f} s or exited")
        time.sleep(0.2)
