"""The span row's three renderings (pydantic, Arrow, ClickHouse DDL) agree on the real engine."""

from __future__ import annotations

import re

import pyarrow as pa
import pytest

from agentledger.pipeline.store import MigrationDrift, load_migrations, migrate
from agentledger.pipeline.store.migrate import Migration
from agentledger.schemas import (
    CONTENT_ARROW_SCHEMA,
    CONTENT_COLUMNS,
    SPAN_ARROW_SCHEMA,
    SPAN_COLUMNS,
    ContentRow,
    SpanRow,
)
from agentledger.schemas.spans import STAMPED_COLUMNS


def _norm(ch_type: str) -> str:
    return re.sub(r"\(\s+", "(", re.sub(r"\s+", " ", ch_type)).strip()


def _described(store, table: str) -> list[tuple[str, str]]:
    return [(r["name"], _norm(r["type"])) for r in store.query_rows(f"DESCRIBE TABLE {table}")]


@pytest.mark.parametrize(
    ("table", "columns", "schema", "model"),
    [
        ("spans", SPAN_COLUMNS, SPAN_ARROW_SCHEMA, SpanRow),
        ("contents", CONTENT_COLUMNS, CONTENT_ARROW_SCHEMA, ContentRow),
    ],
)
def test_ddl_arrow_and_model_agree(store, table, columns, schema, model) -> None:
    stamped = list(STAMPED_COLUMNS) if table == "spans" else []  # the server's, after normalizing
    assert _described(store, table) == [(c.name, _norm(c.ch_type)) for c in [*columns, *stamped]]
    assert schema.names == [c.name for c in columns]
    assert list(model.model_fields) == [c.name for c in [*columns, *stamped]]


def test_arrow_schema_round_trips_through_the_engine(store) -> None:
    """A row inserted from the Arrow schema reads back with the same values and validates as SpanRow."""
    from datetime import datetime, timezone

    row = {f.name: None for f in SPAN_ARROW_SCHEMA}
    now = datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=timezone.utc)
    row.update(
        tenant="t",
        trace_id="a" * 32,
        span_id="b" * 16,
        parent_span_id="",
        start_time=now,
        end_time=now,
        duration_ms=0.0,
        name="n",
        kind="LLM",
        status_code="OK",
        status_message="",
        service="s",
        agent_name="",
        session_id="",
        user_id="",
        principal_id="p",
        principal_chain=["boss", "p"],
        policy_id="",
        provider="openai",
        operation="chat",
        request_model="gpt-4o",
        response_model="gpt-4o-x",
        system_fingerprint="",
        input_tokens=3,
        output_tokens=4,
        cache_read_tokens=0,
        cache_write_tokens=0,
        reasoning_tokens=0,
        cost_usd=0.5,
        cost_source="span",
        tool_name="",
        tool_call_id="",
        tool_calls=[{"id": "c1", "name": "f", "arguments_hash": "h"}],
        input_hash="i",
        output_hash="o",
        system_prompt_hash="",
        input_preview="",
        output_preview="",
        documents=[{"id": "d1", "content_hash": "x", "score": 0.5}],
        convention="openinference",
        scope_name="",
        attributes={"k": "v"},
        attribute_refs={},
        resource_attributes={"service.name": "s"},
        events="",
        ingest_time=now,
        source_topic="embedded",
        source_partition=0,
        source_offset=7,
    )
    store.insert_arrow("spans", pa.Table.from_pylist([row], schema=SPAN_ARROW_SCHEMA))
    back = store.query_arrow("SELECT * FROM spans")
    assert back.num_rows == 1
    got = back.to_pylist()[0]
    got["attributes"] = dict(got["attributes"])
    got["attribute_refs"] = dict(got["attribute_refs"])
    got["resource_attributes"] = dict(got["resource_attributes"])
    parsed = SpanRow.model_validate(got)
    assert parsed.principal_chain == ["boss", "p"]
    assert parsed.documents[0].id == "d1" and parsed.tool_calls[0].name == "f"
    assert parsed.attributes == {"k": "v"}
    assert parsed.start_time == now


def test_migrations_apply_once_and_record_versions(store) -> None:
    versions = [m.version for m in load_migrations()]
    assert versions == sorted(versions) and versions[0] == 1
    assert migrate(store) == []  # the fixture already applied them
    recorded = [
        r["version"]
        for r in store.query_rows("SELECT version FROM schema_migrations FINAL ORDER BY version")
    ]
    assert recorded == versions


def test_edited_applied_migration_is_reported(store) -> None:
    first = load_migrations()[0]
    edited = Migration(first.version, first.name, first.sql + "\n-- edited\n")
    with pytest.raises(MigrationDrift, match="changed after it was applied"):
        migrate(store, [edited])


def test_new_migration_is_applied_in_order(store) -> None:
    extra = Migration(
        9999,
        "test_extra",
        "CREATE TABLE IF NOT EXISTS t_extra (x UInt8) ENGINE = MergeTree ORDER BY x;",
    )
    assert migrate(store, [*load_migrations(), extra]) == [9999]
    assert migrate(store, [*load_migrations(), extra]) == []
    assert (
        store.query_scalar(
            "SELECT count() FROM system.tables WHERE database = currentDatabase() AND name = 't_extra'"
        )
        == 1
    )
