"""``agentledger pipeline run|status``: the Kafka consumer and its health."""

from __future__ import annotations

import json
import logging
import signal
from typing import TYPE_CHECKING, Any

import httpx
import typer
from rich.table import Table

from agentledger.cli import render

if TYPE_CHECKING:
    from agentledger.pipeline.settings import KafkaSettings

__all__ = ["app"]

app = typer.Typer(
    help="The pipeline: Kafka spans topic -> normalizer -> ClickHouse.", no_args_is_help=True
)


@app.command()
def run(
    data_dir: str = typer.Option(
        ".agentledger",
        envvar="AGENTLEDGER_DATA_DIR",
        help="Embedded store, when no ClickHouse URL.",
    ),
    log_level: str = typer.Option("info", help="Log level."),
) -> None:
    """Consume the spans topic into the store until SIGTERM (the batch in flight is finished and committed)."""
    from agentledger.compose import build_pipeline
    from agentledger.pipeline.settings import KafkaSettings, PipelineSettings, StoreSettings
    from agentledger.pipeline.store import StoreError
    from agentledger.pipeline.transport import TransportUnavailable

    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    kafka = KafkaSettings()
    if not kafka.bootstrap_servers:
        typer.echo(
            "error: set AGENTLEDGER_KAFKA_BOOTSTRAP_SERVERS (the pipeline reads from Kafka)",
            err=True,
        )
        raise typer.Exit(2)
    try:
        runner = build_pipeline(kafka, PipelineSettings(), StoreSettings(data_dir=data_dir))
    except (TransportUnavailable, StoreError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc

    def _stop(signum: int, frame: Any) -> None:
        logging.getLogger(__name__).info("signal %s: finishing the current batch", signum)
        runner.stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    runner.run()


@app.command()
def topics() -> None:
    """Create the missing topics (spans, dead letters, feedback, intents, controls) with
    AgentLedger's settings: partitions, replication, retention and record size
    (AGENTLEDGER_KAFKA_*). Run it before anything but AgentLedger writes to them, e.g. an
    OpenTelemetry Collector's Kafka exporter (deploy/otel-collector), which creates none."""
    from agentledger.pipeline.settings import KafkaSettings
    from agentledger.pipeline.transport import TransportUnavailable
    from agentledger.pipeline.transport.kafka import ensure_topics

    kafka = KafkaSettings()
    if not kafka.bootstrap_servers:
        typer.echo("error: set AGENTLEDGER_KAFKA_BOOTSTRAP_SERVERS", err=True)
        raise typer.Exit(2)
    try:
        created = ensure_topics(kafka)
    except (TransportUnavailable, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(f"created topics: {', '.join(created)}" if created else "all topics exist")


@app.command()
def status(
    metrics_url: str | None = typer.Option(
        None,
        help="Metrics endpoint of a running consumer "
        "(default http://AGENTLEDGER_METRICS_HOST:AGENTLEDGER_METRICS_PORT).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Throughput of a running consumer and the consumer group's lag per partition."""
    from agentledger.pipeline.settings import KafkaSettings, PipelineSettings

    settings = PipelineSettings()
    url = metrics_url or f"http://{settings.metrics_host}:{settings.metrics_port}"
    result: dict[str, Any] = {"consumer": None, "group_lag": None}
    try:
        result["consumer"] = httpx.get(f"{url}/status", timeout=3).json()
    except httpx.HTTPError as exc:
        result["consumer_error"] = f"no consumer metrics at {url}: {exc}"
    kafka = KafkaSettings()
    if kafka.bootstrap_servers:
        try:
            result["group_lag"] = group_lag(kafka)
        except Exception as exc:
            result["group_lag_error"] = str(exc)
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    console = render.console()
    consumer = result["consumer"]
    if consumer:
        console.print(
            f"consumer at {url}: {consumer['spans']} spans stored in {consumer['batches']} batches, "
            f"{consumer['spans_per_second']} spans/s, {consumer['dead_letters']} dead letters, "
            f"store {'available' if consumer['store_available'] else '[red]UNAVAILABLE[/red]'}"
        )
    else:
        console.print(result.get("consumer_error", "no consumer"))
    lag = result["group_lag"]
    if lag is not None:
        table = Table(title=f"group {kafka.group_id} on {kafka.spans_topic}", title_justify="left")
        for col in ("partition", "committed", "end", "lag"):
            table.add_column(col, justify="right")
        for row in lag:
            table.add_row(
                str(row["partition"]), str(row["committed"]), str(row["end"]), str(row["lag"])
            )
        console.print(table)
    elif "group_lag_error" in result:
        console.print(f"group lag unavailable: {result['group_lag_error']}")


def group_lag(kafka: KafkaSettings) -> list[dict[str, int]]:
    """Committed offset, end offset and lag of the consumer group, per partition of the spans topic."""
    from agentledger.pipeline.transport.kafka import KafkaTransport

    with KafkaTransport(kafka).admin(timeout=5) as admin:
        return [
            {"partition": p.partition, "committed": p.committed, "end": p.end, "lag": p.lag}
            for p in admin.group_lag(kafka.group_id, kafka.spans_topic)
        ]
