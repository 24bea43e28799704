"""Analytics jobs: exact hourly usage, patterns of use, anomalies.

A job reads the store and writes derived tables (``base.Job``). The embedded
server and ``agentledger pipeline run`` start them in the background with
``start_background_jobs``; the CLI and HTTP API run them once on demand.
"""

from __future__ import annotations

from collections.abc import Callable

from agentledger.pipeline.derive.anomalies import (
    AnomalyDetectionJob,
    list_anomalies,
    write_anomalies,
)
from agentledger.pipeline.derive.base import CallbackJob, Job, JobError, JobResult
from agentledger.pipeline.derive.detectors import Anomaly
from agentledger.pipeline.derive.patterns import (
    new_use,
    ngrams,
    patterns_report,
    tool_sequences,
    user_inputs,
)
from agentledger.pipeline.derive.retention import EVERY_S as _RETENTION_EVERY_S
from agentledger.pipeline.derive.retention import RetentionJob
from agentledger.pipeline.derive.scheduler import JobScheduler
from agentledger.pipeline.derive.settings import JobSettings
from agentledger.pipeline.derive.usage import (
    UsageQuery,
    UsageQueryError,
    UsageRollupJob,
    usage_report,
    usage_totals,
)
from agentledger.pipeline.store import Store

__all__ = [
    "Anomaly",
    "AnomalyDetectionJob",
    "CallbackJob",
    "Job",
    "JobError",
    "JobResult",
    "JobScheduler",
    "JobSettings",
    "UsageQuery",
    "UsageQueryError",
    "UsageRollupJob",
    "list_anomalies",
    "new_use",
    "ngrams",
    "patterns_report",
    "start_background_jobs",
    "tool_sequences",
    "usage_report",
    "usage_totals",
    "user_inputs",
    "write_anomalies",
]


def start_background_jobs(
    store: Store,
    interval_s: float | None = None,
    settings: JobSettings | None = None,
    *,
    busy: Callable[[], bool] | None = None,
    ledger_log: Job | None = None,
) -> Callable[[], None]:
    """Run the usage rollup and anomaly detection every ``interval_s`` seconds (default
    ``AGENTLEDGER_JOBS_INTERVAL_S``, 60) in a daemon thread; return the function that stops it.
    ``busy``: ingest is under way, so a due pass waits (``JobScheduler``). ``ledger_log``: the
    appender of the tenant logs (``tlog_job.TreeLogJob``, built with the signing key by the
    composition root), run first in each pass so that proofs lag ingest by one interval at most.

    An interval of 0 (or less) starts nothing and returns a no-op. The stop
    function waits for a pass in flight, so call it before closing the store.
    """
    settings = settings or JobSettings()
    interval = settings.interval_s if interval_s is None else interval_s
    if interval <= 0:
        return lambda: None
    jobs: list[Job] = [] if ledger_log is None else [ledger_log]
    jobs.append(RetentionJob(_RETENTION_EVERY_S))  # after the appender: pruned spans are leaves
    jobs.append(AnomalyDetectionJob(settings))
    scheduler = JobScheduler(store, jobs, interval, busy=busy).start()
    return scheduler.stop
