"""One real ``agentledger serve`` in a child process, for the tests that need a whole server.

The browser tests (``tests/console``) and the SQL tests (``tests/sql``) each hold one for their
session; both start it the same way, with this: a free loopback port, bootstrap keys
(``AGENTLEDGER_API_KEYS``), an environment cleared of the developer's AgentLedger and
OpenTelemetry settings, the server's output in ``serve.log`` beside the data directory, ready
when ``/readyz`` answers 200 (polled), stopped with SIGTERM (SIGKILL after a minute).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

__all__ = ["CLI", "BootstrapKey", "Server", "clean_env", "free_port", "serve"]

CLI = [sys.executable, "-m", "agentledger.cli"]


@dataclass(frozen=True)
class BootstrapKey:
    """One entry of ``AGENTLEDGER_API_KEYS``: ``tenant:role:name=secret``."""

    tenant: str
    role: str
    name: str
    secret: str

    def __str__(self) -> str:
        return f"{self.tenant}:{self.role}:{self.name}={self.secret}"


@dataclass(frozen=True)
class Server:
    url: str
    port: int
    data_dir: Path
    log_path: Path
    """The server's stdout and stderr: a test that fails on the server's side reads it."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def clean_env() -> dict[str, str]:
    """The test process's environment without AgentLedger's or OpenTelemetry's settings."""
    out = {k: v for k, v in os.environ.items() if not k.startswith(("AGENTLEDGER_", "OTEL_"))}
    out["PYTHONUNBUFFERED"] = "1"
    return out


@contextmanager
def serve(
    data_dir: Path,
    keys: Iterable[BootstrapKey],
    *,
    env: Mapping[str, str] | None = None,
    start_timeout_s: float = 120.0,
) -> Iterator[Server]:
    """``agentledger serve`` on ``data_dir`` (made when missing) with ``keys``, until the block
    ends. ``env``: more settings for the server (``AGENTLEDGER_SQL_TIMEOUT_S``...). A server
    that exits or is not ready in ``start_timeout_s`` fails the test with its log's tail."""
    port = free_port()
    child_env = clean_env()
    child_env["AGENTLEDGER_API_KEYS"] = ",".join(str(k) for k in keys)
    child_env.update(env or {})
    log_path = data_dir.parent / "serve.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [*CLI, "serve", "--port", str(port), "--data-dir", str(data_dir)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=child_env,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            _wait_ready(url, proc, log_path, start_timeout_s)
            yield Server(url, port, data_dir, log_path)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log_path: Path, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"agentledger serve did not start: {log_path.read_text()[-3000:]}")
        time.sleep(0.2)  # the interval of a poll on the server's readiness, not a wait for a result
