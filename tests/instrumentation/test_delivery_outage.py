"""Outages: with the collector down, spans wait in the spool and all arrive, once, when it is back.

Also across processes: an agent that exits while the collector is down says so
in one log line and leaves its spans in the spool; one killed with SIGKILL
leaves them too; the next agent process that starts with the collector up
sends both, and the collector stores each span once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

import agentledger
from agentledger.instrumentation.capture import CaptureConfig
from agentledger.instrumentation.delivery import OTLPSink
from agentledger.instrumentation.exporter import SpanRewriter
from agentledger.instrumentation.losses import LossLedger
from agentledger.instrumentation.sender import OTLPSender
from agentledger.instrumentation.spool import Spool
from tests.instrumentation import chat_agent
from tests.instrumentation.conftest import RecordingProxy, free_port

REPO = Path(__file__).resolve().parents[2]


def _stored(server: Any) -> tuple[int, int]:
    row = server.store.query_rows(
        "SELECT count() AS n, uniqExact(span_id) AS ids FROM spans WHERE name = 'ChatCompletion'"
    )[0]
    return int(row["n"]), int(row["ids"])


def _wait_for(condition: Any, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def _spans_in(body: bytes) -> list[Any]:
    req = ExportTraceServiceRequest()
    req.ParseFromString(body)
    return [s for rs in req.resource_spans for ss in rs.scope_spans for s in ss.spans]


def _spooled(directory: Path) -> int:
    return sum(int(p.name[:-5].split("-")[3]) for p in directory.rglob("*.otlp"))


def test_collector_down_then_up_every_span_arrives_once_in_order(
    server: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, instrumented: Any
) -> None:
    spool_dir = tmp_path / "spool"
    monkeypatch.setenv("AGENTLEDGER_SPOOL_DIR", str(spool_dir))
    port = free_port()
    state = instrumented(endpoint=f"http://127.0.0.1:{port}", instrumentors=["openai"])
    chat = chat_agent.client()
    made = 0
    while made < 300:  # down: a batch fails and goes to the spool, later ones queue behind it
        chat_agent.calls(25, chat)
        made += 25
        assert not agentledger.flush(100)
    assert _wait_for(lambda: _spooled(spool_dir) == 300)
    gate = RecordingProxy(server.url, port=port)  # up again, where it was
    try:
        assert agentledger.flush(30_000)
        assert _stored(server) == (300, 300)
        assert _spooled(spool_dir) == 0
        starts = [s.start_time_unix_nano for body in gate.bodies for s in _spans_in(body)]
        assert len(starts) == 300 and starts == sorted(starts)  # in the order they were made
        assert state.losses.total == 0
    finally:
        gate.close()


def test_backoff_is_capped_so_a_long_outage_ends_in_seconds(tmp_path: Path) -> None:
    """The mechanism behind a 20 s outage: retries back off to at most 5 s, never further."""
    sender = OTLPSender(f"http://127.0.0.1:{free_port()}/v1/traces", timeout=1.0)
    spool = Spool.open(tmp_path, sender.key, 1 << 20)
    assert spool is not None and spool.append(b"\x0a\x00", 1)
    sink = OTLPSink(sender, SpanRewriter(CaptureConfig.resolve(None), None), spool, LossLedger())
    waits = []
    for _ in range(8):
        sink.drain(force=True)
        waits.append(round(sink.retry_in(), 1))
    assert waits == [0.2, 0.5, 1.0, 2.0, 4.0, 5.0, 5.0, 5.0]
    assert [e.spans for e in spool.entries()] == [1]  # kept, not dropped


def _agent(endpoint: str, env: dict[str, str], calls: int, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.instrumentation.chat_agent",
            endpoint,
            str(calls),
            "1000",
            *extra,
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_exit_and_kill_9_while_down_then_a_restart_delivers_everything_once(
    server: Any, tmp_path: Path
) -> None:
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    spool_dir = tmp_path / "spool"
    env = {
        **os.environ,
        "AGENTLEDGER_SPOOL_DIR": str(spool_dir),
        "AGENTLEDGER_FLUSH_TIMEOUT_S": "1",
        "PYTHONPATH": str(REPO),
    }
    # 1. exits normally while the collector is down: the atexit flush gives up, says so once
    first = _agent(endpoint, env, 40)
    out, err = first.communicate(timeout=120)
    assert first.returncode == 0 and "done False" in out
    lines = [line for line in err.splitlines() if "stay in the spool" in line]
    assert len(lines) == 1 and "40 spans" in lines[0]
    # 2. killed with SIGKILL while the collector is down, after its spans reached the spool
    second = _agent(endpoint, env, 60, "hang")
    assert second.stdout is not None
    assert second.stdout.readline().strip() == "done False"  # flush gave up: the collector is down
    assert _wait_for(lambda: _spooled(spool_dir) == 100)  # all of them on disk...
    second.send_signal(signal.SIGKILL)  # ...when the agent dies
    second.wait(timeout=30)
    assert _spooled(spool_dir) == 100
    # a request sent, stored, but not yet removed when the agent died: sent twice, stored once
    oldest = min(spool_dir.rglob("*.otlp"))
    again = oldest.with_name(f"{time.time_ns():020d}-0000000-00000000-{oldest.name.split('-')[3]}")
    oldest_body = oldest.read_bytes()
    again.write_bytes(oldest_body)
    # 3. the collector is back; a new agent process sends what the others left, then its own
    gate = RecordingProxy(server.url, port=port)
    try:
        third = _agent(endpoint, env, 5)
        out, err = third.communicate(timeout=120)
        assert third.returncode == 0 and "done True" in out, err
        assert oldest_body in gate.raw()  # the duplicate did go out again...
        assert len(gate.spans()) == 105 + len(_spans_in(oldest_body))
        assert _stored(server) == (105, 105)  # ...and every span is stored once
        assert _spooled(spool_dir) == 0
    finally:
        gate.close()
