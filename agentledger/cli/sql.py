"""``agentledger sql QUERY``: read-only SQL on the tenant's tables, live on a running server.

Over HTTP the query goes to the server's ClickHouse-compatible endpoint (``/clickhouse``), so it
works while ``agentledger serve`` holds the embedded store's lock; on a data directory it runs the
same service in this process. Either way the query is checked, bounded and scoped to one tenant
the same way (``pipeline.services.sql``), and logged in the access log.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import typer
from rich.table import Table

from agentledger.cli import render
from agentledger.cli._common import (
    ApiKeyOpt,
    DataDirOpt,
    JsonOpt,
    TenantOpt,
    UrlOpt,
    ask,
    connect,
    fail,
)

__all__ = ["register", "rows_table"]


def _params(values: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for value in values:
        name, sep, text = value.partition("=")
        if not sep or not name.isidentifier():
            raise typer.BadParameter(f"--param {value!r}: write NAME=VALUE")
        out[name] = text
    return out


def rows_table(answer: dict[str, Any]) -> Table:
    """ClickHouse's ``JSON`` output (``meta`` and ``data``) as a Rich table."""
    table = Table(show_lines=False)
    names = [str(m["name"]) for m in answer.get("meta", [])]
    for meta in answer.get("meta", []):
        numeric = any(t in str(meta["type"]) for t in ("Int", "Float", "Decimal"))
        table.add_column(str(meta["name"]), justify="right" if numeric else "left")
    for row in answer.get("data", []):
        table.add_row(*(_cell(row.get(n)) for n in names))
    return table


def _cell(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def register(app: typer.Typer) -> None:
    """Add ``sql`` to ``app``."""

    @app.command("sql")
    def sql(
        query: str = typer.Argument(
            ..., help="The query (SELECT, WITH, SHOW, DESCRIBE...); - reads stdin."
        ),
        param: list[str] = typer.Option(
            [], "--param", "-p", help="NAME=VALUE for a {NAME:Type} placeholder (repeatable)."
        ),
        as_csv: bool = typer.Option(False, "--csv", help="Print CSV with a header row."),
        url: str = UrlOpt,
        data_dir: str | None = DataDirOpt,
        api_key: str | None = ApiKeyOpt,
        tenant: str = TenantOpt,
        as_json: bool = JsonOpt,
    ) -> None:
        """Run a read-only SQL query on your tenant's tables (SHOW TABLES lists them)."""
        text = sys.stdin.read() if query == "-" else query
        bound = _params(param)
        fmt = "CSVWithNames" if as_csv else "JSON"
        client = connect(url, data_dir, api_key, tenant)
        body = ask(client, lambda c: c.sql(text, fmt=fmt, params=bound))
        if as_csv:
            sys.stdout.write(body.decode("utf-8", "replace"))
            return
        try:
            answer = json.loads(body)
        except ValueError:  # the query named its own FORMAT: print what it asked for
            sys.stdout.write(body.decode("utf-8", "replace"))
            return
        if not isinstance(answer, dict) or "data" not in answer:
            fail("the server's answer is not ClickHouse JSON")
        if as_json:
            typer.echo(json.dumps(answer["data"], indent=2, ensure_ascii=False, default=str))
            return
        out = render.console()
        out.print(rows_table(answer))
        rows = answer.get("rows", len(answer["data"]))
        out.print(f"{rows} row{'' if rows == 1 else 's'}", style="dim")
