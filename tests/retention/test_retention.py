"""Retention and legal holds: a pass prunes what is older than the tenant's retention except what
a hold keeps, records the expiry as a ledger leaf so ``verify`` stays OK, and a released hold lets
the next pass prune; a deletion that no record explains is still reported."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agentledger.cli import app
from agentledger.pipeline.derive.retention import RetentionJob
from agentledger.pipeline.derive.tlog_job import TreeLogJob
from agentledger.pipeline.derive.tlog_witness import WitnessDir
from agentledger.pipeline.services import ledger
from agentledger.pipeline.services.retention import (
    HoldNotFound,
    add_hold,
    list_holds,
    release_hold,
    retention_policy,
    set_retention,
)
from agentledger.pipeline.tlog import Signer
from tests.erasure.conftest import TENANT, ingest, marker, tables_holding

DAY_NS = 86_400 * 1_000_000_000


class Log:
    def __init__(self, store, tmp_path: Path) -> None:
        self.store = store
        self.signer = Signer.generate("agentledger")
        self.witness = WitnessDir(tmp_path / "witness")
        self.job = TreeLogJob(self.signer, self.witness)

    def append(self) -> None:
        self.job.run(self.store, datetime.now(timezone.utc))

    def verify(self) -> ledger.LogReport:
        return ledger.verify(
            self.store, TENANT, [self.signer.verifier()], self.witness.latest(TENANT)
        )


@pytest.fixture
def aged(store, tmp_path: Path) -> tuple[Log, dict[int, str], dict[int, str]]:
    """Runs 0-2 ingested 40 days ago, runs 3-4 now, all of them leaves of a signed log."""
    old = ingest(store, range(3), seed=5, received_ns=time.time_ns() - 40 * DAY_NS)
    new = ingest(store, range(3, 5), seed=6)
    log = Log(store, tmp_path)
    log.append()
    assert log.verify().ok
    return log, old, new


def _spans(store, trace_id: str) -> int:
    return int(
        store.query_scalar("SELECT count() FROM spans WHERE trace_id = {t:String}", {"t": trace_id})
    )


def test_expiry_prunes_old_data_keeps_held_data_and_verify_stays_ok(aged) -> None:
    log, old, new = aged
    store = log.store
    set_retention(store, TENANT, 30, actor="ops")
    hold = add_hold(store, TENANT, "trace", old[2], "matter 2026-14", actor="legal")
    first = RetentionJob().run(store, datetime.now(timezone.utc))
    assert first.info["pruned"] == {TENANT: 10}  # runs 0 and 1, five spans each
    assert [_spans(store, old[r]) for r in range(3)] == [0, 0, 5]
    assert all(_spans(store, t) == 5 for t in new.values())
    for gone in (0, 1):
        assert not {"spans", "contents", "logs"} & set(tables_holding(store, marker(gone)))
    assert {"spans", "contents"} <= set(tables_holding(store, marker(2)))  # held
    report = log.verify()
    assert report.ok and report.pending == 1, report.as_dict()  # the expiry record
    log.append()
    assert log.verify().ok
    expiry = store.query_rows(
        "SELECT retention_days, spans, contents, actor FROM retention_expiries_v"
    )
    assert expiry[0]["retention_days"] == 30 and expiry[0]["spans"] == 10
    assert expiry[0]["contents"] > 0 and expiry[0]["actor"] == "pipeline"
    # a second pass finds nothing more: no new record (the job converges)
    assert RetentionJob().run(store, datetime.now(timezone.utc)).rows_written == 0
    # the hold released, the next pass prunes what it kept
    release_hold(store, TENANT, hold.hold_id, actor="legal")
    assert list_holds(store, TENANT).holds == []
    assert [h.active for h in list_holds(store, TENANT, released=True).holds] == [False]
    again = RetentionJob().run(store, datetime.now(timezone.utc))
    assert again.info["pruned"] == {TENANT: 5} and _spans(store, old[2]) == 0
    log.append()
    report = log.verify()
    assert report.ok, report.as_dict()
    # the contents the young runs share with the pruned ones (the system prompt) are kept
    shared = store.query_scalar(
        "SELECT system_prompt_hash FROM spans WHERE trace_id = {t:String} "
        "AND system_prompt_hash != '' LIMIT 1",
        {"t": new[3]},
    )
    assert shared and store.query_scalar(
        "SELECT count() FROM contents WHERE hash = {h:String}", {"h": shared}
    )


def test_a_held_trace_deleted_by_hand_is_still_reported(aged) -> None:
    log, old, _ = aged
    store = log.store
    set_retention(store, TENANT, 30, actor="ops")
    add_hold(store, TENANT, "trace", old[2], "matter", actor="legal")
    RetentionJob().run(store, datetime.now(timezone.utc))
    log.append()
    assert log.verify().ok
    store.command(
        "ALTER TABLE spans DELETE WHERE trace_id = {t:String} SETTINGS mutations_sync = 2",
        {"t": old[2]},  # older than the cutoff, but retention kept it: a deletion
    )
    assert log.verify().counts == {"deleted": 5}


def test_holds_by_session_and_principal_keep_their_spans(aged) -> None:
    log, old, _ = aged
    store = log.store
    set_retention(store, TENANT, 30, actor="ops")
    add_hold(store, TENANT, "session", "s-0", "matter", actor="legal")
    add_hold(store, TENANT, "principal", "nobody@acme.example", "matter", actor="legal")
    RetentionJob().run(store, datetime.now(timezone.utc))
    assert [_spans(store, old[r]) for r in range(3)] == [5, 0, 0]
    log.append()
    assert log.verify().ok


def test_a_deletion_no_expiry_explains_is_still_reported(aged) -> None:
    log, old, new = aged
    store = log.store
    set_retention(store, TENANT, 30, actor="ops")
    RetentionJob().run(store, datetime.now(timezone.utc))
    log.append()
    store.command(
        "ALTER TABLE spans DELETE WHERE trace_id = {t:String} SETTINGS mutations_sync = 2",
        {"t": new[3]},
    )
    report = log.verify()
    assert report.counts == {"deleted": 5}, report.as_dict()


def test_no_retention_set_prunes_nothing(aged) -> None:
    log, old, _ = aged
    assert retention_policy(log.store, TENANT).days == 0
    assert RetentionJob().run(log.store, datetime.now(timezone.utc)).info["pruned"] == {}
    set_retention(log.store, TENANT, 0, actor="ops")
    assert RetentionJob().run(log.store, datetime.now(timezone.utc)).info["pruned"] == {TENANT: 0}
    assert _spans(log.store, old[0]) == 5


def test_bad_settings_and_holds_are_refused(store) -> None:
    with pytest.raises(ValueError, match="between 0"):
        set_retention(store, TENANT, -1, actor="ops")
    with pytest.raises(ValueError, match="trace, session, principal"):
        add_hold(store, TENANT, "agent", "x", "r", actor="legal")
    with pytest.raises(ValueError, match="reason"):
        add_hold(store, TENANT, "trace", "x", " ", actor="legal")
    with pytest.raises(HoldNotFound):
        release_hold(store, TENANT, "0" * 32, actor="legal")


def test_the_cli_sets_shows_holds_and_runs(aged, chdb_path: Path, database: str) -> None:
    log, old, _ = aged
    runner = CliRunner(env={"AGENTLEDGER_DATABASE": database})
    where = ["--data-dir", str(chdb_path), "--tenant", TENANT]
    done = runner.invoke(app, ["retention", "set", "--days", "30", *where])
    assert done.exit_code == 0 and "retention 30 days" in done.output, done.output
    done = runner.invoke(app, ["retention", "show", *where])
    assert "retention 30 days, set" in done.output and "by cli" in done.output
    done = runner.invoke(app, ["hold", "add", "--trace", old[1], "--reason", "case 9", *where])
    assert done.exit_code == 0 and "placed" in done.output, done.output
    hold_id = done.output.split()[1]
    done = runner.invoke(app, ["retention", "run", *where])
    assert done.exit_code == 0 and "10 spans" in done.output and "5 held" in done.output
    done = runner.invoke(app, ["hold", "release", hold_id, *where])
    assert done.exit_code == 0 and "released" in done.output
    done = runner.invoke(app, ["hold", "add", "--reason", "r", *where])
    assert done.exit_code == 2 and "exactly one of" in done.output
    done = runner.invoke(app, ["retention", "set", "--days", "-3", *where])
    assert done.exit_code == 2 and "between 0" in done.output
    log.append()
    assert log.verify().ok


def test_a_clickhouse_server_store_prunes_and_holds_alike(ch_store) -> None:
    old = ingest(ch_store, range(2), seed=5, received_ns=time.time_ns() - 40 * DAY_NS)
    set_retention(ch_store, TENANT, 30, actor="ops")
    add_hold(ch_store, TENANT, "trace", old[1], "matter", actor="legal")
    result = RetentionJob().run(ch_store, datetime.now(timezone.utc))
    assert result.info["pruned"] == {TENANT: 5}
    assert [_spans(ch_store, old[r]) for r in range(2)] == [0, 5]
    assert not tables_holding(ch_store, marker(0)).keys() & {"spans", "contents"}


def test_the_background_jobs_prune_and_a_pass_an_hour(aged) -> None:
    from agentledger.pipeline.derive import start_background_jobs

    log, old, _ = aged
    store = log.store
    set_retention(store, TENANT, 30, actor="ops")
    stop = start_background_jobs(store, interval_s=0.2)
    try:
        deadline = time.monotonic() + 60
        while _spans(store, old[0]) and time.monotonic() < deadline:
            time.sleep(0.2)  # polling for the scheduler's pass, not a fixed wait
    finally:
        stop()
    assert [_spans(store, old[r]) for r in range(3)] == [0, 0, 0]
    job = RetentionJob(every_s=3600)
    now = datetime.now(timezone.utc)
    assert not job.run(store, now).info.get("skipped")
    assert job.run(store, now + timedelta(minutes=59)).info == {"skipped": True}
    assert not job.run(store, now + timedelta(minutes=61)).info.get("skipped")
