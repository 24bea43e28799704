"""What every command shares: the options that say where to read, opening the client, output."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import typer
from pydantic import BaseModel

from agentledger.cli.client import ClientError, LedgerClient, open_client

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
