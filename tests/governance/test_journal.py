"""The governance journal: acknowledged once fsynced, stored behind, recovered after a kill -9."""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from agentledger.pipeline.governance.journal import JournaledLog
from agentledger.pipeline.governance.memory import MemoryLog
from agentledger.pipeline.governance.records import (
    ControlAction,
    ControlOut,
    ControlScope,
    Decision,
    IntentIn,
    RecordType,
    control_record,
    intent_record,
)
from agentledger.schemas.contents import canonical_json


def _intent(tool: str = "post_entry") -> IntentIn:
    args = canonical_json({"entry": uuid.uuid4().hex})
    return IntentIn(
        intent_id=uuid.uuid4().hex,
        tool_name=tool,
        arguments=args,
        arguments_sha256=hashlib.sha256(args.encode()).hexdigest(),
    )


def _count(store: Any, view: str = "intents_v") -> int:
    return int(store.query_scalar(f"SELECT count() FROM {view}"))


def test_concurrent_appends_share_fsyncs_and_all_reach_the_store(
    store: Any, tmp_path: Path
) -> None:
    journal = JournaledLog(
        store, tmp_path / "j", MemoryLog(), flush_interval_s=3600
    )  # flushed by sync() only
    ids: list[str] = []
    lock = threading.Lock()

    def agent() -> None:
        for _ in range(50):
            intent = _intent()
            journal.append(
                intent_record("default", intent, Decision.PROCEED, "", time.time_ns()),
                intent.intent_id,
            )
            with lock:
                ids.append(intent.intent_id)

    threads = [threading.Thread(target=agent) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # acknowledged, not yet inserted: every record is in the journal on disk
    on_disk = b"".join(p.read_bytes() for p in (tmp_path / "j").glob("journal-*.jsonl"))
    assert all(i.encode() in on_disk for i in ids) and _count(store) == 0
    journal.sync()
    assert _count(store) == 400
    assert sorted(
        r["intent_id"] for r in store.query_rows("SELECT intent_id FROM intents_v")
    ) == sorted(ids)
    # stored segments are deleted; the one being written is all that is left, empty
    left = list((tmp_path / "j").glob("journal-*.jsonl"))
    assert len(left) == 1 and left[0].stat().st_size == 0
    journal.close()


def test_controls_skip_the_journal(store: Any, tmp_path: Path) -> None:
    direct = MemoryLog()
    journal = JournaledLog(store, tmp_path / "j", direct, flush_interval_s=3600)
    control = ControlOut(
        control_id="c1",
        tenant="default",
        created_at_ns=time.time_ns(),
        action=ControlAction.PAUSE,
        scope=ControlScope.SESSION,
        target="s1",
        by="alice",
        reason="why",
    )
    journal.append(control_record(control), "session:s1")
    assert [r["control_id"] for r in direct.rows(RecordType.CONTROL)] == ["c1"]
    journal.close()


def test_journal_left_by_a_dead_process_is_stored_at_the_next_start(
    store: Any, tmp_path: Path
) -> None:
    first = JournaledLog(store, tmp_path / "j", MemoryLog(), flush_interval_s=3600)
    intent = _intent()
    first.append(
        intent_record("default", intent, Decision.PROCEED, "", time.time_ns()), intent.intent_id
    )
    first._stop.set()  # the process dies: no flush, no close
    segment = next((tmp_path / "j").glob("journal-*.jsonl"))
    with segment.open("ab") as f:
        f.write(b'{"kind": "intent", "record_id": "inten')  # a torn write, never acknowledged
    assert _count(store) == 0
    second = JournaledLog(store, tmp_path / "j", MemoryLog(), flush_interval_s=3600)
    assert [r["intent_id"] for r in store.query_rows("SELECT intent_id FROM intents_v")] == [
        intent.intent_id
    ]
    assert all(p.stat().st_size == 0 for p in (tmp_path / "j").glob("journal-*.jsonl"))
    second.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(data: Path, port: int, **env: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "agentledger.cli",
            "serve",
            "--no-auth",
            "--port",
            str(port),
            "--data-dir",
            str(data),
        ],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else "server exited"
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.2)


@pytest.mark.slow
def test_acknowledged_intent_survives_kill_9_of_the_collector(tmp_path: Path) -> None:
    data, port = tmp_path / "data", _free_port()
    server = _serve(
        data, port, AGENTLEDGER_JOURNAL_FLUSH_S="3600"
    )  # nothing inserted before the kill
    intent = _intent("wire_funds")
    try:
        resp = httpx.post(
            f"http://127.0.0.1:{port}/v1/intents", json=intent.model_dump(mode="json"), timeout=10
        )
        assert resp.status_code == 200 and resp.json()["decision"] == "proceed", resp.text
    finally:
        server.send_signal(signal.SIGKILL)
        server.wait(timeout=30)
    journaled = b"".join(
        p.read_bytes() for p in (data / "governance-journal").rglob("journal-*.jsonl")
    )
    assert intent.intent_id.encode() in journaled
    port = _free_port()
    server = _serve(data, port)
    try:
        found = httpx.get(f"http://127.0.0.1:{port}/v1/intents/{intent.intent_id}", timeout=10)
        assert found.status_code == 200, found.text
        assert found.json()["tool_name"] == "wire_funds" and found.json()["decision"] == "proceed"
    finally:
        server.terminate()
        server.wait(timeout=60)


class _SlowInserts:
    """The store, with inserts that take half a second (a flush is then visibly under way)."""

    def __init__(self, store: Any) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def command(self, sql: str, *args: Any, **kwargs: Any) -> Any:
        if sql.lstrip().upper().startswith("INSERT"):
            time.sleep(0.5)
        return self._store.command(sql, *args, **kwargs)


def test_sync_waits_for_a_flush_already_under_way(store: Any, tmp_path: Path) -> None:
    journal = JournaledLog(_SlowInserts(store), tmp_path / "j", MemoryLog(), flush_interval_s=3600)  # type: ignore[arg-type]
    intent = _intent()
    journal.append(
        intent_record("default", intent, Decision.PROCEED, "", time.time_ns()), intent.intent_id
    )
    flushing = threading.Thread(target=journal._flush)
    flushing.start()
    time.sleep(0.1)  # the flush has taken the record and is inserting it
    journal.sync()  # a reader's barrier: returns only once the record is in the store
    assert _count(store) == 1
    flushing.join()
    journal.close()
