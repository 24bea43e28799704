"""Fixtures: stores holding the simulated days of ``scenario.py``, clean and with injected anomalies.

Generating a scenario takes a few seconds, so each is built once per test
module, in a database of its own on the session's chDB directory; tests only read them
(or write derived tables idempotently). Not once per session: chDB serves one data directory
per process while any connection is open, and other test modules open directories of their own.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentledger.pipeline.store import migrate
from agentledger.pipeline.store.embedded import EmbeddedStore
from tests.derive import scenario


def _scenario_store(
    chdb_path: Path, inject: bool
) -> Iterator[tuple[EmbeddedStore, scenario.Scenario]]:
    database = f"jobs_{uuid.uuid4().hex[:10]}"
    s = EmbeddedStore(chdb_path, database=database)
    migrate(s)
    generated = scenario.generate(s, inject=inject)
    try:
        yield s, generated
    finally:
        try:
            s.command(f"DROP DATABASE IF EXISTS {database}")
        finally:
            s.close()


@pytest.fixture(scope="module")
def injected(chdb_path: Path) -> Iterator[tuple[EmbeddedStore, scenario.Scenario]]:
    """Four days of traffic with the anomalies of ``scenario.py`` in the last day."""
    yield from _scenario_store(chdb_path, inject=True)


@pytest.fixture(scope="module")
def clean(chdb_path: Path) -> Iterator[tuple[EmbeddedStore, scenario.Scenario]]:
    """The same four days without any injected anomaly."""
    yield from _scenario_store(chdb_path, inject=False)
