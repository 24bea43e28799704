"""Both stores run the same SQL: clickhouse-connect over HTTP to the real engine, and embedded chDB.

No modern ClickHouse server installs on this machine, so the clickhouse-connect
store talks to tests/support/chdb_http.py: the ClickHouse HTTP protocol in front
of chDB (the same engine).
"""

from __future__ import annotations

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from agentledger.collector import CollectorSettings
from agentledger.pipeline.normalize import OtlpNormalizer, SourcePosition
from agentledger.pipeline.services import queries
from agentledger.pipeline.store import StoreRejected, StoreUnavailable, migrate
from agentledger.pipeline.store.writer import StoreWriter
from agentledger.server import EmbeddedServer
from tests.pipeline.test_conventions import PEERS


def _peer_batch():
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    reqs = []
    for i, name in enumerate(["openinference", "openllmetry", "langfuse", "otel_genai_latest"]):
        req = ExportTraceServiceRequest.FromString((PEERS / f"{name}.otlp.pb").read_bytes())
        reqs.append((req, SourcePosition("acme", 1_700_000_000_000_000_000 + i, "test", 0, i)))
    return OtlpNormalizer().normalize(reqs)


def test_clickhouse_connect_store_runs_migrations_and_parameters(ch_store, endpoint) -> None:
    tables = {r["name"] for r in ch_store.query_rows("SHOW TABLES")}
    assert {"spans", "contents", "schema_migrations"} <= tables
    assert migrate(ch_store) == []
    assert ch_store.query_scalar("SELECT {x:String} || '!'", {"x": "it's"}) == "it's!"
    assert any("param_x" in q or "{x:String}" in q for q in endpoint.queries)


def test_same_queries_same_answers_on_both_stores(store, ch_store) -> None:
    batch = _peer_batch()
    for s in (store, ch_store):
        StoreWriter(s).write(batch, "test-0-3")
    assert (
        store.query_scalar("SELECT count() FROM spans")
        == ch_store.query_scalar("SELECT count() FROM spans")
        == batch.span_count
    )
    emb = queries.list_traces(store, "acme", limit=50)
    chc = queries.list_traces(ch_store, "acme", limit=50)
    assert len(emb) == 4 and emb == chc
    for t in emb:
        assert queries.get_trace(store, "acme", t["trace_id"]) == queries.get_trace(
            ch_store, "acme", t["trace_id"]
        )
    hashes = [h for h in batch.contents.column("hash").to_pylist()]
    assert queries.get_contents(store, "acme", hashes) == queries.get_contents(
        ch_store, "acme", hashes
    )
    assert len(queries.get_contents(store, "acme", hashes)) == len(set(hashes))
    assert queries.list_traces(ch_store, "other-tenant") == []


@pytest.mark.parametrize("which", ["embedded", "clickhouse"])
def test_repeated_insert_with_the_same_token_stores_once(store, ch_store, which) -> None:
    s = store if which == "embedded" else ch_store
    batch = _peer_batch()
    StoreWriter(s).write(batch, "k-1-4")
    StoreWriter(s).write(batch, "k-1-4")  # a fresh writer: nothing cached, the token alone dedups
    assert s.query_scalar("SELECT count() FROM spans") == batch.span_count
    assert s.query_scalar("SELECT count() FROM contents") == batch.contents.num_rows
    StoreWriter(s).write(batch, "k-5-8")  # redelivered under a new token: FINAL still counts once
    assert s.query_scalar("SELECT count() FROM spans FINAL") == batch.span_count


def test_clickhouse_store_errors_are_translated(ch_store, endpoint) -> None:
    with pytest.raises(StoreRejected, match="UNKNOWN_TABLE|Unknown table"):
        ch_store.query_rows("SELECT * FROM no_such_table")
    endpoint.set_available(False)
    try:
        assert ch_store.ping() is False
        with pytest.raises(StoreUnavailable):
            ch_store.command("CREATE TABLE IF NOT EXISTS x (a UInt8) ENGINE = MergeTree ORDER BY a")
    finally:
        endpoint.set_available(True)
    assert ch_store.ping() is True


def test_embedded_server_on_a_clickhouse_connect_store(ch_store) -> None:
    """The whole spine with clickhouse-connect as the store: OTLP exporter -> collector -> ClickHouse."""
    with EmbeddedServer(CollectorSettings(no_auth=True, port=0), store=ch_store) as srv:
        provider = TracerProvider()
        provider.add_span_processor(
            BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{srv.url}/v1/traces"))
        )
        tracer = provider.get_tracer("t")
        for i in range(25):
            with tracer.start_as_current_span(
                f"op-{i}",
                attributes={
                    "gen_ai.operation.name": "chat",
                    "gen_ai.request.model": "gpt-4o-mini",
                    "gen_ai.usage.input_tokens": i,
                },
            ):
                pass
        assert provider.force_flush(10_000)
        provider.shutdown()
        # acknowledged means stored: no waiting
        assert ch_store.query_scalar("SELECT count() FROM spans") == 25
        assert ch_store.query_scalar("SELECT sum(input_tokens) FROM spans") == sum(range(25))


@pytest.mark.parametrize("which", ["embedded", "clickhouse"])
def test_parameters_round_trip_any_text(store, ch_store, which) -> None:
    s = store if which == "embedded" else ch_store
    tricky = "line1\nline2\ttab \\ back 'quote' \"dq\" ünï {brace}"
    assert s.query_scalar("SELECT {v:String}", {"v": tricky}) == tricky
    assert s.query_scalar("SELECT {v:Array(String)}", {"v": [tricky, "x"]}) == [tricky, "x"]


def test_the_writer_remembers_stored_contents_in_two_generations(store) -> None:
    """Contents stored once are not inserted again; the memory is bounded, and what stays in use stays."""
    batch = _peer_batch()
    keys = list(
        zip(batch.contents.column("tenant").to_pylist(), batch.contents.column("hash").to_pylist())
    )
    distinct = list(dict.fromkeys(keys))
    writer = StoreWriter(
        store, seen_capacity=2 * len(distinct)
    )  # one generation holds exactly this batch
    inserted: list[int] = []
    original = store.insert_arrow

    def counting(table, data, **kwargs):
        if table == "contents":
            inserted.append(data.num_rows)
        return original(table, data, **kwargs)

    store.insert_arrow = counting
    try:
        writer.write(batch, "w-0-3")
        assert all(writer.seen(t, h) for t, h in distinct)
        writer.write(batch, "w-4-7")  # every content record remembered: no contents insert at all
        assert inserted == [batch.contents.num_rows]
        # the first batch filled a generation (now the old one); found there, its records are still known
        assert all(writer.seen(t, h) for t, h in distinct)
        assert not writer.seen("acme", "0" * 64)
    finally:
        store.insert_arrow = original
    assert store.query_scalar("SELECT count() FROM contents FINAL") == len(distinct)
