"""Embedded ClickHouse (chDB): the same engine in-process, no server needed.

chDB locks a data directory to one process: a second process opening it
gets ``StoreUnavailable`` naming the lock, and should talk to the process
that owns it (the ``agentledger serve`` HTTP API) instead.

Arrow batches reach the engine as an Arrow IPC stream in a scratch file (in ``/dev/shm`` where
there is one, so in memory) read by ``INSERT ... FROM INFILE ... FORMAT ArrowStream`` or the
``file()`` table function: the engine decodes it column by column, about half the CPU of chDB's
``Python()`` table function over the same table for span rows (maps, lists of structs), which
is the largest single cost of embedded ingest.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import pyarrow as pa
import pyarrow.ipc as ipc

from agentledger.pipeline.store.base import (
    Params,
    Store,
    StoreRejected,
    StoreUnavailable,
    retryable_reason,
)

__all__ = ["EmbeddedStore"]

log = logging.getLogger(__name__)

_DB_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _locked_elsewhere(data_dir: str) -> bool:
    """True when another process holds ClickHouse's lock on ``<data_dir>/status``."""
    import fcntl

    status = Path(data_dir) / "status"
    if not status.exists():
        return False
    with open(status, "rb") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        fcntl.flock(fh, fcntl.LOCK_UN)
    return False


def _translate(exc: Exception, data_dir: str, connecting: bool = False) -> Exception:
    msg = str(exc)
    locked = "Cannot lock file" in msg or (
        connecting and data_dir != ":memory:" and _locked_elsewhere(data_dir)
    )
    if locked:
        return StoreUnavailable(
            f"embedded data directory {data_dir!r} is locked by another process "
            f"(is `agentledger serve` running? query it over HTTP with --url): {msg}"
        )
    why = retryable_reason(msg)
    if why is not None:
        return StoreUnavailable(f"embedded store {data_dir!r}: {why}: {msg}")
    return StoreRejected(msg)


_TSV_ESCAPES = str.maketrans({"\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r", "\0": "\\0"})


def _literal(value: Any, nested: bool = False) -> str:
    """A parameter value as ClickHouse's server-side binding reads it: top-level strings in
    escaped (TSV) form, arrays as literals with quoted strings (what clickhouse-connect sends)."""
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_literal(v, True) for v in value) + "]"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, str):
        if not nested:
            return value.translate(_TSV_ESCAPES)
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return str(value)


def _scratch_dir() -> str:
    """Where Arrow batches are handed to the engine: memory-backed when the machine has it."""
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        return str(shm)
    return tempfile.gettempdir()


@contextmanager
def _arrow_file(data: pa.Table) -> Iterator[str]:
    """``data`` as an Arrow IPC stream in a scratch file, removed afterwards."""
    fd, path = tempfile.mkstemp(prefix="agentledger-", suffix=".arrows", dir=_scratch_dir())
    try:
        os.close(fd)
        with pa.OSFile(path, "wb") as sink, ipc.new_stream(sink, data.schema) as writer:
            writer.write_table(data)
        yield path
    finally:
        os.unlink(path)


def _quoted_path(path: str) -> str:
    if "'" in path or "\\" in path:
        raise StoreRejected(f"scratch path {path!r} cannot be quoted")
    return f"'{path}'"


class EmbeddedStore(Store):
    """A chDB connection on a persistent directory, or ``":memory:"``."""

    def __init__(self, data_dir: str | Path = ":memory:", database: str = "agentledger") -> None:
        import chdb  # heavy import, only when the embedded store is used

        if not _DB_NAME.match(database):
            raise ValueError(f"invalid database name {database!r}")
        self.database = database
        self.data_dir = str(data_dir)
        if self.data_dir != ":memory:":
            Path(self.data_dir).mkdir(parents=True, exist_ok=True)
            uri = f"file:{Path(self.data_dir).resolve()}"
        else:
            uri = ":memory:"
        self._lock = threading.RLock()
        try:
            connect = cast("Callable[[str], Any]", chdb.connect)  # untyped in chdb
            self._conn: Any = connect(uri)
            self._conn.query(f"CREATE DATABASE IF NOT EXISTS {database}")
            self._conn.query(f"USE {database}")
        except Exception as exc:  # chdb raises ChdbError (a RuntimeError)
            raise _translate(exc, self.data_dir, connecting=True) from exc
        self._closed = False

    @property
    def local_dir(self) -> str | None:
        return None if self.data_dir == ":memory:" else self.data_dir

    def _run(self, sql: str, fmt: str, params: Params | None) -> Any:
        if self._closed:
            raise StoreUnavailable("embedded store is closed")
        with self._lock:
            try:
                if params:
                    return self._conn.query(
                        sql, fmt, params={k: _literal(v) for k, v in params.items()}
                    )
                return self._conn.query(sql, fmt)
            except Exception as exc:
                raise _translate(exc, self.data_dir) from exc

    def command(self, sql: str, params: Params | None = None) -> None:
        self._run(sql, "CSV", params)

    def query_arrow(self, sql: str, params: Params | None = None) -> pa.Table:
        result = self._run(sql, "ArrowTable", params)
        return result if isinstance(result, pa.Table) else pa.table({})

    def query_arrow_over(self, sql: str, data: pa.Table, params: Params | None = None) -> pa.Table:
        with _arrow_file(data) as path:
            source = f"file({_quoted_path(path)}, 'ArrowStream')"
            result = self._run(sql.replace("{input}", source), "ArrowTable", params)
        return result if isinstance(result, pa.Table) else pa.table({})

    def insert_arrow(self, table: str, data: pa.Table, *, dedup_token: str | None = None) -> None:
        if data.num_rows == 0:
            return
        if not _DB_NAME.match(table):
            raise StoreRejected(f"invalid table name {table!r}")
        settings = "async_insert=0, insert_deduplicate=1"
        if dedup_token:
            if "'" in dedup_token or "\\" in dedup_token:
                raise StoreRejected(f"invalid deduplication token {dedup_token!r}")
            settings += f", insert_deduplication_token='{dedup_token}'"
        cols = ", ".join(f"`{name}`" for name in data.column_names)
        with _arrow_file(data) as path:
            self._run(
                f"INSERT INTO {table} ({cols}) FROM INFILE {_quoted_path(path)} "
                f"SETTINGS {settings} FORMAT ArrowStream",
                "CSV",
                None,
            )

    def ping(self) -> bool:
        try:
            one: object = self.query_scalar("SELECT 1")
            return one == 1
        except Exception:
            return False

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                try:
                    self._conn.close()
                except Exception:  # closing twice or at interpreter exit
                    log.debug("closing chDB connection failed", exc_info=True)
