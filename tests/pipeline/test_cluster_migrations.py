"""The cluster variant of the migrations: Replicated engines, Distributed tables, ON CLUSTER,
checked by ClickHouse's own parser (no cluster runs here)."""

from __future__ import annotations

from agentledger.pipeline.store import load_migrations
from agentledger.pipeline.store.migrate import SHARD_KEYS, render_for_cluster


def _rendered() -> list[str]:
    return [
        r
        for m in load_migrations()
        for s in m.statements()
        for r in render_for_cluster(s, "agentledger", "al")
    ]


def test_every_rendered_statement_parses(store) -> None:
    for statement in _rendered():
        formatted = store.query_scalar("SELECT formatQuery({q:String})", {"q": statement})
        assert formatted and "ON CLUSTER agentledger" in formatted


def test_tables_are_replicated_and_distributed_by_trace() -> None:
    statements = _rendered()
    plain = {
        m.group(1): s
        for m in load_migrations()
        for s in m.statements()
        for m in [__import__("re").match(r"CREATE TABLE IF NOT EXISTS (\w+)", s)]
        if m
    }
    assert set(SHARD_KEYS) <= set(plain), "every sharded table exists in the migrations"
    for table, key in SHARD_KEYS.items():
        local = next(
            s
            for s in statements
            if s.startswith(f"CREATE TABLE IF NOT EXISTS {table}_local ON CLUSTER")
        )
        assert f"MergeTree('/clickhouse/tables/{{shard}}/al/{table}_local', '{{replica}}'" in local
        assert "ENGINE = Replicated" in local and "non_replicated" not in local
        if "non_replicated_deduplication_window" in plain[table]:
            assert "replicated_deduplication_window" in local
        dist = next(
            s for s in statements if s.startswith(f"CREATE TABLE IF NOT EXISTS {table} ON CLUSTER")
        )
        assert f"Distributed(agentledger, al, {table}_local, {key})" in dist
    assert "trace_id" in SHARD_KEYS["spans"]  # all spans of a trace on one shard: FINAL stays exact


def test_alter_runs_on_both_tables() -> None:
    out = render_for_cluster("ALTER TABLE spans ADD COLUMN IF NOT EXISTS x UInt8", "c", "db")
    assert out == [
        "ALTER TABLE spans_local ON CLUSTER c ADD COLUMN IF NOT EXISTS x UInt8",
        "ALTER TABLE spans ON CLUSTER c ADD COLUMN IF NOT EXISTS x UInt8",
    ]
