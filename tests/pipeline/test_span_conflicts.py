"""Insert-only span history: a re-sent span never replaces the stored one.

An identical re-send is stored once (even ``count()`` without ``FINAL`` sees one row); a re-send
with the same ids but other content leaves the first version as every read returns it, is kept
in ``span_conflicts`` with the stored version's row hash, and the embedded collector's answer
says so through OTLP partial success (protobuf and JSON). The same holds inside one batch
(first wins), for the writer's own retries (ledger still verifies), on a ClickHouse server (the
store that cannot read an in-memory batch) and on the Kafka path.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from typing import Any

import httpx
import pyarrow as pa
import pytest
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from agentledger.pipeline.derive.ledger import ROW_HASH_SQL, verify
from agentledger.pipeline.normalize import OtlpNormalizer, SourcePosition
from agentledger.pipeline.store.span_history import CONFLICTS_TABLE
from agentledger.pipeline.store.writer import StoreWriter
from agentledger.schemas import SPAN_COLUMN_NAMES
from tests.kafka.conftest import kafka_bootstrap, kafka_settings, pipeline_settings  # noqa: F401
from tests.pipeline.test_normalizer import _request

PB = {"Content-Type": "application/x-protobuf"}
TRACE = "01" * 16
SPAN = "02" * 8


def _span(output: str, *, name: str = "chat", span_id: bytes = b"\x02" * 8) -> Any:
    req = _request(
        {"gen_ai.system": "openai", "gen_ai.request.model": "gpt-4o", "out": output}, name=name
    )
    req.resource_spans[0].scope_spans[0].spans[0].span_id = span_id
    return req


def _twice(first: ExportTraceServiceRequest, second: ExportTraceServiceRequest) -> Any:
    """One request holding the spans of both."""
    req = ExportTraceServiceRequest()
    req.CopyFrom(first)
    req.resource_spans[0].scope_spans[0].spans.append(
        second.resource_spans[0].scope_spans[0].spans[0]
    )
    return req


def _post(url: str, req: ExportTraceServiceRequest, media: str) -> ExportTraceServiceResponse:
    if media == "json":
        body = json.loads(json_format.MessageToJson(req))
        for rs in body["resourceSpans"]:  # OTLP/JSON ids are hex
            for ss in rs["scopeSpans"]:
                for s in ss["spans"]:
                    for k in ("traceId", "spanId"):
                        s[k] = base64.b64decode(s[k]).hex()
        resp = httpx.post(f"{url}/v1/traces", json=body, timeout=30)
        assert resp.status_code == 200, resp.text
        return json_format.Parse(resp.content, ExportTraceServiceResponse())
    resp = httpx.post(f"{url}/v1/traces", content=req.SerializeToString(), headers=PB, timeout=30)
    assert resp.status_code == 200, resp.content
    return ExportTraceServiceResponse.FromString(resp.content)


def _out(row: dict[str, Any]) -> str:
    return dict(row["attributes"])["out"]


def _batch(req: ExportTraceServiceRequest, offset: int, topic: str = "test") -> Any:
    return OtlpNormalizer().normalize(
        [(req, SourcePosition("default", time.time_ns(), topic, 0, offset))]
    )


# -- the embedded collector: what the client is told, what every read returns --------------------


@pytest.mark.parametrize("media", ["protobuf", "json"])
def test_changed_resend_keeps_the_first_and_says_so(server, store, media: str) -> None:
    first = _post(server.url, _span("first answer"), media)
    assert not first.HasField("partial_success")
    again = _post(server.url, _span("first answer"), media)  # identical: idempotent
    assert not again.HasField("partial_success")
    changed = _post(server.url, _span("rewritten answer"), media)
    assert changed.partial_success.rejected_spans == 1
    assert f"{TRACE}/{SPAN}" in changed.partial_success.error_message
    assert "stored versions stand" in changed.partial_success.error_message

    assert store.query_scalar("SELECT count() FROM spans") == 1  # without FINAL: one row
    assert [_out(r) for r in store.query_rows("SELECT attributes FROM spans FINAL")] == [
        "first answer"
    ]
    detail = httpx.get(f"{server.url}/api/v1/traces/{TRACE}", timeout=30).json()
    assert [s["attributes"]["out"] for s in detail["spans"]] == ["first answer"]
    listed = httpx.get(f"{server.url}/api/v1/traces", timeout=30).json()
    assert [t["span_count"] for t in listed] == [1]

    conflicts = store.query_rows(f"SELECT *, {ROW_HASH_SQL} AS own_hash FROM {CONFLICTS_TABLE}")
    assert len(conflicts) == 1
    (conflict,) = conflicts
    assert (conflict["trace_id"], conflict["span_id"]) == (TRACE, SPAN)
    assert _out(conflict) == "rewritten answer"
    stored_hash = store.query_scalar(f"SELECT {ROW_HASH_SQL} FROM spans")
    assert conflict["stored_hash"] == stored_hash != conflict["own_hash"]
    assert conflict["source_offset"] == 3  # the third request's sequence number
    assert verify(store, "default").ok


def test_partial_success_adds_to_invalid_spans_and_names_only_its_own(server, store) -> None:
    _post(server.url, _span("v1"), "protobuf")
    req = _twice(_span("v2"), _span("new", span_id=b"\x03" * 8))
    bad = req.resource_spans[0].scope_spans[0].spans.add()
    bad.trace_id, bad.span_id, bad.name = b"\x01" * 16, b"", "no span id"
    answer = _post(server.url, req, "protobuf")
    assert answer.partial_success.rejected_spans == 2  # the invalid one and the conflict
    assert "invalid span_id" in answer.partial_success.error_message
    assert f"{TRACE}/{SPAN}" in answer.partial_success.error_message
    assert "03" * 8 not in answer.partial_success.error_message
    assert store.query_scalar("SELECT count() FROM spans") == 2


def test_concurrent_changed_resends_store_one_version(server, store) -> None:
    """Many handlers at once, each with its own version of one span: exactly one is stored,
    every other is a conflict, and exactly one client is told nothing was rejected."""
    answers: list[ExportTraceServiceResponse] = []

    def send(i: int) -> None:
        answers.append(_post(server.url, _span(f"version {i}"), "protobuf"))

    threads = [threading.Thread(target=send, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(answers) == 8
    assert sorted(a.partial_success.rejected_spans for a in answers) == [0] + [1] * 7
    assert store.query_scalar("SELECT count() FROM spans") == 1
    assert store.query_scalar(f"SELECT count() FROM {CONFLICTS_TABLE}") == 7
    kept = _out(store.query_rows("SELECT attributes FROM spans")[0])
    conflicting = {_out(r) for r in store.query_rows(f"SELECT attributes FROM {CONFLICTS_TABLE}")}
    assert kept not in conflicting and len(conflicting) == 7


# -- the store writer ------------------------------------------------------------------------------


def test_same_ids_in_one_batch_first_wins(store) -> None:
    writer = StoreWriter(store)
    req = _twice(_span("first"), _span("second"))
    result = writer.write(_batch(req, 1), "b-1")
    assert (result.inserted, result.unchanged, len(result.conflict_ids)) == (1, 0, 1)
    assert _out(store.query_rows("SELECT attributes FROM spans")[0]) == "first"
    (conflict,) = store.query_rows(f"SELECT attributes, stored_hash FROM {CONFLICTS_TABLE}")
    assert _out(conflict) == "second"
    assert conflict["stored_hash"] == store.query_scalar(f"SELECT {ROW_HASH_SQL} FROM spans")

    same = _span("same", span_id=b"\x07" * 8)
    result = writer.write(_batch(_twice(same, same), 2), "b-2")
    assert (result.inserted, result.unchanged, result.conflict_ids) == (1, 1, [])
    assert store.query_scalar("SELECT count() FROM spans") == 2


def test_threads_sharing_a_writer_store_one_version(store) -> None:
    """The lookup and the insert are one step per writer: threads writing versions of one span
    through one writer at once store exactly one; the rest are conflicts."""
    writer = StoreWriter(store)
    batches = [_batch(_span(f"v{i}"), i) for i in range(6)]
    results: list[Any] = []
    start = threading.Barrier(len(batches))

    def write(i: int) -> None:
        start.wait()
        results.append(writer.write(batches[i], f"c-{i}"))

    threads = [threading.Thread(target=write, args=(i,)) for i in range(len(batches))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(r.inserted for r in results) == [0] * 5 + [1]
    assert sum(len(r.conflict_ids) for r in results) == 5
    assert store.query_scalar("SELECT count() FROM spans") == 1
    assert store.query_scalar(f"SELECT count() FROM {CONFLICTS_TABLE}") == 5


def test_retried_write_is_checkpointed_and_stored_once(store) -> None:
    """The writer's own retry (same rows, same positions, fresh writer after a crash, another
    token after a Kafka re-batch) stores nothing twice and the ledger still covers every row."""
    batch = _batch(_twice(_span("a"), _span("b", span_id=b"\x05" * 8)), 7)
    assert StoreWriter(store).write(batch, "r-1").inserted == 2
    again = StoreWriter(store).write(batch, "r-1b")
    assert (again.inserted, again.unchanged, again.conflict_ids) == (0, 0, [])
    assert store.query_scalar("SELECT count() FROM spans") == 2
    report = verify(store, "default")
    assert report.ok, report.as_dict()
    assert report.checkpoints == 2


def test_keys_come_from_span_keys_and_older_spans_are_backfilled(store) -> None:
    """The lookup reads ``span_keys`` (0012); spans stored before it get their keys from the
    migration's data step, and a key left without its span (a crash between) counts as free."""
    from agentledger.pipeline.store.span_history import KEYS_TABLE, backfill_span_keys

    writer = StoreWriter(store)
    writer.write(_batch(_span("first"), 1), "k-1")
    assert store.query_scalar(f"SELECT count() FROM {KEYS_TABLE}") == 1
    store.command(f"TRUNCATE TABLE {KEYS_TABLE}")  # as before migration 0012
    backfill_span_keys(store)
    backfill_span_keys(store)  # safe twice
    assert store.query_scalar(f"SELECT count() FROM {KEYS_TABLE} FINAL") == 1
    changed = writer.write(_batch(_span("changed"), 2), "k-2")
    assert (changed.inserted, len(changed.conflict_ids)) == (0, 1)

    orphan = _span("orphan", span_id=b"\x09" * 8)  # its key stored, the span never was
    keys = _batch(orphan, 3).spans.select(["tenant", "trace_id", "span_id"])
    store.insert_arrow(KEYS_TABLE, keys)
    stored = writer.write(_batch(orphan, 3), "k-3")
    assert (stored.inserted, stored.conflict_ids) == (1, [])
    assert store.query_scalar("SELECT count() FROM spans") == 2


def test_conflicts_table_has_every_span_column(store) -> None:
    """A migration that adds a column to spans must add it to span_conflicts too."""
    columns = [
        r["name"]
        for r in store.query_rows(
            "SELECT name FROM system.columns WHERE database = currentDatabase() "
            f"AND table = '{CONFLICTS_TABLE}' ORDER BY position"
        )
    ]
    assert columns == [*SPAN_COLUMN_NAMES, "stored_hash", "detected_at", "sent_by"]


def test_on_a_clickhouse_server(ch_store) -> None:
    """clickhouse-connect (the store that cannot read an in-memory batch): the same outcome."""
    writer = StoreWriter(ch_store)
    assert writer.write(_batch(_span("first"), 1), "s-1").inserted == 1
    assert writer.write(_batch(_span("first"), 2), "s-2").unchanged == 1
    changed = writer.write(_batch(_span("second"), 3), "s-3")
    assert changed.conflict_ids == [f"{TRACE}/{SPAN}"]
    assert ch_store.query_scalar("SELECT count() FROM spans") == 1
    assert _out(ch_store.query_rows("SELECT attributes FROM spans")[0]) == "first"
    assert _out(ch_store.query_rows(f"SELECT attributes FROM {CONFLICTS_TABLE}")[0]) == "second"


# -- the Kafka path --------------------------------------------------------------------------------


def test_kafka_consumer_keeps_the_conflict(kafka_settings, pipeline_settings, store) -> None:  # noqa: F811
    from agentledger.pipeline.consumers.metrics import consumer_status, prometheus_text
    from agentledger.pipeline.consumers.spans import SpanConsumer
    from agentledger.pipeline.sinks import IngestBatch
    from agentledger.pipeline.sinks.kafka import KafkaSink
    from tests.kafka.test_kafka_path import RunningConsumer, wait_for

    sink = KafkaSink(kafka_settings)
    try:
        for output in ("first", "first", "second"):
            assert sink.write(IngestBatch("default", time.time_ns(), _span(output), 1)) is None
    finally:
        sink.close()
    consumer = SpanConsumer(kafka_settings, pipeline_settings, store, OtlpNormalizer())
    with RunningConsumer(consumer):
        wait_for(
            lambda: consumer.stats.spans + consumer.stats.unchanged + consumer.stats.conflicts >= 3,
            what="three records consumed",
        )
    assert (consumer.stats.spans, consumer.stats.unchanged, consumer.stats.conflicts) == (1, 1, 1)
    status = consumer_status(consumer.stats)
    assert "agentledger_pipeline_span_conflicts_total 1.0" in prometheus_text(status).splitlines()
    assert store.query_scalar("SELECT count() FROM spans") == 1
    assert _out(store.query_rows("SELECT attributes FROM spans")[0]) == "first"
    (conflict,) = store.query_rows(f"SELECT attributes, source_topic FROM {CONFLICTS_TABLE}")
    assert _out(conflict) == "second" and conflict["source_topic"] == kafka_settings.spans_topic
    assert verify(store, "default").ok


def test_a_sole_writer_skips_the_lookup_for_new_traces_only(store) -> None:
    """The embedded server's writer remembers the traces of its store: a batch of new traces is
    not looked up, a re-send of a trace written before (also before the writer started) is."""
    from agentledger.pipeline.store.span_history import KnownTraces

    StoreWriter(store).write(_batch(_span("before"), 1), "s-1")  # written by an earlier process
    writer = StoreWriter(store, sole_writer=True)
    known = writer._known
    assert isinstance(known, KnownTraces)
    fresh = _batch(_span("fresh", span_id=b"\x0a" * 8), 2)
    fresh = type(fresh)(
        fresh.spans.set_column(
            fresh.spans.schema.get_field_index("trace_id"),
            "trace_id",
            pa.array(["f" * 32] * fresh.spans.num_rows),
        ),
        fresh.contents,
    )
    assert known.new_only(store, fresh.spans)
    assert not known.new_only(store, _batch(_span("x"), 3).spans)  # the earlier process's trace
    assert writer.write(fresh, "s-2").inserted == 1
    assert not known.new_only(store, fresh.spans)  # now written
    changed = writer.write(_batch(_span("changed"), 4), "s-3")
    assert (changed.inserted, len(changed.conflict_ids)) == (0, 1)
