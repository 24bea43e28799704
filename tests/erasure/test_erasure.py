"""Erasure of a data subject (GDPR art. 17): no table holds its text afterwards, the ledger still
verifies (the erasure is a leaf that covers the erased hashes), a deletion with no erasure record
is still tampering, and an audit of the subject's trace says where the text was erased."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path

import pytest

from agentledger.pipeline.services.audit import audit, render
from agentledger.pipeline.services.erasure import erase, parse_subject
from agentledger.pipeline.services.erasure.service import erasure_key
from agentledger.schemas.records import Actor
from tests.erasure.conftest import RUNS, TENANT, Recorded, marker, tables_holding


def test_before_the_erasure_the_text_is_in_every_kind_of_place(recorded: Recorded) -> None:
    hits = tables_holding(recorded.store, marker(1))
    assert {"spans", "contents", "logs"} <= set(hits), hits
    files = [p for p in recorded.dataset_dir.rglob("*") if p.is_file()]
    assert any(marker(1) in p.read_text(errors="replace") for p in files)


def test_an_erased_subject_leaves_no_text_and_verify_stays_ok(recorded: Recorded) -> None:
    store = recorded.store
    assert recorded.verify().ok
    result = erase(store, TENANT, parse_subject("user.id=u-1"), "GDPR art. 17 #12", actor="dpo")
    assert result.erased_by == "dpo" and result.subject_attribute == "user.id"
    assert result.spans == 5 and result.contents >= 5 and result.logs == 2
    assert result.shared_kept >= 1  # the system prompt every run shares is not u-1's
    assert result.dataset_files and all("examples removed" in f for f in result.dataset_files)
    dataset = "".join(p.read_text() for p in recorded.dataset_dir.rglob("*.jsonl"))
    assert marker(1) not in dataset, "the exported examples of u-1's spans are gone"
    assert all(marker(other) in dataset for other in (0, 2, 3)), "the others' examples stay"
    assert tables_holding(store, marker(1)) == {}, "no table holds the erased text"
    for other in (0, 2, 3):  # other subjects keep theirs
        assert {"spans", "contents", "logs"} <= set(tables_holding(store, marker(other)))
    # the record is there before the appender's next pass, and after it
    report = recorded.verify()
    assert report.ok and report.pending == 1, report.as_dict()
    recorded.append()
    report = recorded.verify()
    assert report.ok and report.pending == 0, report.as_dict()
    stored = store.query_rows(
        "SELECT actor, reason, contents, content_sha256, subject_sha256 FROM erasures_v "
        "WHERE tenant = {t:String}",
        {"t": TENANT},
    )
    assert stored == [
        {
            "actor": "dpo",
            "reason": "GDPR art. 17 #12",
            "contents": result.contents,
            "content_sha256": result.content_sha256,
            "subject_sha256": result.subject_sha256,
        }
    ]
    assert "u-1" not in json.dumps(stored)
    # keyed: the leaf does not confirm a guess of the id, the store's key does
    key = erasure_key(store, TENANT)
    assert result.subject_sha256 != hashlib.sha256(b"u-1").hexdigest()
    assert result.subject_sha256 == hmac.new(key, b"u-1", hashlib.sha256).hexdigest()


def test_the_erasure_leaf_lists_the_erased_hashes(recorded: Recorded) -> None:
    from agentledger.pipeline.derive import tlog_store as S
    from agentledger.schemas.ledger import LeafKind, parse_canonical_record

    result = erase(recorded.store, TENANT, parse_subject("session.id=s-2"), "asked", actor="dpo")
    recorded.append()
    ((_, canonical),) = S.stored_record(recorded.store, TENANT, "erasure", result.erasure_id)
    leaf = parse_canonical_record(canonical)
    assert leaf.kind is LeafKind.ERASURE and leaf.actor == "dpo"
    assert list(leaf.content_sha256) == result.content_sha256
    assert set(leaf.body) == {
        "erasure_id",
        "subject_attribute",
        "subject_sha256",
        "reason",
        "contents",
    }


def test_a_deletion_without_an_erasure_record_is_still_tampering(recorded: Recorded) -> None:
    store = recorded.store
    erase(store, TENANT, parse_subject("user.id=u-1"), "asked", actor="dpo")
    recorded.append()
    kept = store.query_scalar(
        "SELECT input_hash FROM spans WHERE trace_id = {t:String} AND kind = 'LLM' LIMIT 1",
        {"t": recorded.traces[2]},
    )
    store.command(
        "ALTER TABLE contents DELETE WHERE hash = {h:String} SETTINGS mutations_sync = 2",
        {"h": kept},
    )
    report = recorded.verify()
    assert set(report.counts) == {"content_missing"}, report.as_dict()
    assert all(kept in p.detail for p in report.problems)
    # and a span deleted with no retention record is a deleted leaf
    store.command(
        "ALTER TABLE spans DELETE WHERE trace_id = {t:String} SETTINGS mutations_sync = 2",
        {"t": recorded.traces[3]},
    )
    assert recorded.verify().counts.get("deleted") == 5


def test_an_audit_of_an_erased_trace_says_erased_on_by(recorded: Recorded) -> None:
    store = recorded.store
    result = erase(store, TENANT, parse_subject("user.id=u-1"), "asked", actor="dpo")
    found = audit(store, TENANT, recorded.traces[1])
    mark = f"erased on {result.erased_at[:10]} by dpo"
    as_json = json.dumps(found)
    assert mark in as_json and marker(1) not in as_json
    action = found["actions"][0]
    assert action["integrity"]["missing"] == [] and action["integrity"]["changed"] == []
    assert set(action["integrity"]["erased"]) <= set(result.content_sha256)
    assert action["integrity"]["erased"]
    assert mark in render.to_markdown(found) and mark in render.to_html(found)
    untouched = json.dumps(audit(store, TENANT, recorded.traces[2]))
    assert "erased on" not in untouched and marker(2) in untouched


@pytest.mark.parametrize(
    ("subject", "reason", "says"),
    [
        ("email=a@b.c", "asked", "unknown subject key 'email'"),
        ("user.id", "asked", "KEY=VALUE"),
        ("user.id=", "asked", "needs a value"),
        ("user.id=u-1", "   ", "needs a reason"),
    ],
)
def test_bad_input_is_refused_before_anything_is_erased(
    recorded: Recorded, subject: str, reason: str, says: str
) -> None:
    with pytest.raises(ValueError, match=says):
        erase(recorded.store, TENANT, parse_subject(subject), reason, actor=Actor.CLI)
    assert {"spans", "contents"} <= set(tables_holding(recorded.store, marker(1)))
    assert recorded.store.query_scalar("SELECT count() FROM erasures_v") == 0


def test_every_run_is_recorded(recorded: Recorded) -> None:
    assert len(recorded.traces) == RUNS


def test_a_clickhouse_server_store_awaits_the_same_erasure(ch_store) -> None:
    from tests.erasure.conftest import ingest, log_event

    traces = ingest(ch_store, range(2))
    span_id = ch_store.query_scalar(
        "SELECT span_id FROM spans WHERE trace_id = {t:String} AND kind = 'LLM' LIMIT 1",
        {"t": traces[1]},
    )
    log_event(ch_store, traces[1], span_id, f"logged {marker(1)} prompt")
    assert {"spans", "contents", "logs"} <= set(tables_holding(ch_store, marker(1)))
    result = erase(ch_store, TENANT, parse_subject("user.id=u-1"), "asked", actor="dpo")
    assert result.contents > 0 and result.logs == 2
    assert tables_holding(ch_store, marker(1)) == {}  # the mutations were awaited
    assert {"spans", "contents"} <= set(tables_holding(ch_store, marker(0)))  # u-0 keeps it


def test_a_dataset_file_that_cannot_be_scrubbed_line_by_line_is_deleted(tmp_path: Path) -> None:
    from agentledger.pipeline.services.erasure.datasets import DatasetScrub

    lines = [b'{"a": "keep"}\n', b'{"a": "erase me"}\n']
    jsonl = tmp_path / "train.jsonl"
    jsonl.write_bytes(b"".join(lines))
    gone = hashlib.sha256(lines[1]).hexdigest()
    assert DatasetScrub(jsonl, frozenset({gone})).apply() == f"{jsonl} (1 examples removed)"
    assert jsonl.read_bytes() == lines[0]
    # a hash that names no line (a trajectory is named by its content): the file goes
    assert DatasetScrub(jsonl, frozenset({"0" * 64})).apply() == f"{jsonl} (deleted)"
    assert not jsonl.exists()
    parquet = tmp_path / "train.parquet"
    parquet.write_bytes(b"PAR1")
    assert DatasetScrub(parquet, frozenset({gone})).apply() == f"{parquet} (deleted)"
    assert not parquet.exists()


def test_after_an_erasure_an_update_and_a_truncation_are_still_reported(recorded: Recorded) -> None:
    store = recorded.store
    erase(store, TENANT, parse_subject("user.id=u-1"), "asked", actor="dpo")
    recorded.append()
    assert recorded.verify().ok
    store.command(
        "ALTER TABLE spans UPDATE input_tokens = 1 WHERE trace_id = {t:String} AND kind = 'LLM' "
        "SETTINGS mutations_sync = 2",
        {"t": recorded.traces[1]},  # the erased subject's own spans are still guarded
    )
    assert recorded.verify().counts == {"updated": 2}
    count = int(store.query_scalar("SELECT count() FROM ledger_leaves WHERE tenant = 'acme'"))
    store.command(
        "ALTER TABLE ledger_leaves DELETE WHERE leaf_index >= {n:UInt64} "
        "SETTINGS mutations_sync = 2",
        {"n": count - 1},  # the newest leaf, signed and witnessed
    )
    assert "truncated" in recorded.verify().counts
