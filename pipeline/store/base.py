"""The store interface: run ClickHouse SQL, insert Arrow batches.

Two implementations run the same SQL: ``EmbeddedStore`` (chDB, ClickHouse
in-process; ``":memory:"`` makes it the test double) and ``ClickHouseStore``
(a server or cluster through clickhouse-connect). Queries take server-side
parameters written ``{name:Type}``; both stores bind them the same way.

Exceptions, translated from chdb / clickhouse-connect at each store's boundary::

    StoreError                 anything the store raised
    ├── StoreUnavailable       retryable: connection refused, timeout, data dir locked, and the
    │                          engine's own "not now" (disk full, read-only, out of memory, too
    │                          many parts: ``retryable_reason``)
    └── StoreRejected          permanent: bad SQL, data the table cannot take

Getting this split right is what keeps data: a rejected batch is answered 400 (the agent drops
it) or sent to the dead-letter topic, so a full disk must never look like bad data.
"""

from __future__ import annotations

import abc
import re
import weakref
from collections.abc import Callable, Mapping
from typing import Any, cast

import pyarrow as pa

__all__ = [
    "Store",
    "StoreError",
    "StoreUnavailable",
    "StoreRejected",
    "Params",
    "retryable_reason",
]

Params = Mapping[str, Any]


class StoreError(Exception):
    """The store failed."""


class StoreUnavailable(StoreError):
    """The store cannot be reached now; the same call may succeed later."""


class StoreRejected(StoreError):
    """The store refused the statement or the data; retrying will not help."""


_RETRYABLE_CODES = {
    159: "the query timed out",  # TIMEOUT_EXCEEDED
    173: "out of memory",  # CANNOT_ALLOCATE_MEMORY
    202: "too many queries at once",  # TOO_MANY_SIMULTANEOUS_QUERIES
    209: "a socket timed out",  # SOCKET_TIMEOUT
    210: "a network error",  # NETWORK_ERROR
    241: "out of memory",  # MEMORY_LIMIT_EXCEEDED
    242: "the table is read-only",  # TABLE_IS_READ_ONLY
    243: "out of disk space",  # NOT_ENOUGH_SPACE
    252: "too many parts waiting to merge",  # TOO_MANY_PARTS
    279: "no replica answered",  # ALL_CONNECTION_TRIES_FAILED
    999: "the coordination service failed",  # KEEPER_EXCEPTION
}
_RETRYABLE_TEXT = {
    "no space left on device": "out of disk space",
    "read-only file system": "the data directory is read-only",
}
_CODE = re.compile(r"Code: (\d{1,5})\.")


def retryable_reason(message: str) -> str | None:
    """Why a ClickHouse error (from either store) is worth retrying later, or None when it is
    not: the engine's error code, else the operating system's words for a full or read-only
    disk (which ClickHouse wraps in codes of its own)."""
    match = _CODE.search(message)
    if match is not None and int(match.group(1)) in _RETRYABLE_CODES:
        return _RETRYABLE_CODES[int(match.group(1))]
    lowered = message.lower()
    return next((why for text, why in _RETRYABLE_TEXT.items() if text in lowered), None)


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
