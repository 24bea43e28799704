"""The ``agentledger`` command line, run as users run it (subprocesses)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

CLI = [sys.executable, "-m", "agentledger.cli"]


def _run(
    *args: str, timeout: float = 120, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    full_env.pop("AGENTLEDGER_API_KEYS", None)
    return subprocess.run(
        [*CLI, *args], capture_output=True, text=True, timeout=timeout, env=full_env
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_help_lists_every_command() -> None:
    out = _run("--help")
    assert out.returncode == 0
    for command in ("serve", "demo", "traces", "trace", "migrate", "version"):
        assert command in out.stdout


def test_demo_then_query_the_data_dir(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    out = _run("demo", "--json", "--data-dir", data)
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    # the executor's trace: its run received from the planner, retrieval, two model calls, the
    # lookup, and the governed posting
    assert summary["agents"] == ["planner-agent", "finance-controls-agent"]
    assert summary["spans_recorded"] == 7 and summary["llm_calls"] == 2
    assert summary["tool_calls"] == ["lookup_journal_entry", "post_controls_decision"]
    assert summary["documents"] and all(d["stored"] for d in summary["documents"])
    assert summary["models"] == ["gpt-4o -> gpt-4o-2024-08-06"]
    assert summary["decision"].startswith(("APPROVE", "ESCALATE"))
    assert (
        summary["planner"]["spans_recorded"] == 5
    )  # run, retrieval, model call, hand_off, handoff
    assert summary["handoff"]["from_agent"] == "planner-agent"
    assert summary["handoff"]["to_agent"] == "finance-controls-agent"
    assert summary["delegation_chain"] == [
        "controller@acme-corp.example",
        "planner-agent",
        "finance-controls-agent",
    ]

    # the governed posting: intent stored before the tool ran, parked by the pause, run once after
    # the resume, inside the executor's run
    gov = summary["governance"]
    assert gov["principal_id"] == "controller@acme-corp.example" and gov["policy_id"] == "FIN-7"
    assert gov["decision"] == "proceed" and gov["outcome"] == "ok" and gov["asks"] >= 2
    assert gov["parked_seconds"] > 0 and gov["trace_id"] == summary["trace_id"]
    assert [c["action"] for c in gov["controls"]] == ["resume", "pause"]
    assert [a["name"] for a in summary["posting"]["inside"]] == [
        "finance-controls-agent",
        "invoke_agent finance-controls-agent",
    ]
    # usage and the ledger count both agents' spans
    every_span = summary["spans_recorded"] + summary["planner"]["spans_recorded"]
    assert summary["usage"]["calls"] == every_span
    assert summary["usage"]["tokens"] > summary["tokens"]  # the planner's model call too
    assert summary["ledger"] == {
        "ok": True,
        "checkpoints": summary["ledger"]["checkpoints"],
        "rows": every_span,
        "problems": [],
    }
    audit = summary["audit"]
    assert audit["which_model_decided"]["answered_model"] == "gpt-4o-2024-08-06"
    assert audit["under_whose_authority"]["principal_id"] == "controller@acme-corp.example"
    assert audit["documents_verified"] and not audit["replay"]["error"]
    assert audit["replay"]["diff"]["same_tools"] and Path(audit["report"]).read_text().startswith(
        "#"
    )
    (hop,) = summary["posting"]["upstream"]
    assert hop["from_agent"] == "planner-agent" and hop["documents"] and hop["llm_calls"]
    assert summary["dataset"]["examples"] == 3 and summary["dataset"]["format"] == "chat"
    # the looked-up entry names its preparer's e-mail, which the second model call sent to the provider:
    # detected as sensitive egress, and redacted from the exported dataset
    egress = [a for a in summary["anomalies"] if a["type"] == "sensitive_egress"]
    assert egress and egress[0]["dimensions"] == {"detector": "email", "provider": "openai"}
    assert egress[0]["example_trace_ids"] == [summary["trace_id"]]
    train = (Path(data) / "datasets" / "train.jsonl").read_text()
    assert "dana.whitfield@acme-corp.example" not in train and "[REDACTED:EMAIL]" in train

    listed = _run("traces", "--json", "--data-dir", data)
    assert listed.returncode == 0, listed.stderr
    rows = {r["trace_id"]: r for r in json.loads(listed.stdout)}
    assert set(rows) == {summary["trace_id"], summary["planner"]["trace_id"]}
    assert rows[summary["trace_id"]]["span_count"] == 7

    one = _run("trace", summary["trace_id"], "--json", "--data-dir", data)
    assert one.returncode == 0, one.stderr
    tree = json.loads(one.stdout)["tree"]
    (received,) = tree
    assert received["name"] == "invoke_agent finance-controls-agent"
    (run,) = received["children"]
    assert run["kind"] == "AGENT" and len(run["children"]) == 5

    table = _run("trace", summary["trace_id"], "--data-dir", data)
    assert "lookup_journal_entry" in table.stdout and "gpt-4o-2024-08-06" in table.stdout
    assert "post_controls_decision" in table.stdout
    graph = _run("agents", "graph", "--data-dir", data)
    assert graph.returncode == 0, graph.stderr
    assert "planner-agent" in graph.stdout and "finance-controls-agent" in graph.stdout

    missing = _run("trace", "0" * 32, "--data-dir", data)
    assert missing.returncode == 1 and "no trace" in missing.stderr

    verified = _run("verify", "--data-dir", data)
    assert verified.returncode == 0 and "OK" in verified.stdout, verified.stdout + verified.stderr
    tamper = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from agentledger.pipeline.store.embedded import EmbeddedStore; s = EmbeddedStore(sys.argv[1]); "
            "s.command(\"ALTER TABLE spans UPDATE output_tokens = 0 WHERE kind = 'LLM' SETTINGS mutations_sync = 2\")",
            data,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert tamper.returncode == 0, tamper.stderr
    broken = _run("verify", "--data-dir", data, "--json")
    assert broken.returncode == 1
    report = json.loads(broken.stdout)
    assert (
        report["problems"][0]["kind"] == "rows_changed_or_deleted"
        and len(report["problems"][0]["spans"])
        == 3  # the planner's model call and the executor's two
    )


def test_serve_then_query_over_http(tmp_path: Path) -> None:
    port = _free_port()
    data = str(tmp_path / "served")
    proc = subprocess.Popen(
        [*CLI, "serve", "--no-auth", "--port", str(port), "--data-dir", data],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, (
                "server did not become ready"
            )
            time.sleep(0.2)
        tp = TracerProvider()
        tp.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{url}/v1/traces")))
        with tp.get_tracer("cli-test").start_as_current_span(
            "hello", attributes={"gen_ai.operation.name": "chat"}
        ):
            pass
        assert tp.force_flush(10_000)
        tp.shutdown()

        via_http = _run("traces", "--json", "--url", url)
        assert via_http.returncode == 0, via_http.stderr
        assert [r["root_name"] for r in json.loads(via_http.stdout)] == ["hello"]

        locked = _run("traces", "--data-dir", data)
        assert locked.returncode == 1
        assert "locked by another process" in locked.stderr and "--url" in locked.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    # uvicorn shuts down gracefully, then re-raises the signal it caught
    assert proc.returncode in (0, -signal.SIGTERM), out
    assert "Application shutdown complete" in out


def test_serve_refuses_to_start_without_keys_or_no_auth(tmp_path: Path) -> None:
    out = _run("serve", "--port", str(_free_port()), "--data-dir", str(tmp_path / "d"), timeout=60)
    assert out.returncode == 2
    assert "no API keys" in out.stderr and "agentledger keys create" in out.stderr


def test_version_reports_normalizer_sdk_and_fast_path() -> None:
    from importlib.metadata import version

    from agentledger.pipeline.normalize import native_available

    default = _run("version", "--json", env={"AGENTLEDGER_FAST_PATH": "1"})
    assert default.returncode == 0, default.stderr
    info = json.loads(default.stdout)
    assert set(info) == {"version", "normalizer", "otel_sdk", "fast_path"}
    assert info["version"] == version("agentledger")
    assert info["otel_sdk"] == version("opentelemetry-sdk")
    assert info["normalizer"] == ("native" if native_available() else "python")
    assert isinstance(info["fast_path"], bool)

    forced = _run(
        "version", "--json", env={"AGENTLEDGER_NORMALIZER": "python", "AGENTLEDGER_FAST_PATH": "0"}
    )
    assert forced.returncode == 0, forced.stderr
    assert json.loads(forced.stdout) == {**info, "normalizer": "python", "fast_path": False}

    human = _run("version", env={"AGENTLEDGER_NORMALIZER": "native"})
    assert human.returncode == 0, human.stderr
    assert human.stdout.startswith(f"agentledger {info['version']} (normalizer: native, ")
    assert len(human.stdout.strip().splitlines()) == 1

    bad = _run("version", env={"AGENTLEDGER_NORMALIZER": "bogus"})
    assert bad.returncode == 1 and "normalizer" in bad.stderr
