"""Pause and resume: a paused run parks at its next governed tool and goes on, with its state,
when resumed; the tool body runs exactly once. Real embedded server; the CLI as users run it."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from openinference.instrumentation import using_session
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agentledger.instrumentation.governance import (
    RunCancelled,
    RunPaused,
    cancel_paused_runs,
    flush_outcomes,
    governed_call,
    governed_tool,
)
from agentledger.instrumentation.principal import acting_for
from agentledger.schemas.attributes import Governance as GOV
from tests.conftest import API_KEYS
from tests.governance.helpers import intents, outcomes

CLI = [sys.executable, "-m", "agentledger.cli"]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    """The CLI in its own process, as an operator runs it."""
    env = {
        k: v for k, v in os.environ.items() if k not in ("AGENTLEDGER_API_KEY", "AGENTLEDGER_URL")
    }
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, timeout=120, env=env, check=False
    )


def _cli_here(*args: str) -> Any:
    """The CLI in this process (typer's runner): same commands, no interpreter start-up."""
    from typer.testing import CliRunner

    from agentledger.cli import app

    return CliRunner().invoke(
        app, list(args), env={"AGENTLEDGER_API_KEY": None, "AGENTLEDGER_URL": None}
    )


def _wait_for(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def _parked(store: Any, tool: str) -> Callable[[], bool]:
    return lambda: any(r["decision"] == "paused" for r in intents(store, tool_name=tool))


def _control(url: str, action: str, scope: str, target: str, **extra: Any) -> dict[str, Any]:
    resp = httpx.post(
        f"{url}/v1/controls",
        json={
            "action": action,
            "scope": scope,
            "target": target,
            "by": "ops",
            "reason": f"{action} for test",
            **extra,
        },
    )
    assert resp.status_code == 200, resp.text
    return resp.json()  # type: ignore[no-any-return]


def test_pause_from_another_process_then_resume(governed: Any, store: Any) -> None:
    url = governed.url
    calls: list[str] = []
    may_continue = threading.Event()

    @governed_tool
    def lookup_vendor(vendor: str) -> dict[str, Any]:
        calls.append("lookup")
        return {"vendor": vendor, "iban": "DE89 3704 0044 0532 0130 00"}

    @governed_tool(agent="ap-agent")
    def pay_vendor(iban: str, amount: int) -> str:
        calls.append("pay")
        return f"paid {amount} to {iban}"

    run: dict[str, Any] = {}

    def agent() -> None:
        with acting_for("clerk@acme"), using_session("sess-pay-1"):
            vendor = lookup_vendor("Globex")  # state built before the pause...
            may_continue.wait(30)
            receipt = pay_vendor(vendor["iban"], 9_500)  # ...used after it
            calls.append("after")
            run["receipt"] = receipt

    thread = threading.Thread(target=agent)
    thread.start()
    _wait_for(lambda: calls == ["lookup"], what="the first tool")

    paused = _cli(
        "pause",
        "--session",
        "sess-pay-1",
        "--reason",
        "fraud review: new IBAN",
        "--by",
        "alice",
        "--url",
        url,
    )
    assert paused.returncode == 0, paused.stderr
    # no keys: the recorder is "api"; the --by name is kept as a note beside it
    assert "paused session sess-pay-1" in paused.stdout and "by api (for alice)" in paused.stdout
    may_continue.set()
    _wait_for(_parked(store, "pay_vendor"), what="the call to park")
    time.sleep(0.3)  # parked calls keep asking; the body must still not run
    assert calls == ["lookup"] and thread.is_alive()

    listed = _cli_here("controls", "--json", "--url", url)
    assert listed.exit_code == 0, listed.stderr
    (active,) = json.loads(listed.stdout)
    assert (active["action"], active["scope"], active["target"]) == (
        "pause",
        "session",
        "sess-pay-1",
    )
    assert active["by"] == "api" and active["note"] == "alice"
    assert active["reason"] == "fraud review: new IBAN"

    resumed = _cli(
        "resume",
        "--session",
        "sess-pay-1",
        "--reason",
        "IBAN verified by phone",
        "--by",
        "bob",
        "--url",
        url,
    )
    assert resumed.returncode == 0, resumed.stderr
    thread.join(30)
    assert not thread.is_alive()
    assert calls == ["lookup", "pay", "after"]  # the body ran exactly once; the run went on
    assert run["receipt"] == "paid 9500 to DE89 3704 0044 0532 0130 00"

    (row,) = intents(store, tool_name="pay_vendor")  # one intent for the call, whatever the re-asks
    assert (
        row["decision"] == "proceed" and row["attempt"] >= 1 and row["session_id"] == "sess-pay-1"
    )
    assert flush_outcomes(5)
    (outcome,) = outcomes(store, row["intent_id"])
    assert outcome["status"] == "ok" and outcome["paused_ms"] > 300

    history = _cli_here("controls", "--all", "--json", "--url", url)
    events = json.loads(history.stdout)
    assert [(e["action"], e["by"], e["note"], e["reason"]) for e in events] == [
        ("resume", "api", "bob", "IBAN verified by phone"),
        ("pause", "api", "alice", "fraud review: new IBAN"),
    ]
    assert json.loads(_cli_here("controls", "--json", "--url", url).stdout) == []
    table = _cli_here("controls", "--all", "--url", url)
    assert table.exit_code == 0 and "alice" in table.stdout and "IBAN verified" in table.stdout


@pytest.mark.parametrize("scope", ["trace", "agent", "principal"])
def test_pause_by_trace_agent_or_delegating_principal(
    governed: Any, store: Any, scope: str, tracer_provider: TracerProvider
) -> None:
    ran: list[int] = []

    @governed_tool(agent="recon-agent")
    def reconcile(batch: int) -> int:
        ran.append(batch)
        return batch

    tracer = tracer_provider.get_tracer("test")
    with tracer.start_as_current_span("agent run") as root:
        trace_id = format(root.get_span_context().trace_id, "032x")
    target = {"trace": trace_id, "agent": "recon-agent", "principal": "cfo@acme"}[scope]
    _control(governed.url, "pause", scope, target)

    def agent() -> None:
        from opentelemetry import trace

        with (
            acting_for("cfo@acme"),
            acting_for("controller@acme"),
            trace.use_span(root, end_on_exit=False),
        ):
            reconcile(7)

    thread = threading.Thread(target=agent)
    thread.start()
    _wait_for(_parked(store, "reconcile"), what="the call to park")
    assert ran == []
    _control(governed.url, "resume", scope, target)
    thread.join(30)
    assert ran == [7]


def test_pause_longer_than_the_maximum_raises_run_paused(
    governed: Any, store: Any, spans: InMemorySpanExporter
) -> None:
    control = _control(governed.url, "pause", "session", "s-slow")
    ran: list[str] = []

    @governed_tool(max_pause_s=0.3)
    def export_ledger(period: str) -> None:
        ran.append(period)

    started = time.monotonic()
    with using_session("s-slow"), pytest.raises(RunPaused) as caught:
        export_ledger("2026-10")
    assert 0.3 <= time.monotonic() - started < 5
    assert not isinstance(caught.value, RunCancelled)
    assert caught.value.control_id == control["control_id"] and caught.value.waited_s >= 0.3
    assert ran == []
    assert flush_outcomes(5)
    (row,) = intents(store, tool_name="export_ledger")
    assert row["decision"] == "paused" and row["control_id"] == control["control_id"]
    (outcome,) = outcomes(store, row["intent_id"])
    assert outcome["status"] == "not_run" and outcome["error_type"] == "RunPaused"
    (span,) = [s for s in spans.get_finished_spans() if s.name == "export_ledger"]
    assert span.attributes is not None and span.attributes[GOV.INTENT_STATUS] == "paused_out"


def test_parked_calls_are_cancellable(governed: Any, store: Any) -> None:
    _control(governed.url, "pause", "agent", "cancel-me")
    ran: list[str] = []
    own_event = threading.Event()
    errors: dict[str, BaseException] = {}

    @governed_tool(agent="cancel-me")
    def step(name: str) -> None:
        ran.append(name)

    def parked(name: str, event: threading.Event | None = None) -> None:
        try:
            with governed_call(cancel_event=event):
                step(name)
        except BaseException as exc:
            errors[name] = exc

    by_helper = [threading.Thread(target=parked, args=(f"helper-{i}",)) for i in range(2)]
    by_event = threading.Thread(target=parked, args=("event", own_event))
    for t in (*by_helper, by_event):
        t.start()
    _wait_for(
        lambda: (
            len([r for r in intents(store, tool_name="step") if r["decision"] == "paused"]) == 3
        ),
        what="three parked calls",
    )
    own_event.set()
    by_event.join(10)
    assert isinstance(errors["event"], RunCancelled)
    assert cancel_paused_runs() == 2
    for t in by_helper:
        t.join(10)
    assert all(isinstance(errors[f"helper-{i}"], RunCancelled) for i in range(2))
    assert ran == []


def test_async_tool_parks_resumes_and_cancels(governed: Any, store: Any) -> None:
    ran: list[str] = []

    @governed_tool(agent="async-agent")
    async def notify(channel: str) -> str:
        ran.append(channel)
        return channel

    async def scenario() -> None:
        _control(governed.url, "pause", "agent", "async-agent")
        resumed = asyncio.create_task(notify("email"))
        cancelled = asyncio.create_task(notify("sms"))
        for _ in range(500):
            if (
                len([r for r in intents(store, tool_name="notify") if r["decision"] == "paused"])
                == 2
            ):
                break
            await asyncio.sleep(0.02)
        assert ran == [] and not resumed.done()
        cancelled.cancel()  # asyncio cancellation ends a parked call
        with pytest.raises(asyncio.CancelledError):
            await cancelled
        _control(governed.url, "resume", "agent", "async-agent")
        assert await asyncio.wait_for(resumed, 10) == "email"

    asyncio.run(scenario())
    assert ran == ["email"]
    assert flush_outcomes(5)
    statuses = sorted(
        o["status"]
        for r in intents(store, tool_name="notify")
        for o in outcomes(store, r["intent_id"])
    )
    assert statuses == ["not_run", "ok"]


def test_every_replica_sees_a_pause(server: Any, store: Any) -> None:
    from agentledger.collector import CollectorSettings
    from agentledger.compose import build_embedded_app
    from agentledger.pipeline.settings import StoreSettings
    from agentledger.server import AppServer

    replica = AppServer(
        build_embedded_app(CollectorSettings(no_auth=True, port=0), StoreSettings(), store)
    )
    with replica:
        replica.app.state.services.governance.get().controls.ttl_s = 0.2

        def ask(url: str) -> str:
            import hashlib
            import uuid

            body = {
                "intent_id": uuid.uuid4().hex,
                "tool_name": "t",
                "session_id": "shared-s",
                "arguments_sha256": hashlib.sha256(b"").hexdigest(),
            }
            resp = httpx.post(f"{url}/v1/intents", json=body)
            assert resp.status_code == 200, resp.text
            return resp.json()["decision"]  # type: ignore[no-any-return]

        assert ask(replica.url) == "proceed"  # the replica has read the controls now
        _control(server.url, "pause", "session", "shared-s")  # recorded through the other replica
        assert ask(server.url) == "paused"
        started = time.monotonic()
        _wait_for(
            lambda: ask(replica.url) == "paused", timeout=5, what="the replica to see the pause"
        )
        assert (
            time.monotonic() - started < 3
        )  # the 0.2 s TTL plus a query, with slack for a loaded machine
        _control(replica.url, "resume", "session", "shared-s")
        assert ask(replica.url) == "proceed"
        _wait_for(
            lambda: ask(server.url) == "proceed",
            timeout=5,
            what="the first replica to see the resume",
        )


def test_controls_belong_to_the_tenant_and_record_who(auth_server: Any, store: Any) -> None:
    url = auth_server.url
    acme = {"Authorization": f"Bearer {API_KEYS['acme']}"}
    globex = {"Authorization": f"Bearer {API_KEYS['globex']}"}
    resp = httpx.post(
        f"{url}/v1/controls",
        headers=acme,
        json={"action": "pause", "scope": "session", "target": "s-1", "reason": "audit"},
    )
    assert (
        resp.status_code == 200
        and resp.json()["by"].startswith("key:")  # the key's name (an old-form key: its id)
        and resp.json()["tenant"] == "acme"
    )
    assert (
        httpx.post(
            f"{url}/v1/controls", json={"action": "pause", "scope": "session", "target": "s-1"}
        ).status_code
        == 401
    )

    def decision(headers: dict[str, str]) -> str:
        import hashlib
        import uuid

        body = {
            "intent_id": uuid.uuid4().hex,
            "tool_name": "t",
            "session_id": "s-1",
            "arguments_sha256": hashlib.sha256(b"").hexdigest(),
        }
        return httpx.post(f"{url}/v1/intents", json=body, headers=headers).json()["decision"]  # type: ignore[no-any-return]

    assert decision(acme) == "paused" and decision(globex) == "proceed"
    listed = _cli_here("controls", "--json", "--url", url, "--api-key", API_KEYS["globex"])
    assert listed.exit_code == 0 and json.loads(listed.stdout) == []
    listed = _cli_here("controls", "--json", "--url", url, "--api-key", API_KEYS["acme"])
    assert [c["target"] for c in json.loads(listed.stdout)] == ["s-1"]


def test_cli_refuses_unclear_controls(server: Any) -> None:
    both = _cli_here(
        "pause", "--session", "a", "--agent", "b", "--reason", "x", "--url", server.url
    )
    assert both.exit_code == 1 and "exactly one of" in both.stderr
    bad_trace = _cli_here("pause", "--trace", "xyz", "--reason", "x", "--url", server.url)
    assert bad_trace.exit_code == 1 and "32 hex digits" in bad_trace.stderr
    no_reason = _cli_here("pause", "--session", "a", "--url", server.url)
    assert no_reason.exit_code == 2 and "--reason" in no_reason.stderr
    down = _cli_here("controls", "--url", "http://127.0.0.1:9")
    assert down.exit_code == 1 and "cannot reach the server" in down.stderr
    assert httpx.get(f"{server.url}/v1/controls").json()["controls"] == []  # nothing was recorded
    assert (
        httpx.post(
            f"{server.url}/v1/controls", json={"action": "pause", "scope": "galaxy", "target": "x"}
        ).status_code
        == 422
    )
