"""``agentledger audit`` and ``agentledger replay`` as users run them (subprocesses), on a data
directory and through a running server's HTTP API."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from agentledger.demo.agent import run_finance_agent
from agentledger.demo.documents import LOOKUP_JOURNAL_ENTRY
from agentledger.demo.provider import Rule, ScriptedResponse, ToolCall, always, has_tool_result
from agentledger.pipeline.services import replay

CLI = [sys.executable, "-m", "agentledger.cli"]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AGENTLEDGER_", "OPENAI_", "ANTHROPIC_"))
    }
    return subprocess.run(
        [*CLI, *args], check=False, capture_output=True, text=True, timeout=120, env=env
    )


def test_audit_and_replay_on_a_data_directory(tmp_path: Path, provider) -> None:
    data = str(tmp_path / "data")
    demo = _run("demo", "--json", "--data-dir", data)
    assert demo.returncode == 0, demo.stderr
    trace_id = json.loads(demo.stdout)["trace_id"]

    as_json = _run("audit", trace_id, "--data-dir", data, "--format", "json")
    assert as_json.returncode == 0, as_json.stderr
    actions = json.loads(as_json.stdout)["actions"]  # the lookup, then the governed posting
    assert [a["action"]["tool_name"] for a in actions][-1] == "post_controls_decision"
    action = actions[0]
    decided = action["decided_by"]
    assert (
        action["action"]["tool_name"] == LOOKUP_JOURNAL_ENTRY
        and decided["answered_model"] == "gpt-4o-2024-08-06"
    )
    page = tmp_path / "audit.html"
    as_html = _run(
        "audit",
        action["action"]["span_id"],
        "--data-dir",
        data,
        "--format",
        "html",
        "--output",
        str(page),
    )
    assert as_html.returncode == 0, as_html.stderr
    assert "Which model version decided" in page.read_text() and "FIN-7" in page.read_text()

    one = _run(
        "replay",
        decided["span_id"],
        "--data-dir",
        data,
        "--base-url",
        provider.base_url,
        "--api-key",
        "k",
        "--json",
    )
    assert one.returncode == 0, one.stderr
    outcome = json.loads(one.stdout)
    assert (
        outcome["exact"]
        and outcome["checks"]["messages_match"]
        and outcome["diff"]["drift"] is False
    )

    batch = [
        "replay",
        "--filter",
        "agent=finance-controls-agent",
        "--filter",
        "limit=10",
        "--data-dir",
        data,
        "--base-url",
        provider.base_url,
        "--api-key",
        "k",
        "--fail-on-drift",
        "--json",
    ]
    same = _run(*batch)
    assert same.returncode == 0, same.stderr
    assert json.loads(same.stdout)["summary"]["drifted"] == 0
    provider.set_script(
        [
            Rule(
                has_tool_result(LOOKUP_JOURNAL_ENTRY),
                ScriptedResponse(text="APPROVE: within policy."),
            ),
            Rule(
                always(),
                ScriptedResponse(tool_calls=[ToolCall(LOOKUP_JOURNAL_ENTRY, {"entry_id": "JE-1"})]),
            ),
        ]
    )
    changed = _run(*batch, "--model", "gpt-4.1")
    assert changed.returncode == 1, changed.stderr  # --fail-on-drift: a regression test
    report = json.loads(changed.stdout)
    assert report["summary"]["drifted"] == 2 and report["summary"]["argument_agreement"] == 0.5
    assert report["candidate_model"] == "gpt-4.1" and report["saved"]


def test_replay_filters_are_parsed_and_checked() -> None:
    from datetime import datetime, timezone

    import pytest
    import typer

    from agentledger.cli.audit import _parse_filters

    parsed = _parse_filters(
        ["agent=finance", "model=gpt-4o", "since=2026-01-02T03:04:05Z", "tools-only=yes", "limit=7"]
    )
    assert parsed == {
        "agent": "finance",
        "model": "gpt-4o",
        "tools_only": True,
        "limit": 7,
        "since": datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc),
    }
    for bad in ("colour=blue", "limit=many", "since=yesterday", "agent"):
        with pytest.raises(typer.BadParameter):
            _parse_filters([bad])


def test_audit_and_replay_through_a_running_server(server, provider, record) -> None:
    run = record(lambda tp: run_finance_agent(provider.base_url, tp))
    audited = _run("audit", run.trace_id, "--url", server.url, "--format", "markdown")
    assert audited.returncode == 0, audited.stderr
    assert (
        "## Action: tool call `lookup_journal_entry`" in audited.stdout
        and "gpt-4o-2024-08-06" in audited.stdout
    )
    replayed = _run(
        "replay",
        "--filter",
        "tools_only=true",
        "--url",
        server.url,
        "--base-url",
        provider.base_url,
        "--api-key",
        "k",
    )
    assert replayed.returncode == 0, replayed.stderr
    assert "no drift" in replayed.stdout and "(stored)" in replayed.stdout
    (stored,) = replay.list_reports(
        server.store, "default"
    )  # the drift report went to the server's store
    assert stored["replayed"] == 1 and stored["drifted"] == 0
