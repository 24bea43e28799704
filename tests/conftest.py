"""Shared fixtures: the real ClickHouse engine (chDB), the embedded server, a scripted model.

chDB serves one data directory per process, so every test in this process
shares one directory and gets its own database in it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentledger.collector import CollectorSettings
from agentledger.pipeline.store import migrate
from agentledger.pipeline.store.embedded import EmbeddedStore
from agentledger.server import EmbeddedServer

# -- test tiers ------------------------------------------------------------------------------
# ``unit``: in-process only (chDB is the engine in this process; no broker, no HTTP server, no
# child process); ``integration``: a real broker, a server on a port, or a child process;
# ``slow``: processes killed and restarted, brokers stopped. A test file may mark itself; the
# rest are sorted by the fixtures they use. ``pytest -m unit`` runs the fast tier alone.

INTEGRATION_FIXTURES = frozenset(
    {
        "kafka_bootstrap",
        "kafka_settings",
        "server",
        "auth_server",
        "endpoint",
        "ch_store",
        "provider",
    }
)
INTEGRATION_MODULES = frozenset(
    {
        "tests/test_cli.py",  # runs `agentledger serve` and the demo as child processes
        "tests/test_demo_provider.py",
        "tests/governance/test_controls.py",
        "tests/governance/test_intent_client.py",
        "tests/instrumentation/test_run.py",
        "tests/test_openai_end_to_end.py",
    }
)
TIERS = ("unit", "integration", "slow")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if any(item.get_closest_marker(tier) for tier in TIERS):
            continue
        fixtures = set(getattr(item, "fixturenames", ()))
        path = item.nodeid.split("::")[0]
        in_process = path not in INTEGRATION_MODULES and not path.startswith("tests/kafka/")
        tier = "unit" if in_process and not fixtures & INTEGRATION_FIXTURES else "integration"
        item.add_marker(getattr(pytest.mark, tier))


@pytest.fixture(scope="session")
def chdb_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("chdb")


@pytest.fixture
def database() -> str:
    return f"t_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def store(chdb_path: Path, database: str) -> Iterator[EmbeddedStore]:
    s = EmbeddedStore(chdb_path, database=database)
    migrate(s)
    yield s
    try:
        s.command(f"DROP DATABASE IF EXISTS {database}")
    finally:
        s.close()


def _server(store: EmbeddedStore, **settings: object) -> EmbeddedServer:
    return EmbeddedServer(CollectorSettings(port=0, **settings), store=store)  # type: ignore[arg-type]


@pytest.fixture
def server(store: EmbeddedStore) -> Iterator[EmbeddedServer]:
    """The embedded server (collector + normalizer + store) on a loopback port, no auth."""
    with _server(store, no_auth=True) as srv:
        yield srv


API_KEYS = {"acme": "key-acme-123", "globex": "key-globex-456"}


@pytest.fixture
def auth_server(store: EmbeddedStore) -> Iterator[EmbeddedServer]:
    """The embedded server with two tenants' API keys."""
    spec = ",".join(f"{tenant}={key}" for tenant, key in API_KEYS.items())
    with _server(
        store,
        api_keys=spec,
        max_body_bytes=2_000_000,
        max_spans_per_request=100,
        max_attribute_length=1000,
    ) as srv:
        yield srv


@pytest.fixture
def provider() -> Iterator[object]:
    from agentledger.demo.provider import ScriptedProvider, default_script

    with ScriptedProvider(default_script()) as p:
        yield p


@pytest.fixture(scope="session")
def endpoint(chdb_path: Path) -> Iterator[object]:
    """The ClickHouse HTTP protocol in front of chDB (tests/support): a server for clickhouse-connect."""
    from tests.support.chdb_http import ChdbHttpEndpoint

    ep = ChdbHttpEndpoint(str(chdb_path))
    ep.start()
    yield ep
    ep.stop()


@pytest.fixture
def ch_store(endpoint) -> Iterator[object]:
    """A clickhouse-connect store with a database of its own, migrated."""
    from agentledger.pipeline.store.clickhouse import ClickHouseStore

    db = f"ch_{uuid.uuid4().hex[:12]}"
    s = ClickHouseStore(endpoint.url, database=db)
    migrate(s)
    yield s
    endpoint.set_available(True)
    s.command(f"DROP DATABASE IF EXISTS {db}")
    s.close()
