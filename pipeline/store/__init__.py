"""Stores: one interface, two implementations running the same SQL."""

from agentledger.pipeline.store.base import (
    Params,
    Store,
    StoreError,
    StoreRejected,
    StoreUnavailable,
)
from agentledger.pipeline.store.migrate import Migration, MigrationDrift, load_migrations, migrate

__all__ = [
    "Params",
    "Store",
    "StoreError",
    "StoreRejected",
    "StoreUnavailable",
    "Migration",
    "MigrationDrift",
    "load_migrations",
    "migrate",
    "open_store",
]


def open_store(
    *, clickhouse_url: str | None = None, data_dir: str | None = None, database: str = "agentledger"
) -> Store:
    """A ClickHouse store when a URL is configured, else the embedded one on ``data_dir``."""
    if clickhouse_url:
        from agentledger.pipeline.store.clickhouse import ClickHouseStore

        return ClickHouseStore(clickhouse_url, database=database)
    from agentledger.pipeline.store.embedded import EmbeddedStore

    return EmbeddedStore(data_dir or ":memory:", database=database)
