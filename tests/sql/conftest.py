"""One real ``agentledger serve`` (own data directory, a child process) holding two tenants' spans,
for the SQL endpoint, ``agentledger sql`` and the console's SQL page.

The spans arrive as OTLP protobuf at ``/v1/traces`` with each tenant's ingest key (bench/traffic.py
makes them): acme has ``ACME_RUNS`` runs, globex ``GLOBEX_RUNS``, so a count tells whose rows a
query saw. The SQL time bound is lowered (``AGENTLEDGER_SQL_TIMEOUT_S``) so the test of an
over-long query is quick.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support.serve import CLI, BootstrapKey, serve
from tests.support.serve import clean_env as env

__all__ = ["ACME_RUNS", "CLI", "GLOBEX_RUNS", "KEYS", "TIMEOUT_S", "Served", "env"]

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
    keys = [BootstrapKey(t, r, f"{t}-{r}", secret) for (t, r), secret in KEYS.items()]
    data = tmp_path_factory.mktemp("sql") / "data"
    with serve(data, keys, env={"AGENTLEDGER_SQL_TIMEOUT_S": str(TIMEOUT_S)}) as server:
        spans = {
            "acme": _send(server.url, KEYS[("acme", "ingest")], ACME_RUNS, seed=1),
            "globex": _send(server.url, KEYS[("globex", "ingest")], GLOBEX_RUNS, seed=2),
        }
        assert spans["acme"] != spans["globex"]
        yield Served(server.url, server.port, data, spans)
