"""Each tenant's SQL: a database of views over its own rows, and a read-only session on it.

Why views and not row policies or query rewriting: chDB has no users, so no row policies, and
rewriting untrusted SQL is where scoping bugs live. A view ``<db>_sql_<hash>.spans AS SELECT *
FROM <db>.spans FINAL WHERE tenant = '<tenant>'`` is the tenant's table as far as the query can
tell; the guard (``guard``) refuses every name outside that database, so the filter is not
something the query can forget or remove. ``FINAL`` on the deduplicating tables gives the numbers
the API gives (at-least-once delivery leaves duplicates until a merge).

Why a connection of its own per tenant: chDB keeps settings and the current database per
connection. The session sets the limits first, then ``readonly=1`` (after which neither a
``SETTINGS`` clause, a ``SET`` nor a URL argument can change any setting, limits included), then
``USE`` the tenant's database; the store's own connection, which ingest uses, is never touched.
chDB runs queries of different connections at once (a long analyst query does not hold up
ingest); one tenant's queries take turns on its session.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, cast

from agentledger.pipeline.store import Store

__all__ = ["EXPOSED", "Limits", "TenantBook", "TenantSession", "database_for"]

EXPOSED = (
    "spans",
    "contents",
    "usage_hourly",
    "anomalies",
    "dataset_members",
    "span_conflicts",
    "intents_v",
    "intent_outcomes_v",
    "controls_v",
    "feedback_v",
    "datasets_v",
    "anomaly_labels_v",
    "drift_reports_v",
)
"""The store's tables and views a reader may query (each must have a ``tenant`` column). Not the
key book, the access log, the raw record log or the ledger's tables: those need other roles."""


@dataclass(frozen=True)
class Limits:
    """Bounds every analyst query runs under; a session sets them before going read-only."""

    max_execution_time_s: float = 10.0
    max_result_rows: int = 100_000
    max_result_bytes: int = 64 * 1024 * 1024
    max_memory_usage: int = 1024 * 1024 * 1024
    max_threads: int = 2
    max_query_bytes: int = 256 * 1024

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Limits:
        """The defaults, overridden by ``AGENTLEDGER_SQL_TIMEOUT_S``, ``_MAX_ROWS``,
        ``_MAX_RESULT_BYTES`` and ``_MAX_MEMORY_BYTES``; a bad value raises ValueError naming it."""
        env = os.environ if environ is None else environ
        base, fields = cls(), {}
        for var, name in (
            ("AGENTLEDGER_SQL_TIMEOUT_S", "max_execution_time_s"),
            ("AGENTLEDGER_SQL_MAX_ROWS", "max_result_rows"),
            ("AGENTLEDGER_SQL_MAX_RESULT_BYTES", "max_result_bytes"),
            ("AGENTLEDGER_SQL_MAX_MEMORY_BYTES", "max_memory_usage"),
        ):
            raw = env.get(var)
            if raw is None:
                continue
            kind = type(getattr(base, name))
            try:
                value = kind(raw)
            except ValueError:
                raise ValueError(f"{var}={raw!r} is not a number") from None
            if value <= 0:
                raise ValueError(f"{var}={raw!r} must be positive")
            fields[name] = value
        return replace(base, **fields)

    def settings(self) -> dict[str, str]:
        return {
            "max_execution_time": f"{self.max_execution_time_s:g}",
            "timeout_overflow_mode": "'throw'",
            "max_result_rows": str(self.max_result_rows),
            "max_result_bytes": str(self.max_result_bytes),
            "result_overflow_mode": "'throw'",
            "max_memory_usage": str(self.max_memory_usage),
            "max_threads": str(self.max_threads),
            "max_query_size": str(self.max_query_bytes),
            "allow_introspection_functions": "0",
        }


def database_for(store_database: str, tenant: str) -> str:
    """The tenant's view database: a digest of the tenant (any string) makes a safe name."""
    return f"{store_database}_sql_{hashlib.sha256(tenant.encode()).hexdigest()[:16]}"


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class TenantSession:
    """One tenant's read-only chDB connection in its view database (thread-safe: one at a time)."""

    def __init__(self, connect: Callable[[], Any], database: str, limits: Limits) -> None:
        self.database = database
        self._lock = threading.Lock()
        self._connect, self._limits = connect, limits
        self._conn = self._open()

    def _open(self) -> Any:
        conn = self._connect()
        sets = ", ".join(f"{k} = {v}" for k, v in self._limits.settings().items())
        conn.query(f"SET {sets}")
        conn.query("SET readonly = 1")
        conn.query(f"USE {self.database}")
        return conn

    def run(self, sql: str, fmt: str, params: Mapping[str, str] | None = None) -> Any:
        """The chDB result of ``sql`` in ``fmt`` (raises chDB's error).

        After an error the connection is replaced: chDB 4.4 can hand the rows a query streamed
        before it failed (a result-size bound) to the connection's next query."""
        with self._lock:
            try:
                if params:
                    return self._conn.query(sql, fmt, params=dict(params))
                return self._conn.query(sql, fmt)
            except Exception:
                self._reopen()
                raise

    def _reopen(self) -> None:
        try:
            self._conn.close()
        except Exception:  # noqa: BLE001 - a broken connection may not close cleanly
            pass
        self._conn = self._open()

    def text(self, sql: str, params: Mapping[str, str] | None = None) -> str:
        result = self.run(sql, "TSVRaw", params)
        return cast("bytes", result.bytes() or b"").decode("utf-8", "replace")

    def close(self) -> None:
        with self._lock:
            try:
                self._conn.close()
            except Exception:  # noqa: BLE001 - closing at shutdown, twice is fine
                pass


class TenantBook:
    """Makes each tenant's view database on first use and keeps its session."""

    def __init__(self, store: Store, data_dir: str, limits: Limits) -> None:
        import chdb  # the embedded engine; only a process that owns the data directory gets here

        self._store, self._limits = store, limits
        self._connect = lambda: cast("Callable[[str], Any]", chdb.connect)(f"file:{data_dir}")
        self._sessions: dict[str, TenantSession] = {}
        self._lock = threading.Lock()

    def session(self, tenant: str) -> TenantSession:
        with self._lock:
            found = self._sessions.get(tenant)
            if found is None:
                database = database_for(self._store.database, tenant)
                self._make_views(tenant, database)
                found = self._sessions[tenant] = TenantSession(
                    self._connect, database, self._limits
                )
            return found

    def databases(self) -> frozenset[str]:
        """Every database of the engine (a name qualified with one of them is not the tenant's)."""
        rows = self._store.query_rows("SELECT name FROM system.databases")
        return frozenset(str(r["name"]) for r in rows)

    def timezone(self) -> str:
        return str(self._store.query_scalar("SELECT timezone()"))

    def _make_views(self, tenant: str, database: str) -> None:
        source = self._store.database
        rows = self._store.query_rows(
            "SELECT t.name AS name, t.engine AS engine FROM system.tables AS t "
            "WHERE t.database = {db:String} AND t.name IN {names:Array(String)} AND t.name IN "
            "(SELECT table FROM system.columns WHERE database = {db:String} AND name = 'tenant')",
            {"db": source, "names": list(EXPOSED)},
        )
        self._store.command(f"CREATE DATABASE IF NOT EXISTS {database}")
        for row in rows:
            name, engine = str(row["name"]), str(row["engine"])
            final = " FINAL" if engine.startswith("Replacing") else ""
            self._store.command(
                f"CREATE VIEW IF NOT EXISTS {database}.{name} AS SELECT * FROM "
                f"{source}.{name}{final} WHERE tenant = {_quote(tenant)}"
            )

    def close(self) -> None:
        with self._lock:
            for session in self._sessions.values():
                session.close()
            self._sessions.clear()
