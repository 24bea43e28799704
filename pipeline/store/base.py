"""The store interface: run ClickHouse SQL, insert Arrow batches.

Two implementations run the same SQL: ``EmbeddedStore`` (chDB, ClickHouse
in-process; ``":memory:"`` makes it the test double) and ``ClickHouseStore``
(a server or cluster through clickhouse-connect). Queries take server-side
parameters written ``{name:Type}``; both stores bind them the same way.

Exceptions, translated from chdb / clickhouse-connect at each store's boundary::

    StoreError                 anything the store raised
    ├── StoreUnavailable       retryable: connection refused, timeout, data dir locked
    └── StoreRejected          permanent: bad SQL, data the table cannot take
"""

from __future__ import annotations

import abc
import weakref
from collections.abc import Callable, Mapping
from typing import Any, cast

import pyarrow as pa

__all__ = ["Store", "StoreError", "StoreUnavailable", "StoreRejected", "Params"]

Params = Mapping[str, Any]


class StoreError(Exception):
    """The store failed."""


class StoreUnavailable(StoreError):
    """The store cannot be reached now; the same call may succeed later."""


class StoreRejected(StoreError):
    """The store refused the statement or the data; retrying will not help."""


class Store(abc.ABC):
    """Runs SQL against ClickHouse and inserts Arrow batches.

    Contract: methods are safe to call from several threads. ``insert_arrow``
    with the same ``dedup_token`` and the same data stores the rows once, so a
    caller that is unsure whether an insert landed may simply repeat it.
    """

    database: str

    @property
    def local_dir(self) -> str | None:
        """The directory on this machine that holds the store's data (chDB), where files that
        belong with the data (the governance journal) live; None for a server or in memory."""
        return None

    @abc.abstractmethod
    def command(self, sql: str, params: Params | None = None) -> None:
        """Run a statement that returns nothing (DDL, ALTER, OPTIMIZE...)."""

    @abc.abstractmethod
    def query_arrow(self, sql: str, params: Params | None = None) -> pa.Table:
        """Run a query and return its result as an Arrow table."""

    @abc.abstractmethod
    def insert_arrow(self, table: str, data: pa.Table, *, dedup_token: str | None = None) -> None:
        """Insert ``data`` (columns named as in ``table``) in one batch.

        ``dedup_token`` makes the insert idempotent: a second insert with the
        same token inside the table's deduplication window is dropped.
        """

    @abc.abstractmethod
    def ping(self) -> bool:
        """True when the store answers a trivial query."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release connections; safe to call twice."""

    def query_arrow_over(
        self, sql: str, data: pa.Table, params: Params | None = None
    ) -> pa.Table | None:
        """Run ``sql`` with ``{input}`` standing for ``data`` as a table, on stores that can read an
        in-memory table (embedded chDB); None on stores that cannot (a server)."""
        return None

    def query_rows(self, sql: str, params: Params | None = None) -> list[dict[str, Any]]:
        """Run a query and return its rows as dictionaries."""
        return cast("list[dict[str, Any]]", self.query_arrow(sql, params).to_pylist())

    def query_scalar(self, sql: str, params: Params | None = None) -> Any:
        """First column of the first row, or None when there is no row."""
        table = self.query_arrow(sql, params)
        return table.column(0)[0].as_py() if table.num_rows else None

    def add_write_behind(self, flush: Callable[[], None]) -> None:
        """Register a writer that acknowledges before it inserts (the governance journal):
        ``flush`` stores what it acknowledged. Held weakly, so a closed writer drops out."""
        try:
            writers = self.__dict__["_write_behind"]
        except KeyError:
            writers = self.__dict__.setdefault("_write_behind", [])
        writers.append(weakref.WeakMethod(flush))

    def flush_write_behind(self) -> None:
        """Store what write-behind writers on this store acknowledged: readers that must see
        every acknowledged record (an audit) call this before they query."""
        for ref in list(self.__dict__.get("_write_behind", ())):
            flush = ref()
            if flush is not None:
                flush()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
