"""Screenshots of every console page, from the demo's data, for the README (docs/screenshots/).

Runs ``agentledger demo`` into a fresh data directory (or uses ``--data-dir``), starts
``agentledger serve`` on it with an admin, an auditor and an ingest key, adds what the demo does
not record (a stored drift report, through the public API: ``tests/console/seeding.py``), signs
in with the admin key in Debian's Chromium and saves ``<page>.png`` at 1280x800, plus a
dark-mode shot of some pages. The trace page is the executor's, with its paused posting chosen;
the graph is the demo's planner -> executor handoff; the audit is that of the posting. Never
downloads a browser.

    .venv/bin/python scripts/screenshots.py [--out docs/screenshots] [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from agentledger.demo.agent import DEFAULT_SESSION_ID  # noqa: E402
from tests.console.seeding import seed_replay  # noqa: E402

CLI = [sys.executable, "-m", "agentledger.cli"]
CHROMIUM = "/usr/bin/chromium"
KEYS = {role: f"screenshots-{role}-secret-0123456789" for role in ("admin", "auditor", "ingest")}
AGENT = "finance-controls-agent"
POSTING = "post_controls_decision"


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AGENTLEDGER_", "OTEL_"))}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _demo(data: Path) -> dict[str, Any]:
    done = subprocess.run(
        [*CLI, "demo", "--data-dir", str(data), "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        env=_env(),
        check=False,
    )
    if done.returncode != 0:
        sys.exit(f"agentledger demo failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def _sign_ledger(data: Path) -> None:
    """Append the demo's spans and records to the ledger and sign a checkpoint before the server
    starts, so the ledger, audit and span pages show a signed checkpoint instead of "within 60 s"."""
    env = _env()
    env.setdefault("AGENTLEDGER_LEDGER_SIGNING_KEY_FILE", str(data / "ledger-signing.key"))
    done = subprocess.run(
        [*CLI, "ledger", "append", "--data-dir", str(data)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )
    if done.returncode != 0:
        sys.exit(f"agentledger ledger append failed:\n{done.stderr[-3000:]}")


def _serve(data: Path, port: int) -> subprocess.Popen[bytes]:
    env = _env()
    env["AGENTLEDGER_API_KEYS"] = ",".join(f"default:{r}:{r}={k}" for r, k in KEYS.items())
    env["AGENTLEDGER_DATASETS_DIR"] = str(data.parent / "exports")
    log = (data.parent / "serve.log").open("wb")
    proc = subprocess.Popen(
        [*CLI, "serve", "--port", str(port), "--data-dir", str(data)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            sys.exit(f"agentledger serve did not start; see {data.parent / 'serve.log'}")
        time.sleep(0.2)


def _api(url: str, path: str, **params: Any) -> Any:
    got = httpx.get(
        url + path, params=params, headers={"Authorization": f"Bearer {KEYS['admin']}"}, timeout=30
    )
    got.raise_for_status()
    return got.json()


def _demo_ids(url: str) -> dict[str, Any]:
    """The ids ``agentledger demo --json`` prints, read back from the API (for ``--data-dir``)."""
    (posting,) = _api(url, "/v1/intents", tool_name=POSTING, limit=1)
    rows = _api(url, "/api/v1/traces", limit=50)
    planner = next(t["trace_id"] for t in rows if t["agent_name"] == "planner-agent")
    return {
        "trace_id": posting["trace_id"],
        "governance": {"span_id": posting["span_id"]},
        "planner": {"trace_id": planner},
    }


def _pages(url: str, demo: dict[str, Any], run_id: str) -> list[tuple[str, str]]:
    """(file name, console path) of every page to shoot."""
    anomalies = _api(url, "/api/v1/anomalies")
    datasets = _api(url, "/api/v1/datasets")
    posting = demo["governance"]["span_id"]
    pages = [
        ("login", "/console/login"),
        ("traces", "/console/traces"),
        ("trace", f"/console/traces/{demo['trace_id']}?span={posting}"),
        ("sessions", "/console/sessions"),
        ("session", f"/console/sessions/{DEFAULT_SESSION_ID}"),
        ("graph", "/console/graph"),
        ("graph-trace", f"/console/graph?trace={demo['planner']['trace_id']}"),
        ("governance", "/console/governance"),
        ("usage", "/console/usage"),
        ("anomalies", "/console/anomalies"),
        ("patterns", "/console/patterns?window=24h"),
        ("audit", f"/console/audit/{posting}"),
        ("ledger", "/console/ledger"),
        ("datasets", "/console/datasets"),
        ("replays", "/console/replays"),
        ("replay", f"/console/replays/{run_id}"),
        ("sql", "/console/sql"),
    ]
    if datasets:
        pages.append(("dataset", f"/console/datasets/{datasets[0]['dataset_id']}"))
    if not anomalies:
        print("note: the demo recorded no anomaly; the anomalies page shows its empty state")
    return pages


DARK = ("trace", "graph", "replay")


def shoot(out: Path, data_dir: Path | None) -> list[Path]:
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        sys.exit(f"{CHROMIUM} is missing: apt-get install -y chromium (never `playwright install`)")
    work = Path(tempfile.mkdtemp(prefix="agentledger-shots-"))
    data = data_dir or work / "data"
    demo = _demo(data) if data_dir is None else {}
    _sign_ledger(data)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    proc = _serve(data, port)
    saved: list[Path] = []
    try:
        if not demo:
            demo = _demo_ids(url)
        run_id = seed_replay(url, KEYS["auditor"], AGENT)
        out.mkdir(parents=True, exist_ok=True)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            for scheme in ("light", "dark"):
                context = browser.new_context(
                    base_url=url, viewport={"width": 1280, "height": 800}, color_scheme=scheme
                )
                page = context.new_page()
                page.goto("/console/login")
                if scheme == "light":
                    page.screenshot(path=str(out / "login.png"))
                    saved.append(out / "login.png")
                page.get_by_label("API key").fill(KEYS["admin"])
                page.get_by_role("button", name="Sign in").click()
                page.wait_for_url("**/console/traces*")
                for name, path in _pages(url, demo, run_id):
                    if name == "login" or (scheme == "dark" and name not in DARK):
                        continue
                    answer = page.goto(path)
                    if answer is None or answer.status == 404:
                        print(f"skipped {name}: {path} answered 404")
                        continue
                    if answer.status != 200:
                        sys.exit(f"{path} answered {answer.status}")
                    page.wait_for_load_state("networkidle")
                    file = out / (f"{name}-dark.png" if scheme == "dark" else f"{name}.png")
                    page.screenshot(path=str(file))
                    saved.append(file)
                context.close()
            browser.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
    return saved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument(
        "--data-dir", type=Path, default=None, help="an existing demo data directory"
    )
    args = parser.parse_args()
    for file in shoot(args.out, args.data_dir):
        print(file.relative_to(ROOT) if file.is_relative_to(ROOT) else file)


if __name__ == "__main__":
    main()
