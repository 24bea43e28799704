"""Numbered migrations, applied once each, in order, at start-up.

Migration files live in ``agentledger/schemas/migrations`` as
``NNNN_name.sql``; statements are separated by ``;`` at the end of a line.
Applied versions are recorded in ``schema_migrations`` with the file's
checksum, so a re-run applies nothing and an edited, already-applied file is
reported rather than silently ignored.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from importlib import resources

import pyarrow as pa

from agentledger.pipeline.stores.base import Store, StoreRejected

__all__ = ["Migration", "load_migrations", "migrate", "MigrationDrift"]

log = logging.getLogger(__name__)

_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

_LEDGER_DDL = """
CREATE TABLE IF NOT EXISTS schema_migrations
(
    version UInt32,
    name String,
    checksum String,
    applied_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
ORDER BY version
"""


class MigrationDrift(StoreRejected):
    """An applied migration's file changed after it was applied."""


@dataclass(frozen=True)
class Migration:
    """One numbered migration file."""

    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()

    def statements(self) -> list[str]:
        body = "\n".join(line for line in self.sql.splitlines() if not line.lstrip().startswith("--"))
        return [s.strip() for s in re.split(r";\s*$", body, flags=re.M) if s.strip()]


def load_migrations() -> list[Migration]:
    """All shipped migrations, in version order."""
    folder = resources.files("agentledger.schemas").joinpath("migrations")
    found = []
    for entry in folder.iterdir():
        m = _FILE.match(entry.name)
        if m:
            found.append(Migration(int(m.group(1)), m.group(2), entry.read_text()))
    found.sort(key=lambda mig: mig.version)
    versions = [mig.version for mig in found]
    if len(set(versions)) != len(versions):
        raise StoreRejected(f"duplicate migration versions in {versions}")
    return found


def migrate(store: Store, migrations: list[Migration] | None = None) -> list[int]:
    """Apply the migrations the store has not recorded; return the versions applied."""
    migrations = load_migrations() if migrations is None else migrations
    store.command(_LEDGER_DDL)
    done = {
        row["version"]: row["checksum"]
        for row in store.query_rows("SELECT version, checksum FROM schema_migrations FINAL")
    }
    applied = []
    for mig in migrations:
        if mig.version in done:
            if done[mig.version] != mig.checksum:
                raise MigrationDrift(
                    f"migration {mig.version:04d}_{mig.name} changed after it was applied; "
                    "add a new migration instead of editing an applied one"
                )
            continue
        log.info("applying migration %04d_%s", mig.version, mig.name)
        for statement in mig.statements():
            store.command(statement)
        store.insert_arrow(
            "schema_migrations",
            pa.table(
                {
                    "version": pa.array([mig.version], pa.uint32()),
                    "name": [mig.name],
                    "checksum": [mig.checksum],
                }
            ),
        )
        applied.append(mig.version)
    return applied
