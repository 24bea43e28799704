"""The job interface: read the store, write derived tables, report what was done.

A job is one method, ``run(store, now)``. Jobs derive tables from ``spans``
(usage rollup, anomalies); the scheduler (``scheduler.py``) calls them on an
interval inside the long-running processes, the CLI calls them once.

Exceptions::

    JobError              the job could not complete (wraps the cause)
    StoreError            (agentledger.pipeline.store) passes through unchanged:
                          the scheduler retries StoreUnavailable on its next tick
"""

from __future__ import annotations

import abc
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from agentledger.pipeline.store import Store

__all__ = ["Job", "JobResult", "JobError", "CallbackJob"]


class JobError(Exception):
    """A job failed for a reason other than the store."""


@dataclass
class JobResult:
    """What one run did: rows written and job-specific figures."""

    job: str
    rows_written: int = 0
    seconds: float = 0.0
    info: dict[str, Any] = field(default_factory=dict)


class Job(abc.ABC):
    """Derives tables from the store.

    Contract: ``run`` is idempotent: running it again over the same data (or
    concurrently in two processes) converges to the same derived rows, never
    duplicates them. It does not raise for an empty store. ``now`` is the
    clock the job reasons with (tests and back-fills pass simulated times);
    it must be timezone-aware UTC.
    """

    name: str = "job"

    @abc.abstractmethod
    def run(self, store: Store, now: datetime) -> JobResult:
        """Do one pass and return what it did."""


class CallbackJob(Job):
    """Test double: counts runs, records each ``now``, optionally raises or calls back."""

    def __init__(
        self, name: str = "callback", fn: Callable[[Store, datetime], None] | None = None
    ) -> None:
        self.name = name
        self.fn = fn
        self.calls: list[datetime] = []
        self.fail_with: Exception | None = None
        self.ran = threading.Event()

    def run(self, store: Store, now: datetime) -> JobResult:
        self.calls.append(now)
        self.ran.set()
        if self.fail_with is not None:
            raise self.fail_with
        if self.fn is not None:
            self.fn(store, now)
        return JobResult(self.name)
