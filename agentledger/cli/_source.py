"""Where query commands read from: a running server's HTTP API, or the data directory.

chDB locks a data directory to one process, so while ``agentledger serve``
runs, queries go through its API; when none runs, they open the directory.
"""

from __future__ import annotations

from typing import Any, Optional, Protocol

import httpx

from agentledger.pipeline import queries

__all__ = ["QuerySource", "open_source", "SourceError"]


class SourceError(Exception):
    """Neither the server nor the data directory can be read."""


class QuerySource(Protocol):
    where: str

    def traces(self, limit: int, service: Optional[str]) -> list[dict[str, Any]]: ...

    def trace(self, trace_id: str) -> dict[str, Any]: ...

    def close(self) -> None: ...


class HttpSource:
    def __init__(self, url: str, api_key: Optional[str]) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.where = url
        self._client = httpx.Client(base_url=url, headers=headers, timeout=30)

    def _get(self, path: str, **params: Any) -> Any:
        resp = self._client.get(path, params={k: v for k, v in params.items() if v is not None})
        if resp.status_code == 404:
            raise SourceError(resp.json().get("detail", "not found"))
        if resp.status_code >= 400:
            raise SourceError(f"{self.where} answered {resp.status_code}: {resp.text[:300]}")
        return resp.json()

    def traces(self, limit: int, service: Optional[str]) -> list[dict[str, Any]]:
        return self._get("/api/v1/traces", limit=limit, service=service)  # type: ignore[no-any-return]

    def trace(self, trace_id: str) -> dict[str, Any]:
        return self._get(f"/api/v1/traces/{trace_id}")  # type: ignore[no-any-return]

    def close(self) -> None:
        self._client.close()


class StoreSource:
    def __init__(self, data_dir: str, tenant: str, clickhouse_url: Optional[str] = None) -> None:
        from agentledger.pipeline.stores import StoreError, migrate, open_store

        try:
            self.store = open_store(clickhouse_url=clickhouse_url, data_dir=data_dir)
            migrate(self.store)
        except StoreError as exc:
            raise SourceError(str(exc)) from exc
        self.tenant = tenant
        self.where = clickhouse_url or data_dir

    def traces(self, limit: int, service: Optional[str]) -> list[dict[str, Any]]:
        return queries.list_traces(self.store, self.tenant, limit=limit, service=service)

    def trace(self, trace_id: str) -> dict[str, Any]:
        spans = queries.get_trace(self.store, self.tenant, trace_id)
        if not spans:
            raise SourceError(f"no trace {trace_id} for tenant {self.tenant!r} in {self.where}")
        return {"trace_id": trace_id.lower(), "spans": spans, "tree": queries.trace_tree(spans)}

    def close(self) -> None:
        self.store.close()


def _server_up(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def open_source(
    *,
    url: str,
    data_dir: Optional[str],
    default_data_dir: str,
    api_key: Optional[str],
    tenant: str,
    clickhouse_url: Optional[str] = None,
) -> QuerySource:
    """An explicit ``--data-dir`` (or ClickHouse URL) is read directly; otherwise the server
    at ``url`` when it answers, else the default data directory."""
    if data_dir is not None or clickhouse_url:
        return StoreSource(data_dir or default_data_dir, tenant, clickhouse_url)
    if _server_up(url):
        return HttpSource(url, api_key)
    return StoreSource(default_data_dir, tenant)
