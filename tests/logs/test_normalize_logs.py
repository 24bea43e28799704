"""Log records to rows, and GenAI log events to canonical messages (in-process, the real engine)."""

from __future__ import annotations

import re
from pathlib import Path

from agentledger.pipeline.normalize import SourcePosition
from agentledger.pipeline.normalize.logs import LogEvent, genai_messages, normalize_logs
from agentledger.pipeline.services.span_logs import join_messages, span_logs
from agentledger.pipeline.sinks.logs import write_logs
from agentledger.schemas.logs import LOG_ARROW_SCHEMA, LOG_COLUMNS, LOGS_TABLE

PEERS = Path(__file__).resolve().parents[1] / "fixtures" / "peers"


def _norm(ch_type: str) -> str:
    return re.sub(r"\(\s+", "(", re.sub(r"\s+", " ", ch_type)).strip()


def test_the_ddl_and_the_arrow_schema_agree(store) -> None:
    described = [(r["name"], _norm(r["type"])) for r in store.query_rows(f"DESCRIBE {LOGS_TABLE}")]
    assert described == [(c.name, _norm(c.ch_type)) for c in LOG_COLUMNS]
    assert LOG_ARROW_SCHEMA.names == [c.name for c in LOG_COLUMNS]


def test_a_tool_using_run_becomes_the_messages_of_each_call(store) -> None:
    """The peer capture of a two-call tool-using run (tests/fixtures/peers): the second call's
    input carries the assistant's tool call and the tool's result, in order."""
    raw = (PEERS / "otel_genai.logs.otlp.pb").read_bytes()
    batch = normalize_logs([(raw, SourcePosition("acme", 1, "embedded", 0, 7), "key-1")])
    write_logs(store, batch, "test-1")
    write_logs(store, batch, "test-1")  # a retried write: stored once
    assert store.query_scalar("SELECT count() FROM logs") == batch.count == 8
    rows = batch.logs.to_pylist()
    trace_id = rows[0]["trace_id"]
    logs = span_logs(store, "acme", [trace_id])
    assert sorted(len(v) for v in logs.values()) == [3, 5]
    first, second = sorted(logs, key=lambda s: len(logs[s]))
    spans = [
        {"span_id": s, "kind": "LLM", "input_hash": "", "output_hash": "", "output_preview": ""}
        for s in (first, second)
    ]
    made = join_messages(spans, logs, lambda hashes: {})
    assert spans[0]["output_preview"] == "" and spans[1]["output_preview"].startswith("APPROVE")
    stored = {r["hash"] for r in batch.contents.to_pylist()}
    assert set(made) <= stored  # the hashes the read side makes resolve in contents
    second_input = made[spans[1]["input_hash"]]["content"]
    assert second_input == (
        '[{"content":"You are a finance-controls agent.","role":"system"},'
        '{"content":"Should we approve the $4M reclassification JE-4471?","role":"user"},'
        '{"role":"assistant","tool_calls":[{"arguments":{"entry_id":"JE-4471"},'
        '"id":"call_JE4471lookup01","name":"lookup_journal_entry"}]},'
        '{"content":"{\\"entry_id\\":\\"JE-4471\\",\\"amount\\":4000000,\\"currency\\":\\"USD\\"}",'
        '"role":"tool","tool_call_id":"call_JE4471lookup01"}]'
    )
    first_output = made[spans[0]["output_hash"]]["content"]
    assert '"tool_calls"' in first_output and "lookup_journal_entry" in first_output


def test_messages_from_events_without_content_are_none_and_details_win() -> None:
    """Content capture off: the events carry roles only, so the call records no messages."""
    bare = [LogEvent("gen_ai.user.message", {}, {}), LogEvent("gen_ai.choice", {"index": 0}, {})]
    assert genai_messages(bare) == (None, None)
    details = LogEvent(
        "gen_ai.client.inference.operation.details",
        None,
        {
            "gen_ai.system_instructions": '[{"type": "text", "content": "Be brief."}]',
            "gen_ai.input.messages": '[{"role": "user", "parts": [{"type": "text", "content": "hi"}]}]',
            "gen_ai.output.messages": [
                {"role": "assistant", "parts": [{"type": "text", "content": "yo"}]}
            ],
        },
    )
    inputs, outputs = genai_messages(
        [LogEvent("gen_ai.user.message", {"content": "x"}, {}), details]
    )
    assert inputs == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]
    assert outputs == [{"role": "assistant", "content": "yo"}]


def test_large_bodies_and_attributes_are_stored_by_hash(store) -> None:
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

    request = ExportLogsServiceRequest()
    record = request.resource_logs.add().scope_logs.add().log_records.add()
    record.trace_id, record.span_id = b"\x01" * 16, b"\x02" * 8
    record.event_name = "gen_ai.user.message"
    kv = record.body.kvlist_value.values.add()
    kv.key, kv.value.string_value = "content", "q" * 2000
    attr = record.attributes.add()
    attr.key, attr.value.string_value = "big", "a" * 2000
    batch = normalize_logs([(request, SourcePosition("acme", 5, "embedded"), "")])
    (row,) = batch.logs.to_pylist()
    assert row["body"] == "" and row["body_hash"] and dict(row["attribute_refs"])["big"]
    write_logs(store, batch, "t-big")
    logs = span_logs(store, "acme", ["01" * 16])
    span = {"span_id": "02" * 8, "input_hash": "", "output_hash": "x", "input_preview": ""}

    def fetch(hashes):
        found = store.query_rows(
            "SELECT hash, kind, content FROM contents WHERE hash IN {h:Array(String)}",
            {"h": list(hashes)},
        )
        return {r["hash"]: r for r in found}

    made = join_messages([span], logs, fetch)
    assert made[span["input_hash"]]["content"] == '[{"content":"' + "q" * 2000 + '","role":"user"}]'
    assert span["input_preview"] == "q" * 200
