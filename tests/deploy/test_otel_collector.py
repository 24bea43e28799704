"""The shipped OpenTelemetry Collector configurations, run by a real OpenTelemetry Collector.

The collector is built from ``deploy/otel-collector/builder.yaml`` with the OpenTelemetry
Collector Builder (``scripts/otelcol.sh``, cached by release; scripts/test.sh starts that build
in the background before the static checks, and the fixture below waits for it). Each test runs
a shipped file as it is, with only its addresses moved to free loopback ports (``--set``, as an
operator overrides a file), and sends spans as an instrumented agent does: the OpenTelemetry
SDK's OTLP/HTTP exporter.

* placement A (``config.yaml``): the topics created first as the README says
  (``agentledger pipeline topics``); the records on the spans topic are ``otlp_proto`` with the
  tenant header and one trace per record, and the pipeline's consumer stores them under that
  tenant;
* placement B (``config-in-front.yaml``): ``agentledger serve`` with a real API key behind it;
  the spans are stored under the key's tenant and stamped with its name.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from agentledger.pipeline.consumers.spans import SpanConsumer
from agentledger.pipeline.normalize.otlp import OtlpNormalizer
from agentledger.pipeline.settings import KafkaSettings, PipelineSettings
from agentledger.pipeline.store.embedded import EmbeddedStore
from agentledger.pipeline.transport import header_map
from agentledger.pipeline.transport.kafka import KafkaTransport
from agentledger.schemas.topics import SCHEMA_VERSION, Headers
from tests.kafka.conftest import free_port, kafka_bootstrap, kafka_settings  # noqa: F401
from tests.kafka.test_kafka_path import RunningConsumer, wait_for

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
OTEL = ROOT / "deploy" / "otel-collector"
BUILD_TIMEOUT_S = 1200  # ~5 minutes on 2 cores; longer while other builds share them


@pytest.fixture(scope="module")
def otelcol() -> Path:
    """The built collector; waits for a build in progress, fails with its log when it failed."""
    try:
        out = subprocess.run(
            ["bash", str(ROOT / "scripts" / "otelcol.sh")],
            capture_output=True,
            text=True,
            timeout=BUILD_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"scripts/otelcol.sh did not finish in {BUILD_TIMEOUT_S}s: {exc.stderr!r}")
    if out.returncode != 0:
        pytest.fail(f"scripts/otelcol.sh failed (exit {out.returncode}):\n{out.stderr[-4000:]}")
    binary = Path(out.stdout.strip().splitlines()[-1])
    assert binary.is_file() and os.access(binary, os.X_OK), out.stdout
    return binary


class Otelcol:
    """A collector process on one shipped configuration, its addresses on free loopback ports."""

    def __init__(
        self, binary: Path, config: str, settings: dict[str, str], env: dict[str, str]
    ) -> None:
        self.http = free_port()
        self.health = free_port()
        addresses = {
            "receivers::otlp::protocols::grpc::endpoint": f"127.0.0.1:{free_port()}",
            "receivers::otlp::protocols::http::endpoint": f"127.0.0.1:{self.http}",
            "extensions::health_check::endpoint": f"127.0.0.1:{self.health}",
            "service::telemetry::metrics::level": "none",  # no :8888 listener of its own
        }
        args = [str(binary), "--config", str(OTEL / config)]
        args += [f"--set={k}={v}" for k, v in {**addresses, **settings}.items()]
        self.log = Path(os.environ.get("TMPDIR", "/tmp")) / f"otelcol-{uuid.uuid4().hex[:8]}.log"
        self._log = self.log.open("wb")
        self.proc = subprocess.Popen(
            args, env={**os.environ, **env}, stdout=self._log, stderr=subprocess.STDOUT
        )

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-6000:]

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                pytest.fail(f"otelcol exited ({self.proc.returncode}):\n{self.output()}")
            try:
                if httpx.get(f"http://127.0.0.1:{self.health}/", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"otelcol not healthy after {timeout}s:\n{self.output()}")
            time.sleep(0.2)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self._log.close()
        self.log.unlink(missing_ok=True)


def send_traces(endpoint: str, traces: int, spans_per_trace: int) -> dict[str, set[str]]:
    """Spans sent as an instrumented agent sends them; trace id -> its span ids (hex)."""
    provider = TracerProvider(resource=Resource.create({"service.name": "otelcol-test"}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    tracer = provider.get_tracer("agentledger.tests")
    sent: dict[str, set[str]] = {}
    for t in range(traces):
        with tracer.start_as_current_span(f"agent-run-{t}") as root:
            ids = {format(root.get_span_context().span_id, "016x")}
            for s in range(spans_per_trace - 1):
                with tracer.start_as_current_span(f"tool-{s}") as child:
                    ids.add(format(child.get_span_context().span_id, "016x"))
        sent[format(root.get_span_context().trace_id, "032x")] = ids
    provider.shutdown()
    return sent


# -- placement A: instead of our collector --------------------------------------------------------


def _kafka_env(settings: KafkaSettings) -> dict[str, str]:
    return {
        "AGENTLEDGER_KAFKA_BOOTSTRAP_SERVERS": settings.bootstrap_servers or "",
        "AGENTLEDGER_KAFKA_SPANS_TOPIC": settings.spans_topic,
        "AGENTLEDGER_KAFKA_DEAD_LETTER_TOPIC": settings.dead_letter_topic,
        "AGENTLEDGER_KAFKA_FEEDBACK_TOPIC": settings.feedback_topic,
        "AGENTLEDGER_KAFKA_INTENTS_TOPIC": settings.intents_topic,
        "AGENTLEDGER_KAFKA_CONTROLS_TOPIC": settings.controls_topic,
        "AGENTLEDGER_KAFKA_PARTITIONS": str(settings.partitions),
    }


@pytest.fixture
def spans_store(chdb_path: Path) -> Iterator[EmbeddedStore]:
    from agentledger.pipeline.store import migrate

    store = EmbeddedStore(chdb_path, database=f"otelcol_{uuid.uuid4().hex[:10]}")
    migrate(store)
    yield store
    store.command(f"DROP DATABASE IF EXISTS {store.database}")
    store.close()


def test_placement_a_writes_our_topic_and_the_pipeline_stores_it(
    otelcol: Path,
    kafka_settings: KafkaSettings,  # noqa: F811
    spans_store: EmbeddedStore,
) -> None:
    # the documented start: the topics first (the exporter creates none)
    created = subprocess.run(
        [sys.executable, "-m", "agentledger.cli", "pipeline", "topics"],
        env={**os.environ, **_kafka_env(kafka_settings)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert created.returncode == 0, created.stderr
    assert kafka_settings.spans_topic in created.stdout
    collector = Otelcol(
        otelcol,
        "config.yaml",
        {
            "exporters::kafka::brokers": f"[{kafka_settings.bootstrap_servers}]",
            "exporters::kafka::traces::topic": kafka_settings.spans_topic,
        },
        {"OTELCOL_AGENTLEDGER_TENANT": "acme"},
    )
    try:
        collector.wait_ready()
        sent = send_traces(f"http://127.0.0.1:{collector.http}/v1/traces", 4, 3)
        follower = KafkaTransport(kafka_settings).follow(kafka_settings.spans_topic, client_id="t")
        records: list = []
        try:
            wait_for(
                lambda: records.extend(follower.poll(0.5)) or len(_traces(records)) >= len(sent),
                timeout=60,
                what=f"records of {len(sent)} traces on the spans topic",
            )
        finally:
            follower.close()
    finally:
        collector.stop()
    assert _traces(records) == sent
    for record in records:
        headers = header_map(record.headers)
        assert headers[Headers.TENANT] == "acme" and headers[Headers.SCHEMA] == SCHEMA_VERSION
        (trace_id,) = _traces([record])  # one trace per record
        assert record.key == trace_id.encode(), record.key  # keyed as our collector keys

    consumer = SpanConsumer(
        kafka_settings,
        PipelineSettings(batch_max_spans=2000, batch_max_seconds=0.3, metrics_port=0),
        spans_store,
        OtlpNormalizer(),
    )
    total = sum(len(ids) for ids in sent.values())
    with RunningConsumer(consumer):
        wait_for(
            lambda: spans_store.query_scalar("SELECT count() FROM spans") >= total,
            what="the spans stored by the pipeline",
        )
    rows = spans_store.query_rows("SELECT tenant, trace_id, span_id FROM spans")
    assert {r["tenant"] for r in rows} == {"acme"}
    stored: dict[str, set[str]] = {}
    for r in rows:
        stored.setdefault(r["trace_id"], set()).add(r["span_id"])
    assert stored == sent and consumer.stats.dead_letters == 0


def _traces(records: list) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for record in records:
        request = ExportTraceServiceRequest.FromString(record.value)
        for rs in request.resource_spans:
            for ss in rs.scope_spans:
                for span in ss.spans:
                    found.setdefault(span.trace_id.hex(), set()).add(span.span_id.hex())
    return found


# -- placement B: in front of our collector -------------------------------------------------------

INGEST, READER, OTHER = (f"secret-{n}-{uuid.uuid4().hex}" for n in ("ingest", "reader", "other"))


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[str]:
    """``agentledger serve`` with API keys (its own data directory: a child process)."""
    port = free_port()
    keys = f"acme:ingest:otel-gateway={INGEST},acme:reader:ops={READER},globex:reader:x={OTHER}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "agentledger.cli", "serve", "--host", "127.0.0.1"]
        + ["--port", str(port), "--data-dir", str(tmp_path / "data")],
        env={**os.environ, "AGENTLEDGER_API_KEYS": keys},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                err = proc.stderr.read().decode() if proc.stderr else ""
                pytest.fail(f"agentledger serve exited: {err[-3000:]}")
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("agentledger serve not ready after 90s")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def _trace(url: str, trace_id: str, secret: str) -> httpx.Response:
    return httpx.get(
        f"{url}/api/v1/traces/{trace_id}",
        headers={"Authorization": f"Bearer {secret}"},
        timeout=10,
    )


def test_placement_b_forwards_to_our_collector_under_the_keys_tenant(
    otelcol: Path, serve: str
) -> None:
    collector = Otelcol(
        otelcol,
        "config-in-front.yaml",
        {"exporters::otlp_http/agentledger::endpoint": serve},
        {"OTELCOL_AGENTLEDGER_API_KEY": INGEST},
    )
    try:
        collector.wait_ready()
        sent = send_traces(f"http://127.0.0.1:{collector.http}/v1/traces", 3, 2)
        for trace_id, span_ids in sent.items():
            wait_for(
                lambda t=trace_id, n=len(span_ids): (
                    _trace(serve, t, READER).status_code == 200
                    and len(_trace(serve, t, READER).json()["spans"]) == n
                ),
                timeout=60,
                what=f"trace {trace_id} stored behind the OTel Collector",
            )
    except BaseException:
        print(collector.output())
        raise
    finally:
        collector.stop()
    for trace_id, span_ids in sent.items():
        spans = _trace(serve, trace_id, READER).json()["spans"]
        assert {s["span_id"] for s in spans} == span_ids
        assert {s["sent_by"] for s in spans} == {"otel-gateway"}  # the key's name
        assert _trace(serve, trace_id, OTHER).status_code == 404  # not another tenant's
    metrics = httpx.get(
        f"{serve}/metrics", headers={"Authorization": f"Bearer {READER}"}, timeout=10
    ).text
    accepted = sum(len(ids) for ids in sent.values())
    assert f"agentledger_collector_spans_accepted_total {float(accepted)}" in metrics
