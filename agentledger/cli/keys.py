"""``agentledger keys create|list|revoke`` and ``agentledger access-log``.

Against a data directory or a ClickHouse store (``--data-dir``, ``AGENTLEDGER_CLICKHOUSE_URL``)
the commands act on the store itself: that is how the first admin key of a store is made, and how
keys of any tenant are managed. Against a running server they use its admin API with an admin key
(``--api-key``), within that key's tenant. A created key's secret is printed once; nothing keeps it.
"""

from __future__ import annotations

import typer

from agentledger.cli._common import (
    ApiKeyOpt,
    DataDirOpt,
    JsonOpt,
    TenantOpt,
    UrlOpt,
    ask,
    connect,
    print_json,
)
from agentledger.schemas.access import Role
from agentledger.schemas.read import ApiKeyInfo
from agentledger.schemas.read import defaults as D

__all__ = ["register"]

keys_app = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)

_ROLES = ", ".join(r.value for r in Role)


@keys_app.command("create")
def create(
    tenant: str = typer.Option(..., "--tenant", help="Tenant the key belongs to."),
    role: str = typer.Option(..., "--role", help=f"One of {_ROLES}."),
    name: str = typer.Option(..., "--name", help="Unique key name (recorded as the actor)."),
    agent: str = typer.Option("", "--agent", help="The one agent the key may send for."),
    as_json: bool = typer.Option(
        False, "--json", help='Print {"name","tenant","role","key"} as JSON.'
    ),
    url: str = UrlOpt,
    data_dir: str | None = DataDirOpt,
    api_key: str | None = ApiKeyOpt,
) -> None:
    """Make a key and print its secret, once."""
    client = connect(url, data_dir, api_key, tenant)
    created = ask(
        client, lambda c: c.create_key(tenant=tenant, role=role, name=name, agent=agent), code=2
    )
    if as_json:
        print_json(
            {
                "name": created.name,
                "tenant": created.tenant,
                "role": created.role,
                "key": created.key,
            }
        )
        return
    typer.echo(f"key {created.name} ({created.role}, tenant {created.tenant}) created:")
    typer.echo(created.key)
    typer.echo("Keep it now: only its SHA-256 is stored, it cannot be shown again.", err=True)


@keys_app.command("list")
def list_keys(
    tenant: str | None = typer.Option(
        None, "--tenant", help="Only this tenant's keys (a store read directly: default all)."
    ),
    as_json: bool = JsonOpt,
    url: str = UrlOpt,
    data_dir: str | None = DataDirOpt,
    api_key: str | None = ApiKeyOpt,
) -> None:
    """Every key, active and revoked; never a secret."""
    client = connect(url, data_dir, api_key, tenant or "default")
    found = ask(client, lambda c: c.keys(tenant=tenant))
    if as_json:
        print_json(found)
        return
    _table(found.keys)


@keys_app.command("revoke")
def revoke(
    name: str = typer.Argument(..., help="Name of the key to revoke."),
    url: str = UrlOpt,
    data_dir: str | None = DataDirOpt,
    api_key: str | None = ApiKeyOpt,
) -> None:
    """Revoke a key: every replica refuses it within 10 seconds."""
    client = connect(url, data_dir, api_key, "default")
    key = ask(client, lambda c: c.revoke_key(name))
    typer.echo(f"key {key.name} of tenant {key.tenant}: {key.status}")


def _table(keys: list[ApiKeyInfo]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table("name", "tenant", "role", "agent", "status", "sha256", "changed", "by")
    for k in keys:
        table.add_row(
            k.name,
            k.tenant,
            k.role,
            k.agent or "-",
            k.status,
            k.key_sha256_prefix,
            k.changed_at,
            k.changed_by,
        )
    Console().print(table)


def access_log(
    limit: int = typer.Option(
        D.ACCESS_LOG_LIMIT, "--limit", min=1, max=D.ACCESS_LOG_MAX, help="Entries, newest first."
    ),
    key: str | None = typer.Option(None, "--key", help="Only this key's reads."),
    as_json: bool = JsonOpt,
    url: str = UrlOpt,
    data_dir: str | None = DataDirOpt,
    api_key: str | None = ApiKeyOpt,
    tenant: str = TenantOpt,
) -> None:
    """Who read what: every read of content, and whether each writer's chain is intact."""
    from rich.console import Console
    from rich.table import Table

    client = connect(url, data_dir, api_key, tenant)
    log = ask(client, lambda c: c.access_log(limit=limit, key=key))
    if as_json:
        print_json(log)
    else:
        table = Table("at", "key", "role", "route", "objects", "rows")
        for e in log.entries:
            shown = ", ".join(e.object_ids[:3]) + (" ..." if len(e.object_ids) > 3 else "")
            table.add_row(
                e.accessed_at, e.key_name, e.role, f"{e.method} {e.route}", shown, str(e.rows)
            )
        Console().print(table)
        typer.echo("chain: intact" if log.intact else "chain: BROKEN", err=not log.intact)
        for problem in log.problems:
            typer.echo(f"  {problem}", err=True)
    if not log.intact:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.add_typer(keys_app, name="keys")
    app.command("access-log")(access_log)
