"""Background jobs: passes on an interval, failures survived, stop waits; the job contract."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone

import pytest

from agentledger.pipeline.derive import CallbackJob, JobScheduler, start_background_jobs
from agentledger.pipeline.store import StoreUnavailable
from agentledger.schemas.analytics import USAGE_STATE_TABLE
from tests.derive import scenario


def _wait(predicate, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def test_scheduler_runs_every_interval_and_survives_failures(store) -> None:
    failing, counting = CallbackJob("failing"), CallbackJob("counting")
    failing.fail_with = StoreUnavailable("down for a moment")
    clock = datetime(2026, 3, 5, tzinfo=timezone.utc)
    scheduler = JobScheduler(
        store, [failing, counting], 0.05, first_delay_s=0, clock=lambda: clock
    ).start()
    try:
        assert _wait(lambda: len(counting.calls) >= 3)
        failing.fail_with = RuntimeError("a bug")  # an unexpected error is logged, not fatal either
        n = len(counting.calls)
        assert _wait(lambda: len(counting.calls) >= n + 2)
    finally:
        scheduler.stop()
    assert scheduler.failures >= 4 and scheduler.passes >= 4
    assert set(counting.calls) == {clock}
    stopped_at = len(counting.calls)
    assert not scheduler.running  # stopped means stopped: no thread is left to run a pass
    assert len(counting.calls) == stopped_at
    scheduler.stop()  # twice is fine


def test_stop_waits_for_the_pass_in_flight(store) -> None:
    entered, release = threading.Event(), threading.Event()
    finished: list[bool] = []

    def slow(_store, _now) -> None:
        entered.set()
        release.wait(5)
        finished.append(True)

    scheduler = JobScheduler(store, [CallbackJob("slow", slow)], 60, first_delay_s=0).start()
    assert entered.wait(10)
    threading.Timer(0.2, release.set).start()
    scheduler.stop()
    assert finished == [True]


def test_interval_must_be_positive(store) -> None:
    with pytest.raises(ValueError):
        JobScheduler(store, [], 0)


def test_start_background_jobs_builds_the_rollup(store) -> None:
    """The entry point the embedded server and the pipeline process call."""
    scenario.generate(store, inject=False, days=1, seed=41)
    assert start_background_jobs(store, 0)() is None  # 0: nothing started, a no-op stop
    stop = start_background_jobs(store, 0.2)
    try:
        assert _wait(
            lambda: store.query_scalar(f"SELECT count() FROM {USAGE_STATE_TABLE}") == 24, timeout=60
        )
    finally:
        stop()
