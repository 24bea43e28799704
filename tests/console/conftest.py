"""One real ``agentledger serve`` holding the demo's recording, and one real Chromium, shared by
the console's browser tests.

The data directory is filled by the ``agentledger demo`` command itself (its own embedded server,
which exits), then served by ``agentledger serve`` with a key of each role. The browser is
Debian's ``chromium`` driven by Playwright; never ``playwright install``. A browser that cannot
start fails the tests that need it, with the reason.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.serve import CLI, BootstrapKey, clean_env, serve

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


_env = clean_env  # the console's tests run the CLI with the same cleared environment


@pytest.fixture(scope="session")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    data = tmp_path_factory.mktemp("console") / "data"
    demo = subprocess.run(
        [*CLI, "demo", "--data-dir", str(data), "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        env=clean_env(),
    )
    assert demo.returncode == 0, demo.stderr[-3000:]
    keys = [BootstrapKey(TENANT, role, role, secret) for role, secret in KEYS.items()]
    exports = {"AGENTLEDGER_DATASETS_DIR": str(data.parent / "exports")}  # not the cwd
    with serve(data, keys, env=exports) as server:
        yield Served(server.url, json.loads(demo.stdout), data)


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
