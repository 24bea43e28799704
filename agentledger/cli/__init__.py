"""The ``agentledger`` command line (Typer)."""

from __future__ import annotations

import json
import logging
import os
from typing import Any

import typer

from agentledger.cli import render
from agentledger.cli._common import (
    DEFAULT_DATA_DIR,
    ApiKeyOpt,
    DataDirOpt,
    JsonOpt,
    TenantOpt,
    UrlOpt,
    ask,
    connect,
    fail,
    print_json,
)
from agentledger.cli.client import ClientError
from agentledger.schemas.read import defaults as D

__all__ = ["app", "main"]

app = typer.Typer(
    name="agentledger",
    help="AgentLedger: the flight recorder for AI agents. Record, query, audit.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.command()
def serve(
    host: str = typer.Option(
        "127.0.0.1", envvar="AGENTLEDGER_HOST", help="Interface to listen on."
    ),
    port: int = typer.Option(4318, envvar="AGENTLEDGER_PORT", help="Port (4318 is OTLP/HTTP's)."),
    data_dir: str = typer.Option(
        DEFAULT_DATA_DIR, envvar="AGENTLEDGER_DATA_DIR", help="Embedded store directory."
    ),
    no_auth: bool = typer.Option(
        False,
        "--no-auth",
        envvar="AGENTLEDGER_NO_AUTH",
        help="Single tenant, no API keys, every role (loopback addresses only).",
    ),
    log_level: str = typer.Option("info", help="Log level."),
) -> None:
    """Run the collector with the embedded pipeline and store (no Kafka, no ClickHouse server)."""
    import uvicorn

    from agentledger.collector import CollectorSettings
    from agentledger.compose import build_embedded_app
    from agentledger.pipeline.settings import StoreSettings
    from agentledger.pipeline.store import StoreError

    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        collector = CollectorSettings(host=host, port=port, no_auth=no_auth)
        store_settings = StoreSettings(data_dir=data_dir)
        fastapi_app = build_embedded_app(collector, store_settings)
    except (ValueError, StoreError) as exc:
        fail(str(exc), 2)
    where = store_settings.clickhouse_url or os.path.abspath(data_dir)
    typer.echo(
        f"AgentLedger listening on http://{host}:{port} (OTLP/HTTP at /v1/traces, docs at /docs); store: {where}"
    )
    uvicorn.run(fastapi_app, host=host, port=port, log_level=log_level.lower())


@app.command()
def collector(
    host: str = typer.Option("0.0.0.0", envvar="AGENTLEDGER_HOST", help="Interface to listen on."),
    port: int = typer.Option(4318, envvar="AGENTLEDGER_PORT", help="Port (4318 is OTLP/HTTP's)."),
    no_auth: bool = typer.Option(
        False,
        "--no-auth",
        envvar="AGENTLEDGER_NO_AUTH",
        help="Single tenant, no API keys, every role (loopback addresses only).",
    ),
    log_level: str = typer.Option("info", help="Log level."),
) -> None:
    """Run the production collector: OTLP/HTTP in, Kafka out (needs AGENTLEDGER_KAFKA_BOOTSTRAP_SERVERS)."""
    import uvicorn

    from agentledger.collector import CollectorSettings
    from agentledger.compose import build_collector_app
    from agentledger.pipeline.settings import KafkaSettings, StoreSettings
    from agentledger.pipeline.store import StoreError
    from agentledger.pipeline.transport import TransportUnavailable

    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    kafka = KafkaSettings()
    if not kafka.bootstrap_servers:
        fail(
            "set AGENTLEDGER_KAFKA_BOOTSTRAP_SERVERS (or use `agentledger serve` for the embedded mode)",
            2,
        )
    try:
        fastapi_app = build_collector_app(
            CollectorSettings(host=host, port=port, no_auth=no_auth), kafka, StoreSettings()
        )
    except (ValueError, StoreError, TransportUnavailable) as exc:
        fail(str(exc), 2)
    typer.echo(
        f"AgentLedger collector on http://{host}:{port} -> Kafka {kafka.bootstrap_servers} topic {kafka.spans_topic}"
    )
    uvicorn.run(fastapi_app, host=host, port=port, log_level=log_level.lower())


@app.command()
def traces(
    limit: int = typer.Option(
        D.TRACES_LIMIT, "--limit", "-n", min=1, max=D.TRACES_MAX, help="How many traces."
    ),
    service: str | None = typer.Option(None, help="Only this service."),
    url: str = UrlOpt,
    data_dir: str | None = DataDirOpt,
    api_key: str | None = ApiKeyOpt,
    tenant: str = TenantOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Recent traces: id, root, service, start, duration, spans, tokens, cost, status."""
    client = connect(url, data_dir, api_key, tenant)
    rows = ask(client, lambda c: c.traces(limit=limit, service=service))
    if as_json:
        print_json(rows)
        return
    render.console().print(render.traces_table(rows, f"Recent traces ({client.where})"))


@app.command()
def trace(
    trace_id: str = typer.Argument(..., help="Trace id (32 hex digits)."),
    url: str = UrlOpt,
    data_dir: str | None = DataDirOpt,
    api_key: str | None = ApiKeyOpt,
    tenant: str = TenantOpt,
    as_json: bool = JsonOpt,
    graph: bool = typer.Option(
        False,
        "--graph",
        help="The agents of the trace and its runs, and the handoffs between them, instead.",
    ),
) -> None:
    """One trace as a span tree: kinds, models, tokens, durations, tools, documents."""
    if graph:
        from agentledger.cli.agents import show_graph

        found = ask(
            connect(url, data_dir, api_key, tenant), lambda c: c.agents_graph(trace_id=trace_id)
        )
        show_graph(found, "table", as_json, f"Handoffs of trace {trace_id}")
        return
    result = ask(connect(url, data_dir, api_key, tenant), lambda c: c.trace(trace_id))
    if as_json:
        print_json(result)
        return
    render.console().print(render.trace_tree(result))


@app.command()
def migrate(
    data_dir: str = typer.Option(
        DEFAULT_DATA_DIR, envvar="AGENTLEDGER_DATA_DIR", help="Embedded store directory."
    ),
    clickhouse_url: str | None = typer.Option(
        None, envvar="AGENTLEDGER_CLICKHOUSE_URL", help="ClickHouse server URL."
    ),
    cluster: str | None = typer.Option(
        None,
        envvar="AGENTLEDGER_CLICKHOUSE_CLUSTER",
        help="Apply the cluster variant (Replicated + Distributed, ON CLUSTER).",
    ),
    print_sql: bool = typer.Option(
        False, "--print-sql", help="Print the statements instead of running them."
    ),
) -> None:
    """Apply pending schema migrations (servers also do this at start-up)."""
    from agentledger.pipeline.settings import StoreSettings
    from agentledger.pipeline.store import StoreError, load_migrations, open_store
    from agentledger.pipeline.store import migrate as run_migrations
    from agentledger.pipeline.store.migrate import render_for_cluster

    settings = StoreSettings(
        data_dir=data_dir, clickhouse_url=clickhouse_url, clickhouse_cluster=cluster
    )
    if print_sql:
        for mig in load_migrations():
            typer.echo(f"-- {mig.version:04d}_{mig.name}")
            for statement in mig.statements():
                for rendered in (
                    render_for_cluster(statement, cluster, settings.database)
                    if cluster
                    else [statement]
                ):
                    typer.echo(rendered.rstrip() + ";\n")
        return
    try:
        with open_store(
            clickhouse_url=settings.clickhouse_url,
            data_dir=settings.data_dir,
            database=settings.database,
        ) as store:
            applied = run_migrations(store, cluster=settings.clickhouse_cluster)
    except StoreError as exc:
        fail(str(exc))
    typer.echo(f"applied migrations: {applied}" if applied else "schema is up to date")


@app.command()
def demo(
    data_dir: str = typer.Option(
        DEFAULT_DATA_DIR, envvar="AGENTLEDGER_DATA_DIR", help="Embedded store directory."
    ),
    as_json: bool = JsonOpt,
) -> None:
    """Run a sample finance-controls agent end to end on the embedded default and show what was recorded."""
    from agentledger.cli.demo import run_demo

    try:
        run_demo(data_dir, as_json=as_json)
    except ClientError as exc:
        fail(str(exc))


def _version_info() -> dict[str, Any]:
    """What ``agentledger version`` reports: the version, the normalizer the server would use
    (``AGENTLEDGER_NORMALIZER`` and whether the compiled one is installed), the installed
    opentelemetry-sdk, and whether instrumentation's fast path (lean spans) is on for it."""
    from importlib import metadata

    from agentledger.collector.main import _version
    from agentledger.instrumentation import _lean
    from agentledger.pipeline.normalize.native import normalizer_choice
    from agentledger.pipeline.settings import StoreSettings

    try:
        otel_sdk: str | None = metadata.version("opentelemetry-sdk")
    except metadata.PackageNotFoundError:
        otel_sdk = None
    fast_path = getattr(_lean, "fast_path_supported", lambda: False)
    return {
        "version": _version(),
        "normalizer": normalizer_choice(StoreSettings().normalizer),
        "otel_sdk": otel_sdk,
        "fast_path": bool(fast_path()),
    }


@app.command()
def version(as_json: bool = JsonOpt) -> None:
    """Print the AgentLedger version, the normalizer in use, the OpenTelemetry SDK and whether
    the instrumentation's fast path is on for it."""
    try:
        info = _version_info()
    except ValueError as exc:  # a setting that does not validate (pydantic's ValidationError)
        fail(str(exc))
    if as_json:
        typer.echo(json.dumps(info))
        return
    typer.echo(
        f"agentledger {info['version']} (normalizer: {info['normalizer']}, "
        f"opentelemetry-sdk {info['otel_sdk'] or 'not installed'}, "
        f"fast path: {'on' if info['fast_path'] else 'off'})"
    )


from agentledger.cli import agents as _agents  # noqa: E402
from agentledger.cli import audit as _audit  # noqa: E402
from agentledger.cli import datasets as _datasets  # noqa: E402
from agentledger.cli import erase as _erase  # noqa: E402
from agentledger.cli import governance as _governance  # noqa: E402
from agentledger.cli import keys as _keys  # noqa: E402
from agentledger.cli import ledger as _ledger  # noqa: E402
from agentledger.cli import retention as _retention  # noqa: E402
from agentledger.cli import sql as _sql  # noqa: E402
from agentledger.cli import usage as _usage  # noqa: E402
from agentledger.cli import witness as _witness  # noqa: E402
from agentledger.cli.pipeline import app as _pipeline_app  # noqa: E402

app.add_typer(_pipeline_app, name="pipeline")
_governance.register(app)
_usage.register(app)
_datasets.register(app)
_audit.register(app)
_keys.register(app)
_ledger.register(app)
_agents.register(app)
_sql.register(app)
_erase.register(app)
_retention.register(app)
_witness.register(app)


def main() -> None:
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
