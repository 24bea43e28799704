"""The issue's outage, as a user meets it: the collector down for the first 20 s of a run of 300
chat calls, then up. Before the spool, 210 of 300 spans arrived (the SDK exporter's retries ran
out); now every one of them is stored, once.

Real parts only: ``agentledger serve`` in a child process on a loopback port (its own data
directory), started 20 s into the run on the port the agent was told; the agent is this process,
instrumented with ``agentledger.instrument()`` and calling the OpenAI SDK on a mock transport.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

import agentledger
from tests.instrumentation import chat_agent
from tests.instrumentation.conftest import free_port

CALLS = 300
DOWN_S = 20.0
PACE_S = 0.1  # 300 calls over 30 s: two thirds of them while the collector is down


def _serve(data: Path, port: int) -> subprocess.Popen[bytes]:
    """``agentledger serve`` on ``port``; not waited for (it comes up while the agent runs)."""
    return subprocess.Popen(
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
        env={k: v for k, v in os.environ.items() if k != "AGENTLEDGER_DATABASE"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _traces(base: str) -> list[dict[str, Any]]:
    try:
        resp = httpx.get(f"{base}/api/v1/traces", params={"limit": 1000}, timeout=10)
    except httpx.HTTPError:
        return []
    return list(resp.json()) if resp.status_code == 200 else []


def _spooled(directory: Path) -> int:
    return sum(int(p.name[:-5].split("-")[3]) for p in directory.rglob("*.otlp"))


@pytest.mark.slow
def test_collector_down_for_the_first_20_s_of_300_calls_then_every_span_is_stored_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool_dir = tmp_path / "spool"
    monkeypatch.setenv("AGENTLEDGER_SPOOL_DIR", str(spool_dir))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    state = agentledger.instrument(
        endpoint=base,
        agent_name="outage-agent",
        instrumentors=["openai"],
        tracer_provider=TracerProvider(resource=Resource.create({"service.name": "outage-agent"})),
    )
    collector: subprocess.Popen[bytes] | None = None
    try:
        chat = chat_agent.client()
        start = time.monotonic()
        for i in range(CALLS):
            pause = start + i * PACE_S - time.monotonic()  # the agent's own pace, not a wait
            if pause > 0:
                time.sleep(pause)
            if collector is None and time.monotonic() - start >= DOWN_S:
                # 20 s down: what was made so far failed to send and waits on disk
                assert _spooled(spool_dir) >= 150
                assert state.losses.total == 0
                collector = _serve(tmp_path / "data", port)
            chat_agent.calls(1, chat)
        assert collector is not None
        assert agentledger.flush(90_000), "the spool did not drain after the collector came back"
        assert _spooled(spool_dir) == 0
        deadline = time.monotonic() + 60
        while len(found := _traces(base)) < CALLS and time.monotonic() < deadline:
            assert collector.poll() is None, collector.stderr.read() if collector.stderr else ""
            time.sleep(0.2)
        # each call is a trace of one span: 300 traces of one span each is every span, once
        assert len(found) == CALLS
        assert len({t["trace_id"] for t in found}) == CALLS
        assert {t["span_count"] for t in found} == {1}
        assert sum(t["llm_calls"] for t in found) == CALLS
        assert {t["agent_name"] for t in found} == {"outage-agent"}
        assert state.losses.total == 0
    finally:
        agentledger.uninstrument()
        if collector is not None:
            collector.terminate()
            collector.wait(timeout=60)
