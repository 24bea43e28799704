"""``agentledger retention set|show|run`` and ``agentledger hold add|list|release``.

With ``--url`` they go through a running server's API with an admin key (``--api-key``; the
tenant and the recorded actor are the key's). Otherwise they act on the store (``--data-dir``, or
``AGENTLEDGER_CLICKHOUSE_URL``) as ``cli``, for any ``--tenant``: whoever opens the store's files
holds every role anyway, as with ``agentledger keys create``. The background job prunes with what
they set; ``retention run`` is that job once, on the store.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

import typer

from agentledger.cli._common import (
    DEFAULT_DATA_DIR,
    ApiKeyOpt,
    JsonOpt,
    TenantOpt,
    fail,
    local_store,
    print_json,
)
from agentledger.cli.erase import server_call
from agentledger.schemas.read.erasures import HoldList, LegalHold, RetentionPolicy

if TYPE_CHECKING:
    from agentledger.pipeline.store import Store

__all__ = ["register"]

T = TypeVar("T")

retention_app = typer.Typer(
    help="Per-tenant retention of spans and contents.", no_args_is_help=True
)
hold_app = typer.Typer(help="Legal holds that retention cannot prune.", no_args_is_help=True)

DataDir = typer.Option(
    DEFAULT_DATA_DIR, "--data-dir", envvar="AGENTLEDGER_DATA_DIR", help="Embedded store directory."
)
ServerUrl = typer.Option(
    None, "--url", help="A running server: act through its API with an admin --api-key."
)


def _do(data_dir: str, act: Callable[[Store], T]) -> T:
    """``act(store)``; a bad value (2) or a store failure (1) ends the command with its message."""
    from agentledger.pipeline.services.retention import HoldNotFound
    from agentledger.pipeline.store import StoreError

    with local_store(data_dir) as store:
        try:
            return act(store)
        except (ValueError, HoldNotFound) as exc:
            fail(str(exc), 2)
        except StoreError as exc:
            fail(str(exc))


@retention_app.command("set")
def set_days(
    days: int = typer.Option(..., "--days", help="Prune spans ingested more than N days ago."),
    tenant: str = TenantOpt,
    data_dir: str = DataDir,
    url: str | None = ServerUrl,
    api_key: str | None = ApiKeyOpt,
) -> None:
    """Set a tenant's retention (0 keeps everything)."""
    from agentledger.pipeline.services.retention import set_retention
    from agentledger.schemas.records import Actor

    if url is not None:
        body = {"days": days}
        policy = server_call(url, api_key, "PUT", "/api/v1/retention", RetentionPolicy, json=body)
    else:
        policy = _do(data_dir, lambda s: set_retention(s, tenant, days, actor=Actor.CLI))
    typer.echo(f"tenant {policy.tenant}: retention {policy.days} days (0: kept forever)")


@retention_app.command("show")
def show(
    tenant: str = TenantOpt,
    data_dir: str = DataDir,
    url: str | None = ServerUrl,
    api_key: str | None = ApiKeyOpt,
    as_json: bool = JsonOpt,
) -> None:
    """A tenant's retention as it stands."""
    from agentledger.pipeline.services.retention import retention_policy

    if url is not None:
        policy = server_call(url, api_key, "GET", "/api/v1/retention", RetentionPolicy)
    else:
        policy = _do(data_dir, lambda s: retention_policy(s, tenant))
    if as_json:
        print_json(policy)
        return
    when = f", set {policy.set_at} by {policy.set_by}" if policy.set_at else " (never set)"
    typer.echo(f"tenant {policy.tenant}: retention {policy.days} days{when}")


@retention_app.command("run")
def run(tenant: str = TenantOpt, data_dir: str = DataDir, as_json: bool = JsonOpt) -> None:
    """Prune now what the tenant's retention expires (what the background job does)."""
    from agentledger.pipeline.derive.retention import utc_now
    from agentledger.pipeline.services.retention import run_retention

    passes = _do(data_dir, lambda s: run_retention(s, utc_now(), tenant))
    if as_json:
        print_json(passes)
        return
    for p in passes:
        typer.echo(
            f"tenant {p.tenant} ({p.retention_days} days): {p.spans} spans and {p.contents} "
            f"contents pruned, {p.held_spans} held"
            + (f"; recorded as retention_expiry {p.expiry_id}" if p.expiry_id else "")
        )


@hold_app.command("add")
def add(
    trace: str | None = typer.Option(None, "--trace", help="Hold a trace (its id)."),
    session: str | None = typer.Option(None, "--session", help="Hold a session (its id)."),
    principal: str | None = typer.Option(None, "--principal", help="Hold a principal (its id)."),
    reason: str = typer.Option(..., "--reason", help="The matter the hold is for."),
    tenant: str = TenantOpt,
    data_dir: str = DataDir,
    url: str | None = ServerUrl,
    api_key: str | None = ApiKeyOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Place a legal hold: retention prunes nothing it covers until it is released."""
    from agentledger.pipeline.services.retention import add_hold
    from agentledger.schemas.records import Actor

    given = [(s, v) for s, v in (("trace", trace), ("session", session), ("principal", principal))]
    chosen = [(s, v) for s, v in given if v is not None]
    if len(chosen) != 1:
        fail("give exactly one of --trace, --session, --principal", 2)
    scope, target = chosen[0]
    if url is not None:
        body = {"scope": scope, "target": target, "reason": reason}
        hold = server_call(url, api_key, "POST", "/api/v1/holds", LegalHold, json=body)
    else:
        hold = _do(
            data_dir, lambda s: add_hold(s, tenant, scope, str(target), reason, actor=Actor.CLI)
        )
    if as_json:
        print_json(hold)
        return
    typer.echo(f"hold {hold.hold_id} on {hold.scope} {hold.target} placed")


@hold_app.command("list")
def list_(
    released: bool = typer.Option(False, "--released", help="Show released holds too."),
    tenant: str = TenantOpt,
    data_dir: str = DataDir,
    url: str | None = ServerUrl,
    api_key: str | None = ApiKeyOpt,
    as_json: bool = JsonOpt,
) -> None:
    """The tenant's holds."""
    from agentledger.pipeline.services.retention import list_holds

    if url is not None:
        params = {"released": str(released).lower()}
        found = server_call(url, api_key, "GET", "/api/v1/holds", HoldList, params=params)
    else:
        found = _do(data_dir, lambda s: list_holds(s, tenant, released=released))
    if as_json:
        print_json(found)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("hold", "scope", "target", "active", "reason", "at", "by")
    for h in found.holds:
        table.add_row(h.hold_id, h.scope, h.target, str(h.active), h.reason, h.at, h.actor)
    Console().print(table)


@hold_app.command("release")
def release(
    hold_id: str = typer.Argument(..., help="Id of the hold to release."),
    tenant: str = TenantOpt,
    data_dir: str = DataDir,
    url: str | None = ServerUrl,
    api_key: str | None = ApiKeyOpt,
) -> None:
    """Release a hold: the next retention pass may prune what it kept."""
    from agentledger.pipeline.services.retention import release_hold
    from agentledger.schemas.records import Actor

    if url is not None:
        path = f"/api/v1/holds/{hold_id}"
        hold = server_call(url, api_key, "DELETE", path, LegalHold)
    else:
        hold = _do(data_dir, lambda s: release_hold(s, tenant, hold_id, actor=Actor.CLI))
    typer.echo(f"hold {hold.hold_id} on {hold.scope} {hold.target} released")


def register(app: typer.Typer) -> None:
    app.add_typer(retention_app, name="retention")
    app.add_typer(hold_app, name="hold")
