"""Runs jobs on an interval in a background thread (embedded server, pipeline process).

A failing pass is logged and the next tick tries again: a store that is
briefly unavailable must not kill the process that ingests. Passes never
overlap (one thread); ``stop`` waits for the pass in flight to finish.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from datetime import datetime, timezone

from agentledger.pipeline.derive.base import Job, JobResult
from agentledger.pipeline.store import Store, StoreUnavailable

__all__ = ["JobScheduler"]

log = logging.getLogger(__name__)


class JobScheduler:
    """Calls ``job.run(store, clock())`` for each job every ``interval_s`` seconds.

    ``first_delay_s`` (default: the interval) delays the first pass so that a
    process starting up is not slowed by it.
    """

    def __init__(
        self,
        store: Store,
        jobs: Sequence[Job],
        interval_s: float,
        *,
        first_delay_s: float | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
    ) -> None:
        if interval_s <= 0:
            raise ValueError("interval_s must be positive")
        self.store = store
        self.jobs = list(jobs)
        self.interval_s = interval_s
        self.first_delay_s = interval_s if first_delay_s is None else first_delay_s
        self.clock = clock
        self.passes = 0
        self.failures = 0
        self.last_results: list[JobResult] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="agentledger-jobs", daemon=True)

    def start(self) -> JobScheduler:
        self._thread.start()
        return self

    def stop(self, timeout: float = 60.0) -> None:
        """Ask the loop to end and wait for the pass in flight; safe to call twice."""
        self._stop.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        """The loop thread is alive: a stopped scheduler runs no further pass."""
        return self._thread.is_alive()

    def run_once(self) -> list[JobResult]:
        """One pass of every job, in order; a failing job is logged and the next one still runs."""
        results = []
        for job in self.jobs:
            try:
                results.append(job.run(self.store, self.clock()))
            except StoreUnavailable as exc:
                self.failures += 1
                log.warning("job %s: store unavailable, retrying next pass: %s", job.name, exc)
            except Exception:  # a bug in one job must not stop the others or the process
                self.failures += 1
                log.exception("job %s failed", job.name)
        self.passes += 1
        self.last_results = results
        return results

    def _loop(self) -> None:
        if self._stop.wait(self.first_delay_s):
            return
        while True:
            self.run_once()
            if self._stop.wait(self.interval_s):
                return
