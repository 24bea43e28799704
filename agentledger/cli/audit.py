"""``agentledger verify``, ``audit`` and ``replay``: answers for auditors."""

from __future__ import annotations

import json
from typing import Any

import typer

from agentledger.cli import render
from agentledger.cli._common import DEFAULT_URL, ask, connect, jsonable, tenant_name
from agentledger.cli.client import ClientError, LedgerClient
from agentledger.schemas.read import defaults as D

__all__ = ["register"]


def _parse_filters(filters: list[str]) -> dict[str, Any]:
    """``--filter key=value`` pairs: agent, model, since, until (ISO times), tools_only, limit."""
    from datetime import datetime

    out: dict[str, Any] = {}
    for item in filters:
        key, sep, value = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in ("agent", "model", "since", "until", "tools_only", "limit"):
            raise typer.BadParameter(
                f"{item!r}: expected agent=, model=, since=, until=, tools_only= or limit=",
                param_hint="--filter",
            )
        value = value.strip()
        try:
            if key in ("since", "until"):
                out[key] = datetime.fromisoformat(value.replace("Z", "+00:00"))
            elif key == "limit":
                out[key] = int(value)
                if not 1 <= out[key] <= D.REPLAY_REQUESTS_MAX:
                    raise ValueError(f"limit must be between 1 and {D.REPLAY_REQUESTS_MAX}")
            elif key == "tools_only":
                out[key] = value.lower() in ("1", "true", "yes", "on")
            else:
                out[key] = value
        except ValueError as exc:
            raise typer.BadParameter(f"{item!r}: {exc}", param_hint="--filter") from exc
    return out


def _rebuilt(
    client: LedgerClient, span_id: str | None, filters: dict[str, Any], api: str | None
) -> tuple[list[Any], list[dict[str, Any]]]:
    """Rebuilt requests of one span or of the filtered calls, as replay sends them."""
    from agentledger.pipeline.services import replay

    if span_id:
        one = client.replay_request(span_id, api=api)
        return [replay.RebuiltRequest.from_dict(one.model_dump(mode="json"))], []
    found = client.replay_requests(api=api, **filters)
    requests = [replay.RebuiltRequest.from_dict(r.model_dump(mode="json")) for r in found.requests]
    return requests, jsonable(found.skipped)


def _print_outcome(console: Any, o: dict[str, Any]) -> None:
    checks = o["checks"]
    console.print(
        f"span [cyan]{o['span_id']}[/cyan] ({o['api']}, request {o['source']}): "
        f"recorded {o['recorded_model']} -> {o['recorded_answered_model']}, "
        f"replayed {o['replay_model']} -> {o['replay_answered_model'] or '?'}"
    )
    match = checks.get("messages_match")
    console.print(
        f"  messages sha256 {checks.get('messages_sha256', '')[:16]}… vs recorded input_hash "
        f"{checks.get('input_hash', '')[:16]}…: "
        + (
            "[green]match[/green]"
            if match
            else "[yellow]n/a[/yellow]"
            if match is None
            else "[red]MISMATCH[/red]"
        )
    )
    if checks.get("reconstruction_exact") is not None:
        console.print(
            "  rebuilt from messages/tools/parameters/model = recorded request: "
            + ("[green]yes[/green]" if checks["reconstruction_exact"] else "[yellow]no[/yellow]")
        )
    for note in o["notes"]:
        console.print(f"  note: {note}")
    if o["error"]:
        console.print(f"  [red]error[/red]: {o['error']}")
        return
    d = o["diff"]
    rec = [c["name"] for c in o["recorded"]["tool_calls"]]
    new = [c["name"] for c in o["replayed"]["tool_calls"]]
    verdict = "[red]DRIFT[/red]" if d["drift"] else "[green]no drift[/green]"
    console.print(
        f"  {verdict}: tools {rec} -> {new} (same: {d['same_tools']}), arguments equal: {d['same_arguments']}, "
        f"text similarity {d['text_similarity']:.3f}, token Jaccard {d['token_jaccard']:.3f}"
    )


def register(app: typer.Typer) -> None:
    @app.command()
    def verify(
        tenant: str = typer.Option(
            "default",
            "--tenant",
            envvar="AGENTLEDGER_TENANT",
            callback=tenant_name,
            help="Tenant to verify.",
        ),
        since: str | None = typer.Option(
            None, help="Check rows of checkpoints created since 'YYYY-MM-DD HH:MM:SS'."
        ),
        url: str = typer.Option(
            DEFAULT_URL, "--url", envvar="AGENTLEDGER_URL", help="Running server."
        ),
        data_dir: str | None = typer.Option(
            None, "--data-dir", help="Read this embedded data directory directly."
        ),
        api_key: str | None = typer.Option(
            None, "--api-key", envvar="AGENTLEDGER_API_KEY", help="API key."
        ),
        as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    ) -> None:
        """Recompute the tamper-evident ledger: OK, or the first broken checkpoint and the spans involved (exit 1)."""
        client = connect(url, data_dir, api_key, tenant, code=2)
        report = ask(client, lambda c: c.verify_ledger(since=since), code=2)
        if as_json:
            typer.echo(json.dumps(report.model_dump(mode="json"), indent=2))
        else:
            console = render.console()
            if report.ok:
                console.print(
                    f"[green]OK[/green]: tenant {report.tenant}: {report.checkpoints} checkpoints, "
                    f"{report.rows} rows and {report.contents_checked} content records verified"
                )
                for stream, head in sorted(report.heads.items()):
                    console.print(f"  head of {stream}: {head}")
            else:
                first = report.problems[0]
                console.print(
                    f"[red]BROKEN[/red]: tenant {report.tenant}: first problem at {first.stream} "
                    f"checkpoint {first.seq}: {first.kind}: {first.detail}"
                )
                for span in first.spans[:20]:
                    console.print(f"  span {span}")
                if len(report.problems) > 1:
                    console.print(
                        f"  ({len(report.problems) - 1} more problem(s); --json lists them all)"
                    )
        if not report.ok:
            raise typer.Exit(1)

    @app.command()
    def audit(
        ref: str = typer.Argument(
            ..., help="Span id (16 hex digits) of an action, or a trace id (32)."
        ),
        last: bool = typer.Option(False, "--last", help="For a trace id: only its last tool call."),
        fmt: str = typer.Option("markdown", "--format", "-f", help="markdown, json or html."),
        output: str | None = typer.Option(
            None, "--output", "-o", help="Write the report to this file."
        ),
        tenant: str = typer.Option(
            "default", "--tenant", envvar="AGENTLEDGER_TENANT", callback=tenant_name, help="Tenant."
        ),
        url: str = typer.Option(
            DEFAULT_URL, "--url", envvar="AGENTLEDGER_URL", help="Running server."
        ),
        data_dir: str | None = typer.Option(
            None, "--data-dir", help="Read this embedded data directory directly."
        ),
        api_key: str | None = typer.Option(
            None, "--api-key", envvar="AGENTLEDGER_API_KEY", help="API key."
        ),
    ) -> None:
        """Everything the agent saw before an action, which model version decided, under whose authority."""
        from agentledger.pipeline.services.audit import to_html, to_markdown

        if fmt not in ("markdown", "json", "html"):
            raise typer.BadParameter("expected markdown, json or html", param_hint="--format")
        report = ask(connect(url, data_dir, api_key, tenant), lambda c: c.audit(ref, last=last))
        result = report.model_dump(mode="json")
        text = (
            json.dumps(result, indent=2, ensure_ascii=False)
            if fmt == "json"
            else to_html(result)
            if fmt == "html"
            else to_markdown(result)
        )
        if output:
            with open(output, "w", encoding="utf-8") as fh:
                fh.write(text)
            typer.echo(
                f"wrote {fmt} audit of {len(result['actions'])} action(s) to {output}", err=True
            )
        else:
            typer.echo(text)

    @app.command()
    def replay(
        span_id: str | None = typer.Argument(
            None, help="LLM span id to replay; omit to replay the --filter matches."
        ),
        model: str | None = typer.Option(
            None, "--model", help="Replay against this model (default: the recorded one)."
        ),
        base_url: str | None = typer.Option(
            None, "--base-url", help="Provider base URL, as its SDK takes it."
        ),
        provider_key: str | None = typer.Option(
            None, "--api-key", help="Provider API key (default: the SDK's variable)."
        ),
        api: str | None = typer.Option(
            None, "--api", help="Send in this wire format: openai or anthropic (translates)."
        ),
        filters: list[str] = typer.Option(
            [], "--filter", help="agent=, model=, since=, until=, tools_only=, limit= (repeatable)."
        ),
        save: bool = typer.Option(
            True, "--save/--no-save", help="Store the drift report of a --filter replay."
        ),
        fail_on_drift: bool = typer.Option(
            False, "--fail-on-drift", help="Exit 1 when any call drifted or failed."
        ),
        tenant: str = typer.Option(
            "default", "--tenant", envvar="AGENTLEDGER_TENANT", callback=tenant_name, help="Tenant."
        ),
        url: str = typer.Option(
            DEFAULT_URL, "--url", envvar="AGENTLEDGER_URL", help="Running server."
        ),
        data_dir: str | None = typer.Option(
            None, "--data-dir", help="Read this embedded data directory directly."
        ),
        server_key: str | None = typer.Option(
            None,
            "--server-key",
            envvar="AGENTLEDGER_API_KEY",
            help="AgentLedger API key (for --url).",
        ),
        timeout: float = typer.Option(
            120.0, "--timeout", help="Seconds to wait for each provider answer."
        ),
        as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    ) -> None:
        """Send a recorded LLM call again and diff the answer; with --filter, replay many into a drift report.

        The request is rebuilt from stored content (messages, tools, parameters, model) and checked against
        the hash recorded at ingest; the drift report (agreement on tools and arguments, text similarity,
        worst cases) is stored with links to the source spans.
        """
        from agentledger.pipeline.services import replay as replay_mod

        if api not in (None, "openai", "anthropic"):
            raise typer.BadParameter("expected openai or anthropic", param_hint="--api")
        if span_id and filters:
            raise typer.BadParameter("give a span id or --filter, not both", param_hint="--filter")
        selected = _parse_filters(filters)
        selected.setdefault("limit", D.REPLAY_REQUESTS_LIMIT)
        client = connect(url, data_dir, server_key, tenant, code=2)
        console = render.console(stderr=as_json)
        try:
            requests, skipped = _rebuilt(client, span_id, selected, api)
            if span_id:
                outcome = replay_mod.replay_request(
                    requests[0],
                    model=model,
                    base_url=base_url,
                    api_key=provider_key,
                    timeout=timeout,
                )
                result: dict[str, Any] = outcome.as_dict()
                drifted = outcome.diff is None or outcome.diff.drift
                if as_json:
                    typer.echo(json.dumps(result, indent=2, ensure_ascii=False))
                else:
                    _print_outcome(console, result)
            else:
                report = replay_mod.replay_many(
                    requests,
                    tenant=tenant,
                    model=model,
                    base_url=base_url,
                    api_key=provider_key,
                    timeout=timeout,
                    filter={k: str(v) for k, v in selected.items()},
                )
                if save and report.outcomes:
                    client.save_replay(report.as_dict())
                summary = report.summary
                drifted = bool(summary["drifted"] or summary["errors"])
                if as_json:
                    typer.echo(
                        json.dumps(
                            {**report.as_dict(), "skipped": skipped, "saved": save},
                            indent=2,
                            ensure_ascii=False,
                        )
                    )
                else:
                    for o in report.outcomes:
                        _print_outcome(console, o.as_dict())
                    sims = summary["text_similarity"]
                    console.print(
                        f"\n[bold]drift report {report.run_id}[/bold]{' (stored)' if save and report.outcomes else ''}: "
                        f"{summary['replayed']} replayed, {summary['errors']} failed, {summary['drifted']} drifted, "
                        f"{len(skipped)} skipped; tool agreement {summary['tool_agreement']}, argument agreement "
                        f"{summary['argument_agreement']}; text similarity mean {sims['mean']} p10 {sims['p10']} "
                        f"p50 {sims['p50']} min {sims['min']}"
                    )
                    for w in summary["worst"]:
                        console.print(
                            f"  worst: span {w['span_id']} tools {w['recorded_tools']} -> {w['replayed_tools']}, "
                            f"similarity {w['text_similarity']:.3f}"
                        )
        except ClientError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from exc
        finally:
            client.close()
        if fail_on_drift and drifted:
            raise typer.Exit(1)
