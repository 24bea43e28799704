"""Governance records into both stores (chDB and clickhouse-connect): values arrive as sent."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from agentledger.pipeline.governance import (
    ControlAction,
    ControlIn,
    ControlScope,
    MemoryLog,
    RecordType,
)
from agentledger.pipeline.governance.controls import ControlBook
from agentledger.pipeline.governance.queries import control_history, latest_controls
from agentledger.pipeline.governance.records import Decision, IntentIn, intent_record
from agentledger.pipeline.governance.store_log import StoreLog
from agentledger.pipeline.store.records import append_records
from agentledger.schemas.records import Record

TRICKY = "pct %s %(x)s {x:String} {{y}} quote ' double \" backslash \\ newline \n tab \t nul \x00 unicode é 中 emoji 🧾 FORMAT Values; DROP TABLE x"


def _intent(i: int, text: str = TRICKY) -> Record:
    intent = IntentIn(
        intent_id=f"{i:032x}",
        tool_name="t",
        arguments=text,
        arguments_sha256="0" * 64,
        principal_chain=["a'b", "c\\d"],
        session_id=text,
        arguments_redacted=True,
    )
    return intent_record("tenant-1", intent, Decision.PROCEED, "", time.time_ns())


@pytest.mark.parametrize("which", ["store", "ch_store"])
def test_rows_arrive_byte_for_byte(which: str, request: pytest.FixtureRequest) -> None:
    store = request.getfixturevalue(which)
    sent = [_intent(1), _intent(2, "plain")]
    append_records(store, sent)
    rows = store.query_rows(
        "SELECT intent_id, arguments, session_id, principal_chain, body, body_sha256 FROM intents_v "
        "ORDER BY intent_id"
    )
    assert [r["arguments"] for r in rows] == [TRICKY, "plain"]
    assert rows[0]["session_id"] == TRICKY and rows[0]["principal_chain"] == ["a'b", "c\\d"]
    assert [(r["body"], r["body_sha256"]) for r in rows] == [(s.body, s.body_sha256) for s in sent]


def test_concurrent_appends_share_inserts(store: Any) -> None:
    log = StoreLog(store)
    inserts = 0
    real = store.command

    def counting(sql: str, params: Any = None) -> None:
        nonlocal inserts
        inserts += sql.startswith("INSERT")
        time.sleep(0.01)  # a slow store makes the queue build up
        real(sql, params)

    store.command = counting
    try:
        threads = [
            threading.Thread(target=log.append, args=(_intent(i), str(i))) for i in range(40)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    finally:
        store.command = real
    assert store.query_scalar("SELECT count() FROM intents_v") == 40
    assert inserts < 40  # grouped


@pytest.mark.parametrize("which", ["store", "ch_store"])
def test_the_latest_event_per_target_decides(which: str, request: pytest.FixtureRequest) -> None:
    store = request.getfixturevalue(which)
    book = ControlBook(StoreLog(store), store, ttl_s=0.05)
    other = ControlBook(StoreLog(store), store, ttl_s=0.05)  # another replica
    pause = book.record(
        "acme",
        ControlIn(
            action=ControlAction.PAUSE,
            scope=ControlScope.SESSION,
            target="s1",
            by="alice",
            reason="why not",
        ),
    )
    book.record(
        "acme",
        ControlIn(action=ControlAction.PAUSE, scope=ControlScope.AGENT, target="a1", reason="r"),
    )
    book.record(
        "acme",
        ControlIn(action=ControlAction.RESUME, scope=ControlScope.AGENT, target="a1", reason="ok"),
    )
    book.record(
        "globex",
        ControlIn(action=ControlAction.PAUSE, scope=ControlScope.SESSION, target="s1", reason="g"),
    )

    latest = {(c.tenant, c.scope.value, c.target): c.action.value for c in latest_controls(store)}
    assert latest == {
        ("acme", "session", "s1"): "pause",
        ("acme", "agent", "a1"): "resume",
        ("globex", "session", "s1"): "pause",
    }
    assert [c.control_id for c in other.active("acme")] == [pause.control_id]
    held = other.holding(
        "acme",
        IntentIn(
            intent_id="f" * 32,
            tool_name="t",
            arguments_sha256="0" * 64,
            session_id="s1",
            agent_name="a1",
        ),
    )
    assert held is not None and held.note == "alice" and held.reason == "why not"
    assert held.by == "api"  # who recorded it: the actor, never the body's by
    assert [c.action.value for c in control_history(store, "acme")] == ["resume", "pause", "pause"]
    assert [(c.by, c.note) for c in control_history(store, "globex")] == [("api", "")]


def test_memory_controls_record_through_the_log() -> None:
    log = MemoryLog()
    book = ControlBook(log, None)
    event = book.record(
        "t",
        ControlIn(
            action=ControlAction.PAUSE,
            scope=ControlScope.PRINCIPAL,
            target="cfo",
            by="x",
            reason="y",
        ),
    )
    assert not book.shared
    assert [r["control_id"] for r in log.rows(RecordType.CONTROL)] == [event.control_id]
    intent = IntentIn(
        intent_id="e" * 32,
        tool_name="t",
        arguments_sha256="0" * 64,
        principal_id="clerk",
        principal_chain=["cfo", "clerk"],
    )
    assert book.holding("t", intent) == event
    assert book.holding("other-tenant", intent) is None
    assert book.history("t") == [event]
