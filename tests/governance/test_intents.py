"""Logged before taken: a governed tool's intent is durable before its body runs, and its
outcome is recorded against it. Real embedded server (collector + chDB) on loopback."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import uuid
from typing import Any

import httpx
import pytest
from openinference.instrumentation import using_session
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agentledger.instrumentation.governance import (
    IntentNotRecorded,
    canonical_json,
    flush_outcomes,
    governed_call,
    governed_tool,
)
from agentledger.instrumentation.principal import acting_for
from agentledger.pipeline.governance import MemoryLog
from agentledger.schemas.attributes import Governance as GOV
from agentledger.schemas.attributes import OpenInference as OI
from agentledger.schemas.contents import canonical_bytes, content_hash
from tests.governance.helpers import intents, outcomes


def _run(fn: Any, *args: Any, **kwargs: Any) -> Any:
    result = fn(*args, **kwargs)
    return asyncio.run(result) if asyncio.iscoroutine(result) else result


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_intent_is_in_the_store_before_the_body_runs(
    governed: Any, store: Any, flavour: str
) -> None:
    seen_in_body: list[list[dict[str, Any]]] = []

    def body(account: str, amount: float) -> dict[str, Any]:
        seen_in_body.append(intents(store, tool_name="transfer"))
        return {"ok": True, "account": account, "amount": amount}

    if flavour == "sync":

        @governed_tool(name="transfer")
        def transfer(account: str, amount: float, memo: str = "") -> dict[str, Any]:
            return body(account, amount)
    else:

        @governed_tool(name="transfer")
        async def transfer(account: str, amount: float, memo: str = "") -> dict[str, Any]:  # type: ignore[misc]
            await asyncio.sleep(0)
            return body(account, amount)

    result = _run(transfer, "ACME-001", 250.5)
    assert result == {"ok": True, "account": "ACME-001", "amount": 250.5}
    assert len(seen_in_body) == 1 and len(seen_in_body[0]) == 1
    row = seen_in_body[0][0]
    arguments = {"account": "ACME-001", "amount": 250.5, "memo": ""}
    assert row["arguments"] == canonical_json(arguments)
    # the same canonical form and hash the pipeline uses for contents
    assert row["arguments_sha256"] == content_hash(canonical_bytes(arguments))
    assert row["decision"] == "proceed" and row["attempt"] == 0

    assert flush_outcomes(5)
    (outcome,) = outcomes(store, row["intent_id"])
    assert outcome["status"] == "ok"
    assert outcome["result"] == canonical_json(result)
    assert outcome["result_sha256"] == hashlib.sha256(outcome["result"].encode()).hexdigest()
    assert outcome["duration_ms"] >= 0


def test_acknowledged_means_stored(server: Any, store: Any) -> None:
    args = canonical_json({"q": "x"})
    body = {
        "intent_id": uuid.uuid4().hex,
        "tool_name": "search",
        "arguments": args,
        "arguments_sha256": hashlib.sha256(args.encode()).hexdigest(),
    }
    with httpx.Client(base_url=server.url) as client:
        resp = client.post("/v1/intents", json=body)
        assert resp.status_code == 200, resp.text
        assert resp.json() == {
            "intent_id": body["intent_id"],
            "attempt": 0,
            "stored": True,
            "decision": "proceed",
        }
        # no waiting: the row is there the moment the answer is
        assert [r["intent_id"] for r in intents(store, intent_id=body["intent_id"])] == [
            body["intent_id"]
        ]

        # a retried ask (lost answer) and a re-ask (attempt 1) leave one row, the latest ask
        assert client.post("/v1/intents", json=body).status_code == 200
        assert client.post("/v1/intents", json={**body, "attempt": 1}).status_code == 200
    rows = intents(store, intent_id=body["intent_id"])
    assert len(rows) == 1 and rows[0]["attempt"] == 1


def test_intent_records_who_why_and_which_span_chose_the_call(
    governed: Any, store: Any, tracer_provider: TracerProvider, spans: InMemorySpanExporter
) -> None:
    @governed_tool(name="post_journal_entry", policy="FIN-7", agent="finance-agent")
    def post_entry(entry_id: str, amount: int) -> str:
        return f"posted {entry_id}"

    tracer = tracer_provider.get_tracer("test")
    with (
        acting_for("cfo@acme", name="Dana CFO", role="cfo"),
        acting_for("controller@acme", name="Ola", role="controller"),
        using_session("session-42"),
        tracer.start_as_current_span("llm chat") as llm,
        governed_call(tool_call_id="call_abc123"),
    ):
        assert post_entry("JE-4471", 4_000_000) == "posted JE-4471"
    llm_ctx = llm.get_span_context()

    (row,) = intents(store, tool_name="post_journal_entry")
    assert row["principal_id"] == "controller@acme" and row["principal_name"] == "Ola"
    assert row["principal_chain"] == ["cfo@acme", "controller@acme"]
    assert row["policy_id"] == "FIN-7" and row["agent_name"] == "finance-agent"
    assert row["session_id"] == "session-42" and row["tool_call_id"] == "call_abc123"
    assert row["trace_id"] == format(llm_ctx.trace_id, "032x")
    assert row["parent_span_id"] == format(llm_ctx.span_id, "016x")

    (tool_span,) = [s for s in spans.get_finished_spans() if s.name == "post_journal_entry"]
    attrs = dict(tool_span.attributes or {})
    assert attrs[OI.SPAN_KIND] == "TOOL" and attrs[OI.TOOL_NAME] == "post_journal_entry"
    assert attrs[GOV.INTENT_ID] == row["intent_id"] and attrs[OI.TOOL_CALL_ID] == "call_abc123"
    assert attrs[GOV.INTENT_STATUS] == "recorded"
    assert (
        attrs[OI.INPUT_VALUE] == row["arguments"] and attrs[OI.OUTPUT_VALUE] == '"posted JE-4471"'
    )
    assert format(tool_span.context.span_id, "016x") == row["span_id"]
    assert tool_span.parent is not None and tool_span.parent.span_id == llm_ctx.span_id


def test_the_tools_exception_is_recorded_and_reraised_unchanged(governed: Any, store: Any) -> None:
    error = ValueError("account frozen")

    @governed_tool
    def freeze_check(account: str) -> None:
        raise error

    with pytest.raises(ValueError) as caught:
        freeze_check("ACME-9")
    assert caught.value is error
    assert flush_outcomes(5)
    (row,) = intents(store, tool_name="freeze_check")
    (outcome,) = outcomes(store, row["intent_id"])
    assert outcome["status"] == "error" and outcome["error_type"] == "ValueError"
    assert outcome["error_message"] == "account frozen"


def test_redacted_and_uncaptured_arguments_keep_the_real_hash(governed: Any, store: Any) -> None:
    @governed_tool(redact=lambda a: {**a, "card": "[REDACTED]"})
    def charge(card: str, cents: int) -> bool:
        return True

    @governed_tool(capture_arguments=False, capture_result=False)
    def secret_lookup(key: str) -> str:
        return "s3cr3t"

    charge("4111 1111 1111 1111", 500)
    secret_lookup("vault/key")
    assert flush_outcomes(5)
    (charged,) = intents(store, tool_name="charge")
    assert "4111" not in charged["arguments"] and charged["arguments_redacted"]
    assert charged["arguments_sha256"] == content_hash(
        canonical_bytes({"card": "4111 1111 1111 1111", "cents": 500})
    )
    (looked,) = intents(store, tool_name="secret_lookup")
    assert looked["arguments"] == "" and looked["arguments_redacted"]
    assert looked["arguments_sha256"] == content_hash(canonical_bytes({"key": "vault/key"}))
    (outcome,) = outcomes(store, looked["intent_id"])
    assert outcome["result"] == "" and outcome["result_sha256"] == content_hash('"s3cr3t"')


def test_arguments_that_do_not_match_their_hash_are_refused(governed: Any, store: Any) -> None:
    body = {
        "intent_id": uuid.uuid4().hex,
        "tool_name": "t",
        "arguments": '{"a":1}',
        "arguments_sha256": "0" * 64,
    }
    resp = httpx.post(f"{governed.url}/v1/intents", json=body)
    assert resp.status_code == 400 and "does not match" in resp.json()["detail"]
    assert intents(store, intent_id=body["intent_id"]) == []


# -- when the intent cannot be recorded -----------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_collector_down_the_tool_does_not_run(flavour: str) -> None:
    from agentledger.instrumentation.governance import configure_governance

    ran: list[str] = []
    configure_governance(f"http://127.0.0.1:{_free_port()}", timeout_s=2)
    try:
        if flavour == "sync":

            @governed_tool
            def wire_money(amount: int) -> None:
                ran.append("closed")

            @governed_tool(fail_open=True)
            def read_balance(account: str) -> int:
                ran.append("open")
                return 42
        else:

            @governed_tool
            async def wire_money(amount: int) -> None:  # type: ignore[misc]
                ran.append("closed")

            @governed_tool(fail_open=True)
            async def read_balance(account: str) -> int:  # type: ignore[misc]
                ran.append("open")
                return 42

        with pytest.raises(IntentNotRecorded, match="refused the connection") as caught:
            _run(wire_money, 10)
        assert caught.value.tool == "wire_money"
        assert ran == []
        assert _run(read_balance, "A-1") == 42  # fail-open: runs, unrecorded
        assert ran == ["open"]
    finally:
        configure_governance("http://127.0.0.1:9")


def test_collector_that_does_not_answer_in_time(
    spans: InMemorySpanExporter, tracer_provider: TracerProvider
) -> None:
    from agentledger.instrumentation.governance import configure_governance

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # accepts connections (kernel backlog), never answers
    ran: list[int] = []
    configure_governance(
        f"http://127.0.0.1:{silent.getsockname()[1]}",
        timeout_s=0.3,
        tracer_provider=tracer_provider,
    )
    try:

        @governed_tool
        def delete_records(n: int) -> None:
            ran.append(n)

        with pytest.raises(IntentNotRecorded, match="did not answer within 0.3s"):
            delete_records(3)
        assert ran == []
        (span,) = spans.get_finished_spans()
        assert span.attributes is not None and span.attributes[GOV.INTENT_STATUS] == "unrecorded"
        assert span.status.status_code.name == "ERROR"
    finally:
        silent.close()
        configure_governance("http://127.0.0.1:9")


def test_store_unavailable_answers_503_and_the_tool_does_not_run(governed: Any, store: Any) -> None:
    service = governed.app.state.services.governance.get()
    down = MemoryLog()
    down.unavailable = "store unavailable: connection refused"
    real, service.intents = service.intents, down
    ran: list[int] = []
    try:

        @governed_tool
        def approve(n: int) -> None:
            ran.append(n)

        with pytest.raises(IntentNotRecorded, match="HTTP 503.*store unavailable"):
            approve(1)
        assert ran == []
    finally:
        service.intents = real
    approve(2)
    assert ran == [2]


def test_agent_killed_between_intent_and_outcome_leaves_the_intent(server: Any, store: Any) -> None:
    script = textwrap.dedent(
        f"""
        import os, signal, sys
        from agentledger.instrumentation.governance import configure_governance, governed_tool
        from agentledger.instrumentation.principal import acting_for

        configure_governance({server.url!r})

        @governed_tool(policy="PAY-1")
        def pay_invoice(invoice: str, amount: int) -> str:
            sys.stdout.write("in body\\n"); sys.stdout.flush()
            os.kill(os.getpid(), signal.SIGKILL)
            return "paid"

        with acting_for("ap-clerk@acme"):
            pay_invoice("INV-77", 1200)
        print("survived")
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    assert out.returncode == -signal.SIGKILL, out.stderr
    assert out.stdout == "in body\n"
    (row,) = intents(store, tool_name="pay_invoice")
    assert row["arguments"] == canonical_json({"invoice": "INV-77", "amount": 1200})
    assert row["principal_id"] == "ap-clerk@acme" and row["policy_id"] == "PAY-1"
    assert outcomes(store, row["intent_id"]) == []


def test_concurrent_asks_are_all_stored(governed: Any, store: Any) -> None:
    @governed_tool
    def fetch(i: int) -> int:
        return i

    results: list[int] = []
    threads = [threading.Thread(target=lambda i=i: results.append(fetch(i))) for i in range(24)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(results) == list(range(24))
    rows = intents(store, tool_name="fetch")
    assert sorted(int(r["arguments"][5:-1]) for r in rows) == list(range(24))


def test_without_configuration_tools_follow_the_environment(
    server: Any, store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agentledger.instrumentation.governance import configure_governance

    monkeypatch.setenv(
        "AGENTLEDGER_ENDPOINT", f"{server.url}/v1/traces"
    )  # what instrument() exports to
    monkeypatch.setenv("AGENTLEDGER_AGENT_NAME", "env-agent")
    configure_governance()  # defaults: follow instrument() and the environment
    try:

        @governed_tool
        def ping(n: int) -> int:
            return n

        assert ping(1) == 1
        (row,) = intents(store, tool_name="ping")
        assert row["agent_name"] == "env-agent"
    finally:
        configure_governance("http://127.0.0.1:9")


def test_arguments_json_cannot_carry_are_still_recorded(governed: Any, store: Any) -> None:
    @governed_tool
    def odd(text: str, big: int, blob: bytes, when: Any) -> str:
        return "ok"

    import datetime

    assert odd("lone \ud800 surrogate", 2**70, b"\x00\xff", datetime.date(2026, 1, 2)) == "ok"
    (row,) = intents(store, tool_name="odd")
    assert row["arguments_sha256"] == hashlib.sha256(row["arguments"].encode()).hexdigest()
    assert str(2**70) in row["arguments"] and "2026-01-02" in row["arguments"]
