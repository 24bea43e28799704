"""``agentledger pause``, ``resume`` and ``controls``: run controls.

Controls act on the running collectors (a pause holds the next governed tool call of
the runs it names), so ``pause`` and ``resume`` always ask a running server (``--url``).
``controls`` lists them from the server, or, with ``--data-dir``, from a data directory
no server holds. Each pause and resume is recorded with who (``--by``, default
``user@host``) and why (``--reason``).
"""

from __future__ import annotations

import getpass
import socket
from datetime import datetime, timezone
from typing import Any

import typer

from agentledger.cli._common import (
    ApiKeyOpt,
    TenantOpt,
    UrlOpt,
    ask,
    connect,
    fail,
    print_json,
)
from agentledger.schemas.read import defaults as D

__all__ = ["register"]

_URL = UrlOpt
_KEY = ApiKeyOpt
_TRACE = typer.Option(None, "--trace", help="Trace id (32 hex digits) whose run to control.")
_SESSION = typer.Option(None, "--session", help="Session id whose runs to control.")
_AGENT = typer.Option(None, "--agent", help="Agent name whose runs to control.")
_PRINCIPAL = typer.Option(
    None,
    "--principal",
    help="Principal id whose runs to control (anywhere in the delegation chain).",
)
_BY = typer.Option(
    None, "--by", envvar="AGENTLEDGER_OPERATOR", help="Who asks (default: user@host)."
)
_JSON = typer.Option(False, "--json", help="Print JSON.")


def _recorded_by(by: str, note: str) -> str:
    """The key that recorded a control, and who the client said asked (a note, not identity)."""
    return f"{by} (for {note})" if note and note != by else by


class _Failure(Exception):
    pass


def _target(
    trace: str | None, session: str | None, agent: str | None, principal: str | None
) -> tuple[str, str]:
    given = [
        (s, v)
        for s, v in (
            ("trace", trace),
            ("session", session),
            ("agent", agent),
            ("principal", principal),
        )
        if v
    ]
    if len(given) != 1:
        raise _Failure("name exactly one of --trace, --session, --agent, --principal")
    scope, value = given[0]
    if scope == "trace":
        value = value.lower()
        if len(value) != 32 or any(c not in "0123456789abcdef" for c in value):
            raise _Failure(f"trace id {value!r} must be 32 hex digits")
    return scope, value


def _who(by: str | None) -> str:
    if by:
        return by
    try:
        return f"{getpass.getuser()}@{socket.gethostname()}"
    except Exception:  # no user name in some containers
        return ""


def _when(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _control(
    action: str,
    url: str,
    api_key: str | None,
    trace: str | None,
    session: str | None,
    agent: str | None,
    principal: str | None,
    by: str | None,
    reason: str,
    as_json: bool,
) -> None:
    try:
        scope, target = _target(trace, session, agent, principal)
        if not reason.strip():
            raise _Failure("--reason must say why")
    except _Failure as exc:
        fail(str(exc))
    client = connect(url, None, api_key, "default", server_only=True)
    event = ask(
        client,
        lambda c: c.control(action=action, scope=scope, target=target, by=_who(by), reason=reason),
    )
    if as_json:
        print_json(event)
        return
    verb = "paused" if action == "pause" else "resumed"
    typer.echo(
        f"{verb} {scope} {target} (control {event.control_id}) by {_recorded_by(event.by, event.note)}: "
        f"{event.reason}"
    )


def _control_command(action: str, doc: str) -> Any:
    """The ``pause`` or ``resume`` command: the same options, one action."""

    def command(
        trace: str | None = _TRACE,
        session: str | None = _SESSION,
        agent: str | None = _AGENT,
        principal: str | None = _PRINCIPAL,
        reason: str = typer.Option(..., "--reason", help="Why (recorded with the control)."),
        by: str | None = _BY,
        url: str = _URL,
        api_key: str | None = _KEY,
        as_json: bool = _JSON,
    ) -> None:
        _control(action, url, api_key, trace, session, agent, principal, by, reason, as_json)

    command.__doc__ = doc
    command.__name__ = action
    return command


def register(app: typer.Typer) -> None:
    """Add ``pause``, ``resume`` and ``controls`` to ``app``."""

    app.command("pause")(
        _control_command(
            "pause", "Pause runs: their next governed tool call waits until they are resumed."
        )
    )
    app.command("resume")(
        _control_command(
            "resume", "Resume paused runs: their parked tool calls go on, each exactly once."
        )
    )

    @app.command()
    def controls(
        show_all: bool = typer.Option(
            False, "--all", help="Every pause and resume, not only the pauses in force."
        ),
        limit: int = typer.Option(
            D.CONTROLS_LIMIT, "--limit", "-n", min=1, max=D.CONTROLS_MAX, help="How many."
        ),
        url: str = _URL,
        data_dir: str | None = typer.Option(
            None,
            "--data-dir",
            help="Read this embedded data directory directly (no server may hold it).",
        ),
        api_key: str | None = _KEY,
        tenant: str = TenantOpt,
        as_json: bool = _JSON,
    ) -> None:
        """Run controls: the pauses in force (or, with --all, the history), with who and why."""
        client = connect(url, data_dir, api_key, tenant, server_only=data_dir is None)
        answer = ask(client, lambda c: c.controls(everything=show_all, limit=limit))
        if as_json:
            print_json(answer.controls)
            return
        from rich.table import Table

        from agentledger.cli import render

        title = "Run controls" if show_all else "Pauses in force"
        if not answer.shared:
            title += " (this collector only: no store configured)"
        table = Table(title=title)
        for column in ("when", "action", "scope", "target", "by", "reason", "control"):
            table.add_column(column)
        for c in answer.controls:
            table.add_row(
                _when(c.created_at_ns),
                c.action,
                c.scope,
                c.target,
                _recorded_by(c.by, c.note),
                c.reason,
                c.control_id,
            )
        if not answer.controls:
            typer.echo("no pauses in force" if not show_all else "no controls recorded")
            return
        render.console().print(table)
