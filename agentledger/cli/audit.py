"""``agentledger verify`` (and the audit commands): answers for auditors."""

from __future__ import annotations

import json
import os
from typing import Any, Optional

import typer

from agentledger.cli import _source, render

__all__ = ["register"]


def _verify(url: str, data_dir: Optional[str], api_key: Optional[str], tenant: str, since: Optional[str]) -> dict[str, Any]:
    src = _source.open_source(url=url, data_dir=data_dir,
                              default_data_dir=os.environ.get("AGENTLEDGER_DATA_DIR", ".agentledger"),
                              api_key=api_key, tenant=tenant,
                              clickhouse_url=os.environ.get("AGENTLEDGER_CLICKHOUSE_URL"))
    try:
        if isinstance(src, _source.HttpSource):
            return src._get("/api/v1/ledger/verify", since=since)  # type: ignore[no-any-return]
        from agentledger.pipeline.ledger import verify
        from agentledger.pipeline.settings import StoreSettings

        settings = StoreSettings()
        key = settings.ledger_key.get_secret_value().encode() if settings.ledger_key else None
        return verify(src.store, tenant, key=key, since=since).as_dict()  # type: ignore[attr-defined]
    finally:
        src.close()


def register(app: typer.Typer) -> None:
    @app.command()
    def verify(
        tenant: str = typer.Option("default", "--tenant", envvar="AGENTLEDGER_TENANT", help="Tenant to verify."),
        since: Optional[str] = typer.Option(None, help="Check rows of checkpoints created since 'YYYY-MM-DD HH:MM:SS'."),
        url: str = typer.Option("http://127.0.0.1:4318", "--url", envvar="AGENTLEDGER_URL", help="Running server."),
        data_dir: Optional[str] = typer.Option(None, "--data-dir", help="Read this embedded data directory directly."),
        api_key: Optional[str] = typer.Option(None, "--api-key", envvar="AGENTLEDGER_API_KEY", help="API key."),
        as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    ) -> None:
        """Recompute the tamper-evident ledger: OK, or the first broken checkpoint and the spans involved (exit 1)."""
        try:
            report = _verify(url, data_dir, api_key, tenant, since)
        except _source.SourceError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from exc
        if as_json:
            typer.echo(json.dumps(report, indent=2))
        else:
            console = render.console()
            if report["ok"]:
                console.print(f"[green]OK[/green]: tenant {report['tenant']}: {report['checkpoints']} checkpoints, "
                              f"{report['rows']} rows and {report['contents_checked']} content records verified")
                for stream, head in sorted(report["heads"].items()):
                    console.print(f"  head of {stream}: {head}")
            else:
                first = report["problems"][0]
                console.print(f"[red]BROKEN[/red]: tenant {report['tenant']}: first problem at {first['stream']} "
                              f"checkpoint {first['seq']}: {first['kind']}: {first['detail']}")
                for span in first["spans"][:20]:
                    console.print(f"  span {span}")
                if len(report["problems"]) > 1:
                    console.print(f"  ({len(report['problems']) - 1} more problem(s); --json lists them all)")
        if not report["ok"]:
            raise typer.Exit(1)
