"""The captured spans and log events of OpenTelemetry's own OpenAI instrumentation, replayed into a
real ``serve``: the chat span shows the user's question and the model's answer, whichever of logs
and traces arrives first, in the trace detail, the content API and the audit."""

from __future__ import annotations

import httpx
import pytest

from tests.logs.conftest import MANIFEST, PB, ids, otlp_json, payload


def _post(url: str, signal: str, body: bytes, json_body: bool = False) -> httpx.Response:
    headers = {"content-type": "application/json"} if json_body else PB
    return httpx.post(f"{url}/v1/{signal}", content=body, headers=headers, timeout=30)


@pytest.mark.parametrize("order", [("logs", "traces"), ("traces", "logs")], ids="-then-".join)
def test_the_chat_span_shows_the_messages_of_its_log_events(server, mode, order) -> None:
    trace_id, span_id = ids(mode)
    as_json = order[0] == "traces"  # the logs then come as OTLP/JSON, else as protobuf
    for signal in order:
        body = payload(mode, signal)
        if signal == "logs" and as_json:
            body = otlp_json(body, signal)
        resp = _post(server.url, signal, body, json_body=signal == "logs" and as_json)
        assert resp.status_code == 200, resp.text
    detail = httpx.get(f"{server.url}/api/v1/traces/{trace_id}", timeout=30).json()
    (chat,) = [s for s in detail["spans"] if s["span_id"] == span_id]
    assert chat["kind"] == "LLM" and chat["input_hash"] and chat["output_hash"]
    expected = MANIFEST[mode]
    inputs = httpx.get(f"{server.url}/api/v1/contents/{chat['input_hash']}", timeout=30).json()
    outputs = httpx.get(f"{server.url}/api/v1/contents/{chat['output_hash']}", timeout=30).json()
    assert inputs["kind"] == "messages" and outputs["kind"] == "messages"
    assert inputs["content"] == (
        '[{"content":"' + expected["system"] + '","role":"system"},'
        '{"content":"' + expected["question"] + '","role":"user"}]'
    )
    assert outputs["content"] == '[{"content":"' + expected["answer"] + '","role":"assistant"}]'
    assert chat["output_preview"] == expected["answer"]
    names = [log["event_name"] for log in chat["logs"]]
    assert names == (
        ["gen_ai.system.message", "gen_ai.user.message", "gen_ai.choice"]
        if mode == "events"
        else ["gen_ai.client.inference.operation.details"]
    )

    audit = httpx.get(f"{server.url}/api/v1/audit/{span_id}", timeout=30)
    assert audit.status_code == 200, audit.text
    text = audit.text
    assert expected["question"] in text and expected["answer"] in text


def test_agentledger_audit_lists_what_the_call_saw_and_answered(server) -> None:
    """The CLI as users run it (a child process asking the server's API)."""
    import json
    import os
    import subprocess
    import sys

    trace_id, span_id = ids("events")
    for signal in ("logs", "traces"):
        assert _post(server.url, signal, payload("events", signal)).status_code == 200
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTLEDGER_")}
    done = subprocess.run(
        [sys.executable, "-m", "agentledger.cli", "audit", span_id, "--url", server.url]
        + ["--format", "json"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    (action,) = report["actions"]
    assert trace_id in done.stdout and action["action"]["span_id"] == span_id
    assert action["action"]["messages"][-1] == {
        "role": "user",
        "content": MANIFEST["events"]["question"],
    }
    assert action["action"]["output"] == [
        {"role": "assistant", "content": MANIFEST["events"]["answer"]}
    ]
