"""A ClickHouse server or cluster through clickhouse-connect."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

import pyarrow as pa

from agentledger.pipeline.store.base import (
    Params,
    Store,
    StoreRejected,
    StoreUnavailable,
    retryable_reason,
)

__all__ = ["ClickHouseStore"]


def _translate(exc: Exception) -> Exception:
    from clickhouse_connect.driver import exceptions as chx

    if isinstance(exc, (chx.OperationalError,)):
        return StoreUnavailable(f"ClickHouse unavailable: {exc}")
    if isinstance(exc, chx.DatabaseError):
        why = retryable_reason(str(exc))
        return StoreUnavailable(f"ClickHouse: {why}: {exc}") if why else StoreRejected(str(exc))
    if isinstance(exc, (ConnectionError, TimeoutError, OSError)):
        return StoreUnavailable(f"ClickHouse unavailable: {exc}")
    return StoreRejected(str(exc))


class ClickHouseStore(Store):
    """clickhouse-connect client; ``url`` is ``http(s)://user:password@host:port``."""

    def __init__(
        self,
        url: str,
        database: str = "agentledger",
        *,
        connect_timeout: float = 10,
        send_receive_timeout: float = 300,
        **client_kwargs: Any,
    ) -> None:
        import clickhouse_connect

        parsed = urlparse(url)
        self.database = database
        self.url = url
        self._kwargs: dict[str, Any] = dict(
            host=parsed.hostname or "127.0.0.1",
            port=parsed.port or (8443 if parsed.scheme == "https" else 8123),
            username=parsed.username or "default",
            password=parsed.password or "",
            secure=parsed.scheme == "https",
            connect_timeout=connect_timeout,
            send_receive_timeout=send_receive_timeout,
            # no server session: the store is shared by threads, and a session serializes queries
            autogenerate_session_id=False,
            **client_kwargs,
        )
        try:
            admin = clickhouse_connect.get_client(**self._kwargs)
            admin.command(f"CREATE DATABASE IF NOT EXISTS {database}")
            admin.close()
            self._client = clickhouse_connect.get_client(database=database, **self._kwargs)
        except Exception as exc:
            raise _translate(exc) from exc

    def command(self, sql: str, params: Params | None = None) -> None:
        try:
            self._client.command(sql, parameters=dict(params) if params else None)
        except Exception as exc:
            raise _translate(exc) from exc

    def query_arrow(self, sql: str, params: Params | None = None) -> pa.Table:
        try:
            return self._client.query_arrow(sql, parameters=dict(params) if params else None)
        except Exception as exc:
            raise _translate(exc) from exc

    def insert_arrow(self, table: str, data: pa.Table, *, dedup_token: str | None = None) -> None:
        if data.num_rows == 0:
            return
        settings: dict[str, Any] = {"async_insert": 0, "insert_deduplicate": 1}
        if dedup_token:
            settings["insert_deduplication_token"] = dedup_token
        try:
            self._client.insert_arrow(table, data, settings=settings)
        except Exception as exc:
            raise _translate(exc) from exc

    def ping(self) -> bool:
        try:
            return bool(self._client.ping())
        except Exception:
            return False

    def close(self) -> None:
        try:
            self._client.close()
        except Exception:  # already closed
            pass
