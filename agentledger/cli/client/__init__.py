"""What the CLI reads through: one client protocol, over HTTP or over a data directory.

chDB locks a data directory to one process, so while ``agentledger serve`` runs the
commands ask its API (``HttpReadClient``); when none runs they open the directory, or a
ClickHouse server, themselves (``LocalReadClient``, built by the composition root). Both
answer with the models of ``agentledger.schemas.read``, and the local client calls the
same read services (``pipeline.services.reads``) the routers call, so every command has
one code path and the same defaults (``schemas.read.defaults``) whichever it talks to.

Errors reach a command as one type, ``ClientError``, whose message is the answer to show.
"""

from __future__ import annotations

import httpx

from agentledger.cli.client.base import ClientError, LedgerClient, Progress, ReadClient
from agentledger.cli.client.http import HttpReadClient
from agentledger.cli.client.local import LocalReadClient

__all__ = [
    "ClientError",
    "HttpReadClient",
    "LedgerClient",
    "LocalReadClient",
    "Progress",
    "ReadClient",
    "open_client",
]


def _server_up(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def _local(data_dir: str, tenant: str, clickhouse_url: str | None) -> LedgerClient:
    from agentledger.compose import build_local_reader
    from agentledger.pipeline.settings import StoreSettings
    from agentledger.pipeline.store import StoreError

    try:
        settings = StoreSettings(data_dir=data_dir, clickhouse_url=clickhouse_url)
        return build_local_reader(settings, tenant)
    except (StoreError, ValueError) as exc:
        raise ClientError(str(exc)) from exc


def open_client(
    *,
    url: str,
    data_dir: str | None,
    default_data_dir: str,
    api_key: str | None,
    tenant: str,
    clickhouse_url: str | None = None,
    server_only: bool = False,
) -> LedgerClient:
    """An explicit ``--data-dir`` (or ClickHouse URL) is read directly; otherwise the server at
    ``url`` when it answers, else the default data directory. ``server_only``: always the
    server (run controls act on the running collectors)."""
    if server_only:
        return HttpReadClient(url, api_key)
    if data_dir is not None or clickhouse_url:
        return _local(data_dir or default_data_dir, tenant, clickhouse_url)
    if _server_up(url):
        return HttpReadClient(url, api_key)
    return _local(default_data_dir, tenant, None)
