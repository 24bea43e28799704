"""The record log's contract: canonical bodies whose hash anyone can recompute, one insert-only
table that nothing replaces or collapses, and typed views that agree with ``BODY_FIELDS``."""

from __future__ import annotations

import hashlib
import re
from datetime import datetime, timezone
from pathlib import Path

import pytest

from agentledger.pipeline.store import load_migrations
from agentledger.pipeline.store.migrate import render_for_cluster
from agentledger.schemas.canonical import canonicalize
from agentledger.schemas.records import (
    BODY_FIELDS,
    ENVELOPE_VIEW_COLUMNS,
    ID_FIELDS,
    LATEST_FEEDBACK_VIEW,
    RECORD_COLUMNS,
    RECORDS_TABLE,
    VIEWS,
    Record,
    RecordKind,
    from_rfc3339,
    make_record,
    rfc3339,
)

ROOT = Path(__file__).resolve().parents[2]


def _control(**changes: object) -> dict[str, object]:
    fields: dict[str, object] = {
        "control_id": "c" * 32,
        "created_at": 1_767_323_045_123_456_789,
        "action": "pause",
        "scope": "session",
        "target": 's-1 é 🧾 \u2028 "quoted" \\ \n',
        "by": "alice",
        "reason": "limit breach",
    }
    fields.update(changes)
    return fields


def test_the_body_hash_recomputes_from_the_canonical_body() -> None:
    record = make_record(RecordKind.CONTROL, "acme", _control(), actor="key:0123456789ab")
    assert record.body.encode() == canonicalize(record.body)  # the body is RFC 8785 canonical
    assert record.body_sha256 == hashlib.sha256(record.body.encode("utf-8")).hexdigest()
    assert record.verify() and record.record_id == "c" * 32
    assert record.recorded_at_ns % 1000 == 0  # what the table keeps: microseconds
    fields = record.fields()
    assert fields["created_at"] == "2026-01-02T03:04:05.123456Z"  # RFC 3339, microseconds
    assert from_rfc3339(fields["created_at"]) == 1_767_323_045_123_456_000
    # the same fields make the same body whatever their order or time form
    again = make_record(
        RecordKind.CONTROL,
        "acme",
        dict(reversed(list(_control(created_at=fields["created_at"]).items()))),
        actor="cli",
    )
    assert (again.body, again.body_sha256) == (record.body, record.body_sha256)


def test_a_changed_or_foreign_body_is_refused() -> None:
    record = make_record(RecordKind.CONTROL, "acme", _control(), actor="api")
    assert Record.from_json(record.to_json()) == record
    tampered = {**record.to_json(), "body": record.body.replace("pause", "resume")}
    with pytest.raises(ValueError, match="does not match"):
        Record.from_json(tampered)
    other = make_record(RecordKind.CONTROL, "acme", _control(control_id="d" * 32), actor="api")
    with pytest.raises(ValueError, match="not the body's id"):
        Record.from_json({**other.to_json(), "record_id": "c" * 32})
    with pytest.raises(ValueError, match="missing"):
        make_record(RecordKind.CONTROL, "acme", {"control_id": "x"}, actor="api")
    with pytest.raises(ValueError, match="unknown"):
        make_record(RecordKind.CONTROL, "acme", _control(extra=1), actor="api")


def test_times_and_non_finite_numbers_in_bodies() -> None:
    aware = datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=timezone.utc)
    assert rfc3339(aware) == rfc3339(1_767_323_045_123_456_999) == "2026-01-02T03:04:05.123456Z"
    assert rfc3339(1_767_323_045_123_456_789, nanos=True) == "2026-01-02T03:04:05.123456789Z"
    body = {c.name: 0 for c in BODY_FIELDS[RecordKind.DRIFT_REPORT]}
    body.update(run_id="r" * 32, created_at=aware, tool_agreement=float("nan"), filter={})
    record = make_record(RecordKind.DRIFT_REPORT, "acme", body, actor="api")
    assert record.fields()["tool_agreement"] is None  # NaN is not JSON: null, read back as NaN


def _ddl(name: str) -> str:
    for migration in load_migrations():
        for statement in migration.statements():
            if re.match(rf"CREATE (TABLE|VIEW) IF NOT EXISTS {name}\b", statement):
                return statement
    raise AssertionError(f"no migration creates {name}")


def test_the_migrations_create_records_with_a_non_replacing_engine(store) -> None:
    ddl = _ddl(RECORDS_TABLE)
    engine = re.search(r"ENGINE\s*=\s*(\w+)", ddl)
    assert engine and engine.group(1) == "MergeTree", "records must not replace or collapse rows"
    assert (
        store.query_scalar(
            "SELECT engine FROM system.tables WHERE database = currentDatabase() AND name = 'records'"
        )
        == "MergeTree"
    )
    assert "ORDER BY (tenant, kind, recorded_at, record_id)" in ddl and "ZSTD" in ddl
    (local, distributed) = render_for_cluster(ddl, "c", "db")
    assert "ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/db/records_local'" in local
    assert "Distributed(c, db, records_local" in distributed
    described = [(r["name"], r["type"]) for r in store.query_rows("DESCRIBE TABLE records")]
    assert described == [(c.name, c.ch_type) for c in RECORD_COLUMNS]


def _view_type(ch_type: str) -> str:
    return "String" if ch_type == "JSON" else ch_type


@pytest.mark.parametrize("kind", list(RecordKind))
def test_each_view_gives_the_envelope_and_the_body_fields(store, kind: RecordKind) -> None:
    described = [(r["name"], r["type"]) for r in store.query_rows(f"DESCRIBE TABLE {VIEWS[kind]}")]
    expected = [(c.name, c.ch_type) for c in ENVELOPE_VIEW_COLUMNS] + [
        (c.name, _view_type(c.ch_type)) for c in BODY_FIELDS[kind]
    ]
    assert described == expected
    assert ID_FIELDS[kind] in {c.name for c in BODY_FIELDS[kind]}
    if kind is RecordKind.FEEDBACK:
        latest = store.query_rows(f"DESCRIBE TABLE {LATEST_FEEDBACK_VIEW}")
        assert [(r["name"], r["type"]) for r in latest] == expected


_MUTATION = re.compile(
    r"ALTER\s+TABLE\s+[`\"]?\w+[`\"]?\s+(ON\s+CLUSTER\s+\S+\s+)?(UPDATE|DELETE)\b"
    r"|\bDELETE\s+FROM\b|\bUPDATE\s+[`\"]?records\b|ReplacingMergeTree[^\n]*records",
    re.I,
)
_SOURCES = ("agentledger", "collector", "pipeline", "schemas", "instrumentation", "deploy", "bench")


def _source_files() -> list[Path]:
    files = [p for folder in _SOURCES for p in (ROOT / folder).rglob("*") if p.is_file()]
    files += list((ROOT / "native" / "src").rglob("*.rs")) + list((ROOT / "scripts").glob("*"))
    return [p for p in files if p.suffix in {".py", ".sql", ".sh", ".rs", ".yaml", ".yml", ""}]


_ERASERS = {"pipeline/services/erasure/service.py", "pipeline/derive/retention.py"}
"""Decision 9's two exceptions: erasure removes content and retention prunes it, each recorded
(an erasure or retention_expiry record); neither touches a record or a ledger leaf."""


def test_nothing_in_the_code_base_updates_or_deletes_records() -> None:
    found = []
    for path in _source_files():
        text = path.read_text(encoding="utf-8", errors="replace")
        where = str(path.relative_to(ROOT))
        for m in _MUTATION.finditer(text):
            if where in _ERASERS and re.search(
                r"ALTER\s+TABLE\s+(contents|spans|logs|span_conflicts)\s", m.group(0)
            ):
                continue
            found.append(f"{where}: {m.group(0)}")
    assert found == [], "history is insert-only (ARCHITECTURE decision 9)"


_LEGACY = (
    "intents",
    "intent_outcomes",
    "controls",
    "feedback",
    "datasets",
    "replay_runs",
    "replays",
)
_LEGACY_READ = re.compile(r"\b(FROM|JOIN|INTO)\s+(" + "|".join(_LEGACY) + r")\b")
"""SQL naming a per-kind table (keywords in capitals, as the code base writes SQL)."""


def test_only_the_carry_over_reads_the_per_kind_tables() -> None:
    """Every reader and writer of these kinds goes through the record log and its views."""
    allowed = {ROOT / "pipeline" / "store" / "carry_over.py"}
    found = []
    for path in _source_files():
        if path in allowed or path.suffix not in {".py", ".rs", ".sh"}:
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        found += [f"{path.relative_to(ROOT)}: {m.group(0)}" for m in _LEGACY_READ.finditer(text)]
    assert found == []
