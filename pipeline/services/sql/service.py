"""SQL for analysts on the live embedded store: one query in, the engine's bytes out.

``SqlService.run`` is what the ClickHouse-compatible endpoint (``collector/routers/clickhouse``),
``agentledger sql`` and the console's SQL page call: the guard checks the query (``guard``),
the tenant's read-only session runs it (``tenants``), and the answer is the bytes of the output
format the client asked for (Native and Arrow for clickhouse-connect, TSV/CSV/JSON for curl and
Grafana). Errors are ``SqlError`` with ClickHouse's own text, so a client shows what a server
would have said.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from agentledger.pipeline.services.sql.guard import (
    BAD_ARGUMENTS,
    Guard,
    SqlError,
)
from agentledger.pipeline.services.sql.tenants import Limits, TenantBook, TenantSession
from agentledger.pipeline.store import Store

__all__ = ["OUTPUT_FORMATS", "SqlAnswer", "SqlService", "SqlUnavailable"]

OUTPUT_FORMATS = frozenset(
    {
        "Native",
        "Arrow",
        "ArrowStream",
        "Parquet",
        "TabSeparated",
        "TabSeparatedRaw",
        "TabSeparatedWithNames",
        "TabSeparatedWithNamesAndTypes",
        "TSV",
        "TSVRaw",
        "TSVWithNames",
        "TSVWithNamesAndTypes",
        "CSV",
        "CSVWithNames",
        "CSVWithNamesAndTypes",
        "JSON",
        "JSONCompact",
        "JSONEachRow",
        "JSONCompactEachRow",
        "JSONStrings",
        "JSONColumns",
        "JSONCompactColumns",
        "JSONLines",
        "NDJSON",
        "Pretty",
        "PrettyCompact",
        "PrettyCompactMonoBlock",
        "PrettySpace",
        "Markdown",
        "Values",
        "RowBinary",
        "RowBinaryWithNames",
        "RowBinaryWithNamesAndTypes",
        "Null",
    }
)
"""Output formats answered (none that reads a schema file)."""

_UNKNOWN = {60: 404, 81: 404}
_REFUSED = {164: 403, 497: 403}


class SqlUnavailable(Exception):
    """This process cannot run analyst SQL (a store that is not an embedded data directory)."""


@dataclass(frozen=True)
class SqlAnswer:
    """What a query returned: ``body`` in ``fmt``, and ClickHouse's summary counters."""

    body: bytes
    fmt: str
    sql: str
    database: str
    summary: dict[str, str] = field(default_factory=dict)
    rows_read: int = 0


def _engine_error(exc: Exception) -> SqlError:
    """chDB's exception as ClickHouse's text and a 4xx (the query is at fault, or a bound hit)."""
    message = str(exc)
    idx = message.find("Code: ")
    code = BAD_ARGUMENTS
    if idx >= 0:
        message = message[idx:]
        digits = message[6 : message.find(".", 6)]
        code = int(digits) if digits.isdigit() else BAD_ARGUMENTS
    else:
        message = f"Code: {code}. DB::Exception: {message}. (BAD_ARGUMENTS)"
    return SqlError(message.strip(), code, _UNKNOWN.get(code) or _REFUSED.get(code) or 400)


class SqlService:
    """Tenant-scoped, read-only, bounded SQL over an embedded store (see the package docs)."""

    def __init__(self, store: Store, limits: Limits | None = None, *, concurrency: int = 4) -> None:
        data_dir = store.local_dir
        if data_dir is None:
            raise SqlUnavailable(
                "SQL over HTTP serves the embedded store of `agentledger serve`; with a ClickHouse "
                "server, query the server itself with a read-only user"
            )
        self.limits = limits or Limits()
        self.store_database = store.database
        self._timezone: str | None = None
        self._book = TenantBook(store, data_dir, self.limits)
        self._guard: Guard | None = None
        self._guard_lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(concurrency)

    def run(
        self,
        tenant: str,
        query: str,
        *,
        params: Mapping[str, str] | None = None,
        fmt: str | None = None,
    ) -> SqlAnswer:
        """Run ``query`` for ``tenant``; ``fmt`` applies unless the query names a FORMAT."""
        if not query.strip():
            raise SqlError("Code: 62. DB::Exception: Empty query. (SYNTAX_ERROR)", 62, 400)
        if len(query.encode()) > self.limits.max_query_bytes:
            raise SqlError(
                f"Code: 62. DB::Exception: Max query size exceeded: the query is longer than "
                f"{self.limits.max_query_bytes} bytes. (SYNTAX_ERROR)",
                62,
                413,
            )
        session = self._book.session(tenant)
        try:
            with self._slots:
                guard = self._guard_of(session)
                checked = guard.check(
                    session,
                    query,
                    database=session.database,
                    databases=self._book.databases(),
                    params=params,
                )
                out = checked.fmt or fmt or "TabSeparated"
                if out not in OUTPUT_FORMATS:
                    raise SqlError.refused(f"output format {out} is not served here", BAD_ARGUMENTS)
                sql = checked.sql
                if checked.kind == "SHOW DATABASES":  # the tenant's own database only
                    sql = f"SELECT '{session.database}' AS name"
                started = time.perf_counter()
                result = session.run(sql, out, params)
        except SqlError:
            raise
        except Exception as exc:  # chDB raises its own RuntimeError subclass
            raise _engine_error(exc) from exc
        body = bytes(result.bytes() or b"")
        elapsed = time.perf_counter() - started
        rows = int(result.rows_read())
        summary = {
            "read_rows": str(rows),
            "read_bytes": str(int(result.bytes_read())),
            "written_rows": "0",
            "written_bytes": "0",
            "total_rows_to_read": str(rows),
            "result_bytes": str(len(body)),
            "elapsed_ns": str(int(elapsed * 1e9)),
        }
        return SqlAnswer(
            body=body,
            fmt=out,
            sql=checked.sql,
            database=session.database,
            summary=summary,
            rows_read=rows,
        )

    def database(self, tenant: str) -> str:
        """The tenant's view database (made on first use)."""
        return self._book.session(tenant).database

    def timezone(self) -> str:
        """The engine's time zone (ClickHouse's ``X-ClickHouse-Timezone``)."""
        if self._timezone is None:
            self._timezone = self._book.timezone()
        return self._timezone

    def _guard_of(self, session: TenantSession) -> Guard:
        with self._guard_lock:
            if self._guard is None:
                self._guard = Guard(session)
            return self._guard

    def close(self) -> None:
        self._book.close()
