"""One real ``agentledger serve`` holding the demo's recording, and one real Chromium, shared by
the console's browser tests.

The data directory is filled by the ``agentledger demo`` command itself (its own embedded server,
which exits), then served by ``agentledger serve`` with a key of each role. The browser is
Debian's ``chromium`` driven by Playwright; never ``playwright install``. A browser that cannot
start fails the tests that need it, with the reason.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

CLI = [sys.executable, "-m", "agentledger.cli"]
CHROMIUM = "/usr/bin/chromium"
TENANT = "default"  # the demo records under the embedded server's default tenant
KEYS = {
    role: f"console-{role}-secret-0123456789"
    for role in ("reader", "operator", "auditor", "admin", "ingest")
}


@dataclass(frozen=True)
class Served:
    url: str
    demo: dict[str, Any]
    """What ``agentledger demo --json`` printed: the trace id, the governed intent, ..."""
    data_dir: Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AGENTLEDGER_", "OTEL_"))}
    env["PYTHONUNBUFFERED"] = "1"
    return env


@pytest.fixture(scope="session")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    data = tmp_path_factory.mktemp("console") / "data"
    demo = subprocess.run(
        [*CLI, "demo", "--data-dir", str(data), "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        env=_env(),
    )
    assert demo.returncode == 0, demo.stderr[-3000:]
    summary = json.loads(demo.stdout)
    port = _free_port()
    env = _env()
    env["AGENTLEDGER_API_KEYS"] = ",".join(
        f"{TENANT}:{role}:{role}={secret}" for role, secret in KEYS.items()
    )
    env["AGENTLEDGER_DATASETS_DIR"] = str(data.parent / "exports")  # console exports, not the cwd
    log = (data.parent / "serve.log").open("w")
    proc = subprocess.Popen(
        [*CLI, "serve", "--port", str(port), "--data-dir", str(data)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            log.flush()
            pytest.fail(
                f"agentledger serve did not start: {(data.parent / 'serve.log').read_text()[-3000:]}"
            )
        time.sleep(0.2)
    try:
        yield Served(url, summary, data)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    """One chromium for the console's tests. Package-scoped, not session-scoped: Playwright's
    sync API keeps an event loop running in the main thread while it lives, and every later
    test that calls ``asyncio.run`` (async tools, async clients) would fail under it."""
    from playwright.sync_api import Error, sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"{CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium; "
            "scripts/_env.sh does it for the dev install). Never run `playwright install`."
        )
    with sync_playwright() as p:
        try:
            launched = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        except Error as exc:
            pytest.fail(f"chromium did not start: {exc}")
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def context(browser: Any, served: Served) -> Iterator[Any]:
    """A fresh browser profile (no cookies) at the console's laptop size, for each test."""
    made = browser.new_context(
        base_url=served.url, viewport={"width": 1280, "height": 800}, accept_downloads=True
    )
    made.set_default_timeout(15_000)
    try:
        yield made
    finally:
        made.close()


def sign_in(page: Any, role: str, path: str = "/console/traces") -> None:
    """Open ``path``, meet the sign-in form (the page needs a session), sign in as ``role``."""
    page.goto(path)
    page.get_by_label("API key").fill(KEYS[role])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"**{path.split('?')[0]}*")
