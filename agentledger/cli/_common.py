"""What every command shares: the options that say where to read, opening the client, output."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import typer
from pydantic import BaseModel

from agentledger.cli.client import ClientError, LedgerClient, open_client

if TYPE_CHECKING:
    from agentledger.pipeline.store import Store

__all__ = [
    "ApiKeyOpt",
    "DEFAULT_DATA_DIR",
    "DEFAULT_URL",
    "DataDirOpt",
    "JsonOpt",
    "TenantOpt",
    "UrlOpt",
    "ask",
    "connect",
    "fail",
    "jsonable",
    "local_store",
    "print_json",
    "tenant_name",
]

T = TypeVar("T")

DEFAULT_URL = "http://127.0.0.1:4318"
"""The server the commands ask when no ``--url`` (or ``AGENTLEDGER_URL``) is given."""
DEFAULT_DATA_DIR = ".agentledger"
"""The data directory read when no server answers and no ``--data-dir`` is given."""

UrlOpt = typer.Option(
    DEFAULT_URL, "--url", envvar="AGENTLEDGER_URL", help="Running AgentLedger server."
)
DataDirOpt = typer.Option(
    None,
    "--data-dir",
    help="Read this embedded data directory directly (default: ask the server, "
    f"else open {DEFAULT_DATA_DIR}).",
)
ApiKeyOpt = typer.Option(
    None, "--api-key", envvar="AGENTLEDGER_API_KEY", help="API key for the server."
)


def tenant_name(value: str) -> str:
    """``--tenant`` checked like every tenant name (``schemas.names``): a usage error if not."""
    from agentledger.schemas.names import validate_name

    try:
        return validate_name("tenant", value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc


TenantOpt = typer.Option(
    "default",
    "--tenant",
    envvar="AGENTLEDGER_TENANT",
    callback=tenant_name,
    help="Tenant, when reading a store directly.",
)
JsonOpt = typer.Option(False, "--json", help="Print JSON instead of a table.")


def fail(message: str, code: int = 1) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def connect(
    url: str,
    data_dir: str | None,
    api_key: str | None,
    tenant: str,
    *,
    server_only: bool = False,
    code: int = 1,
) -> LedgerClient:
    """The client a command reads through (``client.open_client``); a failure ends the command."""
    try:
        return open_client(
            url=url,
            data_dir=data_dir,
            default_data_dir=os.environ.get("AGENTLEDGER_DATA_DIR", DEFAULT_DATA_DIR),
            api_key=api_key,
            tenant=tenant,
            clickhouse_url=os.environ.get("AGENTLEDGER_CLICKHOUSE_URL"),
            server_only=server_only,
        )
    except ClientError as exc:
        fail(str(exc), code)


@contextmanager
def local_store(data_dir: str, *, code: int = 1) -> Iterator[Store]:
    """The store of ``data_dir`` (the ClickHouse server of ``AGENTLEDGER_CLICKHOUSE_URL`` when
    set), for the commands that change it where they run; closed after the block. A store that
    cannot be opened ends the command with its message (exit ``code``)."""
    from agentledger.compose import open_configured_store
    from agentledger.pipeline.settings import StoreSettings
    from agentledger.pipeline.store import StoreError

    try:
        store = open_configured_store(
            StoreSettings(
                data_dir=data_dir, clickhouse_url=os.environ.get("AGENTLEDGER_CLICKHOUSE_URL")
            )
        )
    except (StoreError, ValueError) as exc:
        fail(str(exc), code)
    try:
        yield store
    finally:
        store.close()


def ask(client: LedgerClient, read: Callable[[LedgerClient], T], *, code: int = 1) -> T:
    """``read(client)``, then close the client; a ClientError ends the command with its message."""
    try:
        return read(client)
    except ClientError as exc:
        fail(str(exc), code)
    finally:
        client.close()


def jsonable(value: Any) -> Any:
    """Models (and lists and dicts of them) as JSON values, as the API answers them."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    return value


def print_json(value: Any, *, ensure_ascii: bool = True) -> None:
    typer.echo(json.dumps(jsonable(value), indent=2, default=str, ensure_ascii=ensure_ascii))
