"""Runs jobs on an interval in a background thread (embedded server, pipeline process).

A failing pass is logged and the next tick tries again: a store that is
briefly unavailable must not kill the process that ingests. Passes never
overlap (one thread); ``stop`` waits for the pass in flight to finish.

Ingest comes first: while the process is busy storing what agents send (``busy``), a due pass
waits, up to ``max_deferral_s``, so that detection queries do not take the engine's cores from
acknowledgements in the middle of a burst; past that it runs anyway, so a steady load cannot
starve detection. Reads stay fresh meanwhile: usage reads aggregate the hours the rollup has
not reached from ``spans`` itself (``derive.usage``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone

from agentledger.pipeline.derive.base import Job, JobResult
from agentledger.pipeline.store import Store, StoreUnavailable

__all__ = ["JobScheduler"]

log = logging.getLogger(__name__)

_BUSY_POLL_S = 0.25


class JobScheduler:
    """Calls ``job.run(store, clock())`` for each job every ``interval_s`` seconds.

    ``first_delay_s`` (default: the interval) delays the first pass so that a
    process starting up is not slowed by it. ``busy`` (e.g. the embedded sink's) defers a due
    pass while it answers true, for at most ``max_deferral_s`` (default: the interval).
    """

    def __init__(
        self,
        store: Store,
        jobs: Sequence[Job],
        interval_s: float,
        *,
        first_delay_s: float | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
        busy: Callable[[], bool] | None = None,
        max_deferral_s: float | None = None,
    ) -> None:
        if interval_s <= 0:
            raise ValueError("interval_s must be positive")
        self.busy = busy
        self.max_deferral_s = interval_s if max_deferral_s is None else max_deferral_s
        self.deferred_passes = 0  # passes that waited for ingest to quiet down
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

    def _yield_to_ingest(self) -> bool:
        """Wait while ``busy`` says ingest is under way, up to ``max_deferral_s``; False when
        asked to stop meanwhile."""
        if self.busy is None or not self.busy():
            return True
        self.deferred_passes += 1
        deadline = time.monotonic() + self.max_deferral_s
        while time.monotonic() < deadline:
            if self._stop.wait(_BUSY_POLL_S):
                return False
            if not self.busy():
                break
        return True

    def _loop(self) -> None:
        if self._stop.wait(self.first_delay_s):
            return
        while True:
            if not self._yield_to_ingest():
                return
            self.run_once()
            if self._stop.wait(self.interval_s):
                return
