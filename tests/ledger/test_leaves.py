"""Ledger leaves: the golden fixtures, the canonical form's strictness, and each kind's builder."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import pytest

from agentledger.schemas import ledger as L
from agentledger.schemas.canonical import canonical_json
from agentledger.schemas.records import BODY_FIELDS, ID_FIELDS, RecordKind, make_record

CASES = L.fixtures()


def test_the_fixtures_cover_every_leaf_kind() -> None:
    assert {c["record"]["kind"] for c in CASES} == {k.value for k in L.LeafKind}


def test_every_record_log_kind_is_a_leaf_kind() -> None:
    assert {k.value for k in RecordKind} <= {k.value for k in L.LeafKind}


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_golden_record_gives_the_exact_bytes_and_leaf_hash(case: dict[str, object]) -> None:
    record = L.LedgerRecord.from_json(case["record"])
    canonical = L.canonical_record(record)
    assert canonical == str(case["canonical"]).encode("utf-8")
    # the leaf hash as anyone computes it, without our code
    assert hashlib.sha256(b"\x00" + canonical).hexdigest() == case["leaf_hash"]
    assert L.leaf_hash(canonical).hex() == case["leaf_hash"]
    assert L.parse_canonical_record(canonical) == record


def test_rfc6962_leaf_hash_vectors() -> None:
    # transparency-dev/merkle rfc6962_test.go: the empty leaf and "L123456"
    assert L.leaf_hash(b"").hex() == (
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
    )
    assert L.leaf_hash(b"L123456").hex() == (
        "395aa064aa4c29f7010acfe3f25db9485bbd4b91897b6ad7ad547639252b4d56"
    )


def _one() -> bytes:
    return str(CASES[0]["canonical"]).encode()


@pytest.mark.parametrize(
    ("mangle", "reason"),
    [
        (lambda b: b.replace(b'{"actor"', b'{ "actor"'), "canonical"),
        (lambda b: b.replace(b'"v":1}', b'"v":1,"x":0}'), "exactly"),
        (lambda b: b.replace(b'"v":1}', b'"v":2}'), "version"),
        (lambda b: b.replace(b'"kind":"span"', b'"kind":"spam"'), "kind"),
        (lambda b: b.replace(b'.123456Z"', b'.123Z"'), "time"),
        (lambda b: b[:-1], "JSON"),
        (lambda b: b"\xff" + b, "JSON"),
    ],
)
def test_a_record_not_in_exactly_the_canonical_form_is_refused(mangle, reason: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=reason):
        L.parse_canonical_record(mangle(_one()))


def test_content_hashes_must_be_sorted_and_unique() -> None:
    record = L.LedgerRecord.from_json(CASES[0]["record"])
    hashes = record.content_sha256
    with pytest.raises(ValueError, match="sorted"):
        dataclasses.replace(record, content_sha256=tuple(reversed(hashes)))
    with pytest.raises(ValueError, match="sorted"):
        dataclasses.replace(record, content_sha256=(hashes[0], hashes[0]))
    with pytest.raises(ValueError, match="hex"):
        dataclasses.replace(record, content_sha256=(hashes[0].upper(),))


def test_a_span_leaf_lists_what_it_references_and_leaves_text_and_transport_out() -> None:
    row = {
        "trace_id": "ab" * 16,
        "span_id": "cd" * 8,
        "start_time": 1_700_000_000_123_456_789,
        "end_time": 1_700_000_001_000_000_000,
        "input_hash": "1" * 64,
        "output_hash": "2" * 64,
        "documents": [{"id": "d", "content_hash": "3" * 64, "score": float("nan")}],
        "tool_calls": [("c", "pay", "4" * 64)],
        "attribute_refs": {"big": "5" * 64},
        "input_preview": "secret text",
        "source_offset": 17,
        "cost_usd": 0.5,
        "sent_by": "key-a",
    }
    record = L.span_record("acme", row)
    assert record.content_sha256 == tuple(c * 64 for c in "12345")
    assert record.time == "2023-11-14T22:13:20.123456Z"
    assert record.body["start_time"] == "2023-11-14T22:13:20.123456789Z"
    assert record.actor == "key-a" and record.id == "cd" * 8
    text = L.canonical_record(record).decode()
    assert "secret text" not in text and "source_offset" not in text and "cost" not in text
    assert list(record.body) == [f.name for f in L.SPAN_BODY_FIELDS]
    # re-delivery (another offset, ingest time, price) is the same leaf
    again = L.span_record("acme", {**row, "source_offset": 99, "cost_usd": 1.0})
    assert L.canonical_record(again) == L.canonical_record(record)


def test_a_record_log_leaf_embeds_the_body_whose_hash_the_record_carries() -> None:
    fields = {c.name: "" for c in BODY_FIELDS[RecordKind.ACCESS]}
    fields.update(
        {
            "access_id": "a" * 32,
            "accessed_at": 1_700_000_000_000_000_000,
            "object_ids": ["t1"],
            "rows": 3,
        }
    )
    record = make_record(RecordKind.ACCESS, "acme", fields, actor="key-r", recorded_at_ns=5_000)
    leaf = L.from_record(record)
    assert leaf.kind is L.LeafKind.ACCESS and leaf.id == record.record_id == "a" * 32
    assert leaf.time == "1970-01-01T00:00:00.000005Z"
    parsed = json.loads(L.canonical_record(leaf))
    body_text = canonical_json(parsed["body"])
    assert hashlib.sha256(body_text.encode()).hexdigest() == record.body_sha256
    assert ID_FIELDS[RecordKind.ACCESS] in parsed["body"]


def test_the_origin_names_the_tenant() -> None:
    assert L.origin("acme") == "agentledger/acme"


def test_span_times_may_come_as_text_with_six_or_nine_digits() -> None:
    base = {"trace_id": "ab" * 16, "span_id": "cd" * 8}
    nine = L.span_record(
        "t", {**base, "start_time": "2026-01-02T03:04:05.123456789Z", "end_time": 0}
    )
    assert nine.time == "2026-01-02T03:04:05.123456Z"
    assert nine.body["start_time"] == "2026-01-02T03:04:05.123456789Z"
    assert nine.body["end_time"] == "1970-01-01T00:00:00.000000000Z"
    six = L.span_record("t", {**base, "start_time": "2026-01-02T03:04:05.123456Z", "end_time": 0})
    assert six.body["start_time"] == "2026-01-02T03:04:05.123456000Z"
    with pytest.raises(ValueError, match="time"):
        L.span_record("t", {**base, "start_time": "yesterday", "end_time": 0})


def _h(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_the_builders_give_the_golden_span_and_content_records() -> None:
    """The span body definition is pinned: this normalized row is the golden span leaf."""
    t0 = 1_796_000_000_123_456_000
    row = {
        "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
        "span_id": "00f067aa0ba902b7",
        "parent_span_id": "",
        "start_time": t0 + 789,
        "end_time": t0 + 1_500_000_789,
        "name": "chat gpt-4o",
        "kind": "LLM",
        "status_code": "OK",
        "service": "finance-agent",
        "agent_name": "controller",
        "session_id": "s-1",
        "user_id": "u-42",
        "principal_id": "controller@acme.example",
        "principal_chain": ["cfo@acme.example", "controller@acme.example"],
        "policy_id": "payments-v3",
        "provider": "openai",
        "operation": "chat",
        "request_model": "gpt-4o",
        "response_model": "gpt-4o-2024-08-06",
        "system_fingerprint": "fp_1",
        "input_tokens": 812,
        "output_tokens": 64,
        "tool_name": "",
        "tool_call_id": "",
        "tool_calls": [("call_1", "approve_payment", _h("args"))],
        "finish_reasons": ["tool_calls"],
        "input_hash": _h("input"),
        "output_hash": _h("output"),
        "system_prompt_hash": _h("system"),
        "tools_hash": _h("tools"),
        "request_hash": _h("request"),
        "raw_request_hash": "",
        "documents": [("doc-7", _h("doc7"), 0.9)],
        "attribute_refs": {"llm.big": _h("big")},
        "convention": "openinference",
        "sent_by": "key-ingest",
        "cost_usd": 0.01,
        "input_preview": "never in the leaf",
    }
    golden = {c["name"]: L.LedgerRecord.from_json(c["record"]) for c in CASES}
    assert L.span_record("acme", row) == golden["span"]
    content = L.content_record("acme", _h("input"), "messages", 1234, t0, actor="key-ingest")
    assert content == golden["content"]
