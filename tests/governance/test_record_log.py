"""The record log as its readers see it: a re-sent record counts once, a change is a new record,
and a store at the schema before the record log keeps its history through the upgrade."""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from agentledger.pipeline.governance import ControlAction, ControlIn, ControlScope
from agentledger.pipeline.governance.controls import ControlBook
from agentledger.pipeline.governance.journal import JournaledLog
from agentledger.pipeline.governance.memory import MemoryLog
from agentledger.pipeline.governance.queries import (
    control_history,
    get_intent,
    latest_controls,
    list_intents,
)
from agentledger.pipeline.governance.records import (
    Decision,
    IntentIn,
    OutcomeIn,
    OutcomeStatus,
    control_record,
    intent_record,
    outcome_record,
)
from agentledger.pipeline.governance.store_log import StoreLog
from agentledger.pipeline.services.datasets import lineage
from agentledger.pipeline.services.datasets.feedback import (
    FeedbackIn,
    list_feedback,
    to_record,
    write_feedback,
)
from agentledger.pipeline.services.replay import drift, storage
from agentledger.pipeline.store import load_migrations, migrate
from agentledger.pipeline.store.carry_over import carry_over_records
from agentledger.pipeline.store.embedded import EmbeddedStore
from agentledger.pipeline.store.records import append_records
from agentledger.schemas.records import Actor, Record, RecordKind, make_record
from tests.conftest import API_KEYS

T = "acme"


def _intent(attempt: int = 0, **changes: Any) -> IntentIn:
    args = '{"amount":100}'
    fields: dict[str, Any] = {
        "intent_id": "a" * 32,
        "attempt": attempt,
        "requested_at_ns": 1_767_323_045_000_000_000,
        "tool_name": "pay",
        "arguments": args,
        "arguments_sha256": hashlib.sha256(args.encode()).hexdigest(),
        "trace_id": "b" * 32,
        "session_id": "s1",
    }
    fields.update(changes)
    return IntentIn(**fields)


def _stored(store: Any, kind: RecordKind) -> list[dict[str, Any]]:
    return store.query_rows(
        "SELECT record_id, body, body_sha256, actor FROM records WHERE kind = {k:String}",
        {"k": kind.value},
    )


def _twice(store: Any, record: Record) -> None:
    """Append a record twice with different insert tokens, as a re-send beyond the insert
    deduplication window would store it."""
    append_records(store, [record], dedup_token=f"first-{uuid.uuid4().hex}")
    append_records(store, [record], dedup_token=f"again-{uuid.uuid4().hex}")


def test_a_resent_record_is_stored_once_as_readers_see_it(store: Any) -> None:
    asked = intent_record(T, _intent(), Decision.PROCEED, "", 1_767_323_046_000_000_000)
    done = outcome_record(
        T, asked.record_id, OutcomeIn(status=OutcomeStatus.OK), 1_767_323_047_000_000_000
    )
    for record in (asked, done):
        _twice(store, record)
    assert len(_stored(store, RecordKind.INTENT)) == 2  # nothing collapsed or replaced it
    assert [r["intent_id"] for r in list_intents(store, T)] == [asked.record_id]
    found = get_intent(store, T, asked.record_id)
    assert found is not None and found["outcome"]["status"] == "ok"

    book = ControlBook(MemoryLog(), store)
    control = book.record(
        T, ControlIn(action=ControlAction.PAUSE, scope=ControlScope.SESSION, target="s1")
    )
    _twice(store, control_record(control))
    assert [c.control_id for c in control_history(store, T)] == [control.control_id]

    feedback = to_record(T, FeedbackIn(trace_id="b" * 32, name="quality", score=0.5))
    for token in ("f1", "f2"):
        write_feedback(store, [feedback], dedup_token=token)
    assert [f["feedback_id"] for f in list_feedback(store, T, trace_id="b" * 32)] == [
        feedback.feedback_id
    ]

    report = drift.DriftReport(
        uuid.uuid4().hex, T, time.time_ns(), "m", "", {"agent": "a"}, [], drift.summarize([])
    )
    storage.save_report(store, report)
    _twice(store, storage.drift_record(report))
    assert [r["run_id"] for r in storage.list_reports(store, T)] == [report.run_id]
    got = storage.get_report(store, T, report.run_id)
    assert got is not None and got["filter"] == {"agent": "a"}


def test_the_same_records_appended_again_are_dropped_at_the_insert(store: Any) -> None:
    log = StoreLog(store)
    asked = intent_record(T, _intent(), Decision.PROCEED, "", time.time_ns())
    log.append(asked, asked.record_id)
    log.append(asked, asked.record_id)  # the journal re-storing a batch, a retried insert
    assert len(_stored(store, RecordKind.INTENT)) == 1


def test_a_change_is_a_new_record(store: Any) -> None:
    book = ControlBook(StoreLog(store), store, ttl_s=0)
    session = {"scope": ControlScope.SESSION, "target": "s1"}
    pause = book.record(T, ControlIn(action=ControlAction.PAUSE, reason="check", **session))
    resume = book.record(
        T, ControlIn(action=ControlAction.RESUME, reason="ok", **session), actor="key:abc"
    )
    stored = _stored(store, RecordKind.CONTROL)
    assert sorted(r["record_id"] for r in stored) == sorted([pause.control_id, resume.control_id])
    assert {r["actor"] for r in stored} == {Actor.API, "key:abc"}
    assert all(hashlib.sha256(r["body"].encode()).hexdigest() == r["body_sha256"] for r in stored)
    assert [c.action for c in latest_controls(store, T)] == [ControlAction.RESUME]
    assert [c.control_id for c in control_history(store, T)] == [
        resume.control_id,
        pause.control_id,
    ]
    # a governed call asks again: every ask stays on record, the latest decides
    log = StoreLog(store)
    parked = intent_record(T, _intent(0), Decision.PAUSED, pause.control_id, time.time_ns())
    log.append(parked, parked.record_id)
    ran = intent_record(T, _intent(1), Decision.PROCEED, "", time.time_ns())
    log.append(ran, ran.record_id)
    assert len(_stored(store, RecordKind.INTENT)) == 2
    found = get_intent(store, T, ran.record_id)
    assert found is not None and (found["attempt"], found["decision"]) == (1, "proceed")
    # feedback under an explicit id: the later value wins, the earlier one stays on record
    first = FeedbackIn(id="fb-1", trace_id="b" * 32, name="quality", score=0.2)
    write_feedback(store, [to_record(T, first, now=datetime(2026, 1, 1, tzinfo=timezone.utc))])
    later = first.model_copy(update={"score": 0.9})
    write_feedback(store, [to_record(T, later, now=datetime(2026, 1, 2, tzinfo=timezone.utc))])
    assert [f["score"] for f in list_feedback(store, T, trace_id="b" * 32)] == [0.9]
    assert len(_stored(store, RecordKind.FEEDBACK)) == 2


# -- the upgrade from the per-kind tables ---------------------------------------------------------


@pytest.fixture
def old_store(chdb_path: Path, database: str) -> Iterator[EmbeddedStore]:
    """A store at the schema before the record log (migrations before 0008)."""
    s = EmbeddedStore(chdb_path, database=database)
    migrate(s, [m for m in load_migrations() if m.version < 8])
    yield s
    try:
        s.command(f"DROP DATABASE IF EXISTS {database}")
    finally:
        s.close()


def _rows(store: Any, table: str, rows: list[dict[str, Any]]) -> None:
    data = "\n".join(orjson.dumps(r).decode() for r in rows)
    store.command(f"INSERT INTO {table} SETTINGS async_insert=0 FORMAT JSONEachRow\n{data}")


def _old_rows(store: Any) -> dict[str, Any]:
    """Rows as the writers before the record log stored them (times as ClickHouse text)."""
    ids = {name: uuid.uuid4().hex for name in ("intent", "pause", "resume", "run")}
    intent = {
        "tenant": T,
        "requested_at": "2026-01-02 03:04:05.000001",
        "intent_id": ids["intent"],
        "received_at": "2026-01-02 03:04:05.000100",
        "tool_name": "pay",
        "arguments": '{"amount":100}',
        "arguments_sha256": "0" * 64,
        "trace_id": "b" * 32,
        "session_id": "s1",
        "principal_chain": ["cfo", "clerk"],
    }
    _rows(
        store,
        "intents",
        [
            {**intent, "attempt": 0, "decision": "paused", "control_id": ids["pause"]},
            {**intent, "attempt": 1, "decision": "proceed", "received_at": "2026-01-02 03:05:00"},
            {**intent, "attempt": 1, "decision": "proceed", "received_at": "2026-01-02 03:05:00"},
        ],
    )
    _rows(
        store,
        "intent_outcomes",
        [
            {
                "tenant": T,
                "finished_at": "2026-01-02 03:05:01",
                "intent_id": ids["intent"],
                "status": "ok",
                "result": '{"paid":true}',
                "duration_ms": 12.5,
                "received_at": "2026-01-02 03:05:02",
            }
        ],
    )
    control = {"tenant": T, "scope": "session", "target": "s1", "by": "ops"}
    _rows(
        store,
        "controls",
        [
            {**control, "created_at": "2026-01-02 03:00:00", "control_id": ids["pause"],
             "action": "pause", "reason": "check"},
            {**control, "created_at": "2026-01-02 03:04:30", "control_id": ids["resume"],
             "action": "resume", "reason": "ok"},
        ],
    )  # fmt: skip
    feedback = {"tenant": T, "trace_id": "b" * 32, "span_id": "", "name": "quality"}
    _rows(
        store,
        "feedback",
        [
            {**feedback, "feedback_id": "fb-1", "score": 0.2, "created_at": "2026-01-02 04:00:00"},
            {**feedback, "feedback_id": "fb-1", "score": 0.9, "created_at": "2026-01-02 05:00:00"},
            {**feedback, "feedback_id": "fb-2", "score": None, "label": "up",
             "metadata": {"k": "v"}, "created_at": "2026-01-02 04:30:00"},
        ],
    )  # fmt: skip
    manifest = {
        "id": "ds-1",
        "name": "n",
        "format": "chat",
        "created_at": "2026-01-02T06:00:00+00:00",
        "filters": {"agent": "a"},
        "files": [],
        "members": {"file": "members.jsonl", "rows": 1},
    }
    _rows(
        store,
        "datasets",
        [
            {"tenant": T, "dataset_id": "ds-1", "name": "n", "format": "chat",
             "created_at": "2026-01-02 06:00:00", "path": "/data/ds-1", "examples": 1,
             "filters": json.dumps(manifest["filters"]), "manifest": json.dumps(manifest)},
        ],
    )  # fmt: skip
    _rows(
        store,
        "dataset_members",
        [{"tenant": T, "dataset_id": "ds-1", "span_id": "c" * 16, "trace_id": "b" * 32,
          "created_at": "2026-01-02 06:00:00"}],
    )  # fmt: skip
    summary = {"replayed": 2, "errors": 0, "drifted": 1, "worst": []}
    _rows(
        store,
        "replay_runs",
        [
            {"tenant": T, "created_at": "2026-01-02 07:00:00", "run_id": ids["run"],
             "candidate_model": "m2", "filter": '{"agent": "a"}', "replayed": 2, "drifted": 1,
             "tool_agreement": 0.5, "text_similarity_mean": float("nan"),
             "report": json.dumps(summary)},
        ],
    )  # fmt: skip
    call = {"tenant": T, "created_at": "2026-01-02 07:00:00", "run_id": ids["run"],
            "trace_id": "b" * 32, "source_start_time": "2026-01-02 03:04:05.123456789",
            "status": "ok", "recorded_tools": ["pay"]}  # fmt: skip
    _rows(
        store,
        "replays",
        [
            {**call, "span_id": "d" * 16, "text_similarity": 0.4, "drift": True,
             "replayed_answer": '{"text": "no", "tool_calls": [], "model": "m2"}'},
            {**call, "span_id": "e" * 16, "text_similarity": 1.0},
        ],
    )  # fmt: skip
    return ids


def _reads(store: Any, ids: dict[str, Any]) -> dict[str, Any]:
    """What the readers answer about the old rows."""
    intent = get_intent(store, T, ids["intent"])
    assert intent is not None
    report = storage.get_report(store, T, ids["run"])
    assert report is not None
    return {
        "intent": (intent["attempt"], intent["decision"], intent["principal_chain"]),
        "outcome": (intent["outcome"]["status"], intent["outcome"]["duration_ms"]),
        "controls": [(c.control_id, c.action.value) for c in control_history(store, T)],
        "latest": [(c.target, c.action.value) for c in latest_controls(store, T)],
        "feedback": sorted(
            (f["feedback_id"], f["score"], f["label"], f["metadata"])
            for f in list_feedback(store, T, trace_id="b" * 32)
        ),
        "datasets": [(d["dataset_id"], d["path"]) for d in lineage.list_datasets(store, T)],
        "manifest": (lineage.get_dataset(store, T, "ds-1") or {}).get("filters"),
        "of_span": [d["dataset_id"] for d in lineage.datasets_of_span(store, T, "c" * 16)],
        "reports": [(r["run_id"], r["filter"]) for r in storage.list_reports(store, T)],
        "report": (
            report["summary"],
            report["filter"],
            [(c["span_id"], c["text_similarity"], c["replayed_answer"]) for c in report["calls"]],
        ),
    }


def test_an_upgrade_keeps_every_row_of_the_per_kind_tables(old_store: EmbeddedStore) -> None:
    ids = _old_rows(old_store)
    before = {
        t: old_store.query_scalar(f"SELECT count() FROM {t}")
        for t in ("intents", "intent_outcomes", "controls", "feedback", "datasets", "replay_runs")
    }
    applied = migrate(old_store)
    assert applied[0] == 8 and applied == sorted(applied)  # 0008 and what came after it
    stored = old_store.query_rows(
        "SELECT kind, count() AS n, groupUniqArray(actor) AS actors FROM records GROUP BY kind"
    )
    assert {r["kind"]: r["n"] for r in stored} == {
        "intent": before["intents"],  # every ask, the repeated one too
        "outcome": before["intent_outcomes"],
        "control": before["controls"],
        "feedback": before["feedback"],  # every version
        "dataset": before["datasets"],
        "drift_report": before["replay_runs"],
    }
    assert all(r["actors"] == [Actor.MIGRATION] for r in stored)
    for row in old_store.query_rows("SELECT body, body_sha256 FROM records"):
        assert hashlib.sha256(row["body"].encode()).hexdigest() == row["body_sha256"]
    seen = _reads(old_store, ids)
    assert seen == {
        "intent": (1, "proceed", ["cfo", "clerk"]),
        "outcome": ("ok", 12.5),
        "controls": [(ids["resume"], "resume"), (ids["pause"], "pause")],
        "latest": [("s1", "resume")],
        "feedback": [("fb-1", 0.9, "", {}), ("fb-2", None, "up", {"k": "v"})],
        "datasets": [("ds-1", "/data/ds-1")],
        "manifest": {"agent": "a"},
        "of_span": ["ds-1"],
        "reports": [(ids["run"], '{"agent": "a"}')],
        "report": (
            {"replayed": 2, "errors": 0, "drifted": 1, "worst": []},
            {"agent": "a"},
            [
                ("d" * 16, 0.4, '{"model": "m2", "text": "no", "tool_calls": []}'),
                ("e" * 16, 1.0, ""),
            ],
        ),
    }
    # carried over again (an interrupted migration applied twice): the same answers
    carry_over_records(old_store)
    assert _reads(old_store, ids) == seen
    assert old_store.query_scalar("SELECT count() FROM records") == sum(before.values())
    # the old tables are left as they were
    assert old_store.query_scalar("SELECT count() FROM intents") == before["intents"]


def test_a_journal_left_by_an_older_version_is_stored(store: Any, tmp_path: Path) -> None:
    journal_dir = tmp_path / "j"
    journal_dir.mkdir()
    old = {
        "tenant": T,
        "requested_at": 1_767_323_045_000_001_000,
        "intent_id": "f" * 32,
        "attempt": 0,
        "received_at": 1_767_323_045_000_100_000,
        "decision": "proceed",
        "control_id": "",
        "tool_name": "pay",
        "tool_call_id": "",
        "arguments": "",
        "arguments_sha256": "0" * 64,
        "arguments_redacted": True,
        "trace_id": "",
        "span_id": "",
        "parent_span_id": "",
        "principal_id": "",
        "principal_name": "",
        "principal_role": "",
        "principal_chain": [],
        "policy_id": "",
        "agent_name": "",
        "session_id": "",
        "user_id": "",
    }
    new = intent_record(T, _intent(), Decision.PROCEED, "", time.time_ns())
    (journal_dir / "journal-000000000001.jsonl").write_bytes(
        orjson.dumps({"table": "intents", "row": old}) + b"\n" + orjson.dumps(new.to_json()) + b"\n"
    )
    journal = JournaledLog(store, journal_dir, MemoryLog(), flush_interval_s=3600)
    try:
        assert sorted(r["intent_id"] for r in list_intents(store, T)) == ["a" * 32, "f" * 32]
    finally:
        journal.close()


def test_make_record_refuses_what_the_views_would_not_read() -> None:
    with pytest.raises(ValueError):
        make_record(RecordKind.INTENT, T, {"intent_id": "x"}, actor=Actor.API)


def test_the_actor_is_the_api_key_that_sent_the_record(auth_server: Any) -> None:
    key = API_KEYS["acme"]
    headers = {"Authorization": f"Bearer {key}"}
    control = {"action": "pause", "scope": "session", "target": "s9", "reason": "check"}
    sent = httpx.post(f"{auth_server.url}/v1/controls", json=control, headers=headers, timeout=30)
    assert sent.status_code == 200, sent.text
    feedback = {"trace_id": "b" * 32, "name": "quality", "score": 1}
    sent = httpx.post(f"{auth_server.url}/v1/feedback", json=feedback, headers=headers, timeout=30)
    assert sent.status_code == 200, sent.text
    actors = auth_server.store.query_rows("SELECT kind, tenant, actor FROM records ORDER BY kind")
    expected = f"key:{hashlib.sha256(key.encode()).hexdigest()[:12]}"
    assert actors == [
        {"kind": "control", "tenant": "acme", "actor": expected},
        {"kind": "feedback", "tenant": "acme", "actor": expected},
    ]
