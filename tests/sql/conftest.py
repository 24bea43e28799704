"""One real ``agentledger serve`` (own data directory, a child process) holding two tenants' spans,
for the SQL endpoint, ``agentledger sql`` and the console's SQL page.

The spans arrive as OTLP protobuf at ``/v1/traces`` with each tenant's ingest key (bench/traffic.py
makes them): acme has ``ACME_RUNS`` runs, globex ``GLOBEX_RUNS``, so a count tells whose rows a
query saw. The SQL time bound is lowered (``AGENTLEDGER_SQL_TIMEOUT_S``) so the test of an
over-long query is quick.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

CLI = [sys.executable, "-m", "agentledger.cli"]
ACME_RUNS, GLOBEX_RUNS = 3, 5
KEYS = {
    ("acme", "ingest"): "sql-acme-ingest-0123456789",
    ("acme", "reader"): "sql-acme-reader-0123456789",
    ("globex", "ingest"): "sql-globex-ingest-0123456789",
    ("globex", "reader"): "sql-globex-reader-0123456789",
    ("acme", "auditor"): "sql-acme-auditor-0123456789",
}
TIMEOUT_S = 2


@dataclass(frozen=True)
class Served:
    url: str
    port: int
    data_dir: Path
    spans: dict[str, int]
    """Spans sent per tenant."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def env() -> dict[str, str]:
    """The test process's environment without AgentLedger's or OpenTelemetry's settings."""
    out = {k: v for k, v in os.environ.items() if not k.startswith(("AGENTLEDGER_", "OTEL_"))}
    out["PYTHONUNBUFFERED"] = "1"
    return out


def _send(url: str, key: str, runs: int, seed: int) -> int:
    from bench.traffic import requests

    sent = 0
    for req in requests(runs, runs_per_request=runs, seed=seed):
        resp = httpx.post(
            f"{url}/v1/traces",
            content=req.SerializeToString(),
            headers={"Content-Type": "application/x-protobuf", "Authorization": f"Bearer {key}"},
            timeout=30,
        )
        assert resp.status_code == 200, resp.text
        sent += sum(len(s.spans) for rs in req.resource_spans for s in rs.scope_spans)
    return sent


@pytest.fixture(scope="session")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    data = tmp_path_factory.mktemp("sql") / "data"
    port = _free_port()
    child_env = env()
    child_env["AGENTLEDGER_API_KEYS"] = ",".join(
        f"{tenant}:{role}:{tenant}-{role}={secret}" for (tenant, role), secret in KEYS.items()
    )
    child_env["AGENTLEDGER_SQL_TIMEOUT_S"] = str(TIMEOUT_S)
    log_path = data.parent / "serve.log"
    log = log_path.open("w")
    proc = subprocess.Popen(
        [*CLI, "serve", "--port", str(port), "--data-dir", str(data)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=child_env,
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
            pytest.fail(f"agentledger serve did not start: {log_path.read_text()[-3000:]}")
        time.sleep(0.2)
    try:
        spans = {
            "acme": _send(url, KEYS[("acme", "ingest")], ACME_RUNS, seed=1),
            "globex": _send(url, KEYS[("globex", "ingest")], GLOBEX_RUNS, seed=2),
        }
        assert spans["acme"] != spans["globex"]
        yield Served(url, port, data, spans)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
