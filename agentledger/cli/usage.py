"""``agentledger usage``, ``patterns`` and ``anomalies [detect]``: analytics from the command line.

Like ``traces``, each command asks the running server's HTTP API, or reads a
data directory (``--data-dir``) or ClickHouse (``AGENTLEDGER_CLICKHOUSE_URL``)
directly when no server runs. Times are ISO 8601 (UTC when no offset) or
relative to now: ``90m``, ``24h``, ``7d``, ``2w``.
"""

from __future__ import annotations

from datetime import datetime, timezone

import typer

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
    jsonable,
    print_json,
)
from agentledger.cli.detection import new_use_render, register_actions
from agentledger.cli.usage_render import (
    _hours,
    _patterns_render,
    _print_csv,
    anomalies_table,
    parse_when,
    print_usage_summary,
    usage_table,
)
from agentledger.schemas.read import defaults as D

__all__ = ["register", "parse_when", "print_usage_summary", "usage_table", "anomalies_table"]


def register(app: typer.Typer) -> None:
    """Add ``usage``, ``patterns`` and ``anomalies`` (with ``anomalies detect``) to ``app``."""

    @app.command()
    def usage(
        by: str = typer.Option(
            "",
            "--by",
            "-b",
            help="Dimensions to group by, comma-separated: "
            "principal, agent, provider, model, kind, tool.",
        ),
        since: str = typer.Option(
            f"{D.USAGE_WINDOW_HOURS}h", help="Range start: ISO time or a span before now (24h, 7d)."
        ),
        until: str | None = typer.Option(None, help="Range end (default now)."),
        interval: str | None = typer.Option(None, help="hour or day: a time series."),
        top: int = typer.Option(
            D.USAGE_TOP,
            "--top",
            "-n",
            min=0,
            max=D.USAGE_TOP_MAX,
            help="The N groups with the highest --order-by (0: all).",
        ),
        order_by: str = typer.Option(
            D.USAGE_ORDER_BY,
            "--order-by",
            help="cost_usd, calls, errors, error_rate, tokens, input_tokens, "
            "output_tokens, latency_p50_ms, latency_p95_ms, latency_p99_ms, spans_lost...",
        ),
        metric: str | None = typer.Option(
            None, help="Metric the --plot draws (default: --order-by)."
        ),
        principal: str | None = typer.Option(None, help="Only this principal."),
        agent: str | None = typer.Option(None, help="Only this agent."),
        provider: str | None = typer.Option(None, help="Only this provider."),
        model: str | None = typer.Option(None, help="Only this model."),
        kind: str | None = typer.Option(None, help="Only this span kind (LLM, TOOL, ...)."),
        tool: str | None = typer.Option(None, help="Only this tool."),
        plot: str | None = typer.Option(
            None, "--plot", help="Write a chart of the series: FILE.png or FILE.html."
        ),
        as_csv: bool = typer.Option(False, "--csv", help="Print CSV."),
        refresh: bool = typer.Option(
            True, "--refresh/--no-refresh", help="Bring the rollup up to date first."
        ),
        url: str = UrlOpt,
        data_dir: str | None = DataDirOpt,
        api_key: str | None = ApiKeyOpt,
        tenant: str = TenantOpt,
        as_json: bool = JsonOpt,
    ) -> None:
        """Usage (calls, errors, tokens, cost, latency p50/p95/p99, spans lost in the agent) grouped by dimensions, or as a time series."""
        from agentledger.pipeline.derive import UsageQuery, UsageQueryError

        now = datetime.now(timezone.utc)
        end = parse_when(until, now, now)
        start = parse_when(since, now)
        assert start is not None and end is not None
        if plot and interval is None:
            interval = "hour"
        dims = tuple(d.strip() for d in by.split(",") if d.strip())
        filters = {
            k: v
            for k, v in (
                ("principal", principal),
                ("agent", agent),
                ("provider", provider),
                ("model", model),
                ("kind", kind),
                ("tool", tool),
            )
            if v is not None
        }
        try:  # a question the rollup cannot answer fails here, before any server is asked
            UsageQuery(start, end, dims, interval, top or None, order_by, filters).validate()
        except UsageQueryError as exc:
            fail(str(exc), 2)
        client = connect(url, data_dir, api_key, tenant)
        report = ask(
            client,
            lambda c: c.usage(
                since=start,
                until=end,
                group_by=dims,
                interval=interval,
                top=top,
                order_by=order_by,
                filters=filters,
                refresh=refresh,
            ),
        )
        rows = report.rows
        if plot:
            from agentledger.cli._plot import PlotError, write_plot

            chosen = metric or order_by
            try:
                fmt = write_plot(
                    plot,
                    jsonable(rows),
                    dims,
                    chosen,
                    f"{chosen} by {', '.join(dims) or 'all'} per {interval}",
                )
            except PlotError as exc:
                fail(str(exc), 2)
            typer.echo(f"wrote {fmt.upper()} chart to {plot}", err=True)
        if as_json:
            print_json(rows)
        elif as_csv:
            _print_csv(rows)
        else:
            title = f"Usage {start:%Y-%m-%d %H:%M} .. {end:%Y-%m-%d %H:%M} UTC ({client.where})"
            render.console().print(usage_table(rows, list(dims), title))

    @app.command()
    def patterns(
        since: str = typer.Option(
            f"{D.PATTERNS_WINDOW_HOURS}h",
            help="Current window start: ISO time or a span before now.",
        ),
        until: str | None = typer.Option(None, help="Current window end (default now)."),
        baseline: str = typer.Option(
            f"{D.PATTERNS_BASELINE_HOURS}h",
            help="Baseline: this long before the window (e.g. 7d).",
        ),
        agent: str | None = typer.Option(None, help="Only this agent's sequences."),
        n: int = typer.Option(
            D.PATTERNS_NGRAM, min=1, max=D.PATTERNS_NGRAM_MAX, help="Longest n-gram."
        ),
        top: int = typer.Option(
            D.PATTERNS_TOP, min=1, max=D.PATTERNS_TOP_MAX, help="N-grams per agent."
        ),
        topics: int | None = typer.Option(
            None,
            "--topics",
            min=1,
            max=D.PATTERNS_TOPICS_MAX,
            help="Number of topics (default: chosen by silhouette).",
        ),
        url: str = UrlOpt,
        data_dir: str | None = DataDirOpt,
        api_key: str | None = ApiKeyOpt,
        tenant: str = TenantOpt,
        as_json: bool = JsonOpt,
        new_only: bool = typer.Option(
            False,
            "--new",
            help="Only what is new this window (sequences, topics, principals, models, ...): "
            "counts, first seen, an example trace and one line each.",
        ),
    ) -> None:
        """Tool sequences and n-grams per agent, topics of user inputs, and new or unexpected use."""
        now = datetime.now(timezone.utc)
        end = parse_when(until, now, now)
        start = parse_when(since, now)
        hours = _hours(baseline)
        result = ask(
            connect(url, data_dir, api_key, tenant),
            lambda c: c.patterns(
                since=start, until=end, baseline_hours=hours, agent=agent, n=n, top=top, k=topics
            ),
        )
        if new_only and as_json:
            print_json(result.new_use)
        elif new_only:
            new_use_render(result.new_use)
        elif as_json:
            print_json(result)
        else:
            _patterns_render(result)

    anomalies_app = typer.Typer(
        help="Anomalies found in the recorded traffic.", invoke_without_command=True
    )

    @anomalies_app.callback()
    def anomalies(
        ctx: typer.Context,
        since: str = typer.Option(
            f"{D.ANOMALIES_LOOKBACK_HOURS}h",
            help="Windows ending after this: ISO time or a span before now.",
        ),
        until: str | None = typer.Option(
            None, help="Windows starting before this (default: no limit)."
        ),
        type: str | None = typer.Option(
            None, "--type", help="Only this type (cost_spike, error_burst, ...)."
        ),
        limit: int = typer.Option(
            D.ANOMALIES_LIMIT, "--limit", "-n", min=1, max=D.ANOMALIES_MAX, help="How many."
        ),
        as_csv: bool = typer.Option(False, "--csv", help="Print CSV."),
        url: str = UrlOpt,
        data_dir: str | None = DataDirOpt,
        api_key: str | None = ApiKeyOpt,
        tenant: str = TenantOpt,
        as_json: bool = JsonOpt,
    ) -> None:
        """List stored anomalies (newest first); `agentledger anomalies detect` runs a detection pass."""
        if ctx.invoked_subcommand is not None:
            return
        now = datetime.now(timezone.utc)
        start, end = parse_when(since, now), parse_when(until, now)
        client = connect(url, data_dir, api_key, tenant)
        rows = ask(client, lambda c: c.anomalies(since=start, until=end, type=type, limit=limit))
        if as_json:
            print_json(rows)
        elif as_csv:
            _print_csv(rows)
        else:
            render.console().print(anomalies_table(rows, f"Anomalies ({client.where})"))

    @anomalies_app.command("detect")
    def detect(
        now_opt: str | None = typer.Option(
            None, "--now", help="Detect as of this time (default now)."
        ),
        window_hours: int | None = typer.Option(
            None,
            min=1,
            max=D.DETECT_WINDOW_MAX_HOURS,
            help="Hours examined (default: the detection job's window).",
        ),
        baseline_hours: int | None = typer.Option(
            None,
            min=1,
            max=D.DETECT_BASELINE_MAX_HOURS,
            help="Baseline hours before them (default: the detection job's baseline).",
        ),
        url: str = UrlOpt,
        data_dir: str | None = DataDirOpt,
        api_key: str | None = ApiKeyOpt,
        tenant: str = TenantOpt,
        as_json: bool = JsonOpt,
    ) -> None:
        """Run one detection pass now (rollup, detectors, anomalies table, webhook) and show what it found."""
        clock = datetime.now(timezone.utc)
        at = parse_when(now_opt, clock, clock)
        result = ask(
            connect(url, data_dir, api_key, tenant),
            lambda c: c.detect_anomalies(
                now=at, window_hours=window_hours, baseline_hours=baseline_hours
            ),
        )
        if as_json:
            print_json(result)
            return
        console = render.console()
        found = ", ".join(f"{k}: {v}" for k, v in sorted(result.anomalies.items())) or "none"
        console.print(
            f"Detection as of {result.now[:16]} UTC in {result.seconds:.2f}s: {found}; "
            f"{len(result.new)} new."
        )
        if result.new:
            console.print(anomalies_table(result.new, "New anomalies"))

    register_actions(anomalies_app)
    app.add_typer(anomalies_app, name="anomalies")
