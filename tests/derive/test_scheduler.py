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


def test_a_due_pass_waits_while_ingest_is_busy(store) -> None:
    """Ingest first: no pass runs while ``busy`` answers true (within the deferral bound); the
    pass runs as soon as ingest quiets down."""
    counting = CallbackJob("counting")
    busy = threading.Event()
    busy.set()
    asked = threading.Event()

    def is_busy() -> bool:
        asked.set()
        return busy.is_set()

    scheduler = JobScheduler(
        store, [counting], 60, first_delay_s=0, busy=is_busy, max_deferral_s=60
    ).start()
    try:
        assert asked.wait(10)
        assert not _wait(lambda: counting.calls, timeout=0.5)  # still busy: still waiting
        assert scheduler.deferred_passes == 1
        busy.clear()
        assert _wait(lambda: len(counting.calls) == 1)
    finally:
        scheduler.stop()


def test_a_steady_load_cannot_starve_the_jobs(store) -> None:
    counting = CallbackJob("counting")
    scheduler = JobScheduler(
        store, [counting], 0.05, first_delay_s=0, busy=lambda: True, max_deferral_s=0.1
    ).start()
    try:
        assert _wait(lambda: len(counting.calls) >= 2)  # deferred each time, then run anyway
    finally:
        scheduler.stop()
    assert scheduler.deferred_passes >= 2


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


def test_the_embedded_sink_is_busy_while_and_just_after_it_stores(store) -> None:
    from agentledger.pipeline.normalize import OtlpNormalizer
    from agentledger.pipeline.sinks import IngestBatch
    from agentledger.pipeline.sinks.embedded import EmbeddedSink
    from bench.traffic import SPANS_PER_RUN, requests

    sink = EmbeddedSink(store, OtlpNormalizer())
    try:
        assert not sink.busy()  # nothing sent yet: jobs may run
        (req,) = requests(2, runs_per_request=2, seed=5)
        sink.write(IngestBatch("acme", time.time_ns(), req, 2 * SPANS_PER_RUN))
        assert sink.busy()  # a burst is under way
        assert _wait(lambda: not sink.busy(), timeout=10)  # and quiet again after it
    finally:
        sink.close()
