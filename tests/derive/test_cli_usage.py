"""``agentledger usage``, ``patterns`` and ``anomalies [detect]``: through a server, and on a data dir."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from typer.testing import CliRunner

from agentledger.cli import app
from agentledger.pipeline.derive import UsageRollupJob
from tests.derive import scenario

ROOT = Path(__file__).resolve().parents[2]
SINCE, UNTIL = (scenario.NOW - timedelta(days=2)).isoformat(), scenario.NOW.isoformat()


def _cli(server, *args: str):
    result = CliRunner().invoke(app, [*args, "--url", server.url])
    assert result.exit_code == 0, result.output
    return result.output


def test_commands_through_the_server(server, tmp_path: Path) -> None:
    scenario.generate(server.store, inject=True, days=2)
    UsageRollupJob().run(
        server.store, scenario.NOW
    )  # a full background pass: the data is older than 48 h
    rows = json.loads(
        _cli(server, "usage", "--since", SINCE, "--until", UNTIL, "--by", "principal", "--json")
    )
    assert rows[0]["principal"] == "bob@acme.example" and len(rows) == 6

    table = _cli(
        server, "usage", "--since", SINCE, "--until", UNTIL, "--by", "model", "--kind", "LLM"
    )
    assert "claude-3-5-sonnet-2024-08-06" in table and "p95" in table

    out = _cli(
        server,
        "usage",
        "--since",
        SINCE,
        "--until",
        UNTIL,
        "--by",
        "kind",
        "--interval",
        "day",
        "--csv",
    )
    parsed = list(csv.DictReader(io.StringIO(out)))
    assert {r["kind"] for r in parsed} == {
        "LLM",
        "TOOL",
        "RETRIEVER",
        "AGENT",
    } and "bucket" in parsed[0]

    png, page = tmp_path / "cost.png", tmp_path / "cost.html"
    _cli(
        server,
        "usage",
        "--since",
        SINCE,
        "--until",
        UNTIL,
        "--by",
        "principal",
        "--top",
        "3",
        "--plot",
        str(png),
    )
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    _cli(
        server,
        "usage",
        "--since",
        SINCE,
        "--until",
        UNTIL,
        "--by",
        "model",
        "--kind",
        "LLM",
        "--plot",
        str(page),
        "--metric",
        "calls",
    )
    html = page.read_text()
    assert (
        "<svg" in html and html.count("<polyline") == 2 and "claude-3-5-sonnet-2024-08-06" in html
    )

    bad = CliRunner().invoke(app, ["usage", "--by", "colour", "--url", server.url])
    assert bad.exit_code == 2 and "unknown dimension" in bad.output
    bad_plot = CliRunner().invoke(
        app, ["usage", "--plot", str(tmp_path / "x.gif"), "--url", server.url]
    )
    assert bad_plot.exit_code == 2 and ".png or .html" in bad_plot.output

    found = json.loads(_cli(server, "anomalies", "detect", "--now", UNTIL, "--json"))
    assert {"error_burst", "sensitive_egress", "new_sequence"} <= set(found["anomalies"])
    summary = _cli(server, "anomalies", "detect", "--now", UNTIL)
    assert "0 new" in summary  # the second pass finds the same anomalies, none new
    listed = json.loads(
        _cli(server, "anomalies", "--since", SINCE, "--json", "--type", "sensitive_egress")
    )
    assert [a["dimensions"] for a in listed] == [{"detector": "email", "provider": "openai"}]
    assert "error_burst" in _cli(server, "anomalies", "--since", SINCE, "--limit", "100")

    patterns = json.loads(
        _cli(
            server,
            "patterns",
            "--since",
            (scenario.NOW - timedelta(days=1)).isoformat(),
            "--until",
            UNTIL,
            "--baseline",
            "24h",
            "--json",
        )
    )
    assert patterns["new_use"]["sequences"][0]["sequence"] == list(scenario.NEW_SEQUENCE)
    shown = _cli(
        server,
        "patterns",
        "--since",
        (scenario.NOW - timedelta(days=1)).isoformat(),
        "--until",
        UNTIL,
        "--baseline",
        "1d",
    )
    assert (
        "export_ledger" in shown and scenario.MALLORY in shown and "New or unexpected use" in shown
    )
    window = ["--since", (scenario.NOW - timedelta(days=1)).isoformat(), "--until", UNTIL]
    new = json.loads(_cli(server, "patterns", *window, "--baseline", "24h", "--new", "--json"))
    assert "ngrams" not in new and not new["baseline_empty"]
    assert [p["value"] for p in new["principals"]] == [scenario.MALLORY]
    assert new["principals"][0]["description"].startswith(
        f"principal {scenario.MALLORY} made 3 runs"
    )
    assert new["sequences"][0]["description"].endswith("never in the baseline")
    shown = _cli(server, "patterns", *window, "--baseline", "24h", "--new")
    assert "New this window" in shown and "export_ledger" in shown and "Tool n-grams" not in shown


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("AGENTLEDGER_API_KEYS", None)
    return subprocess.run(
        [sys.executable, "-m", "agentledger.cli", *args],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
        cwd=ROOT,
    )


def test_commands_on_a_data_dir(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    made = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from agentledger.pipeline.store import migrate; "
            "from agentledger.pipeline.store.embedded import EmbeddedStore; from tests.derive import scenario; "
            "s = EmbeddedStore(sys.argv[1]); migrate(s); scenario.generate(s, inject=True, days=2); s.close()",
            data,
        ],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert made.returncode == 0, made.stderr
    usage = _run(
        "usage", "--data-dir", data, "--since", SINCE, "--until", UNTIL, "--by", "agent", "--json"
    )
    assert usage.returncode == 0, usage.stderr
    assert {r["agent"] for r in json.loads(usage.stdout)} == {scenario.FINANCE, scenario.PAYABLES}
    detect = _run("anomalies", "detect", "--data-dir", data, "--now", UNTIL, "--json")
    assert detect.returncode == 0, detect.stderr
    assert json.loads(detect.stdout)["anomalies"]["error_burst"] == 1
    listed = _run("anomalies", "--data-dir", data, "--since", SINCE, "--csv")
    assert listed.returncode == 0, listed.stderr
    assert "error_burst" in listed.stdout.splitlines()[1:][0] or "error_burst" in listed.stdout
