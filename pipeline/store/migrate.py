"""Numbered migrations, applied once each, in order, at start-up.

Migration files live in ``agentledger/schemas/migrations`` as
``NNNN_name.sql``; statements are separated by ``;`` at the end of a line.
Applied versions are recorded in ``schema_migrations`` with the file's
checksum, so a re-run applies nothing and an edited, already-applied file is
reported rather than silently ignored.

Cluster variant (``cluster=NAME``, from ``AGENTLEDGER_CLICKHOUSE_CLUSTER``): the
same files are rendered for a ClickHouse cluster. Each ``CREATE TABLE t``
becomes ``t_local ON CLUSTER`` with the Replicated form of its engine
(``/clickhouse/tables/{shard}/<database>/t_local``, ``{replica}``; the
insert-deduplication window becomes the replicated one) plus a Distributed
table ``t`` over it, sharded so that all rows of a trace (and a content hash)
land on one shard, which keeps ``FINAL`` exact. ``ALTER TABLE t`` runs
``ON CLUSTER`` on both, ``CREATE VIEW v`` runs ``ON CLUSTER`` (a view over the Distributed
table). Queries and inserts address ``t`` as before.

Some migrations carry data over as well (``DATA_STEPS``): 0008 copies the rows of the per-kind
tables into the record log. A data step runs after its migration's statements and before the
migration is recorded as applied, and it is safe to run twice (an interrupted migration is
applied again at the next start).
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources

import pyarrow as pa

from agentledger.pipeline.store.base import Store, StoreRejected
from agentledger.pipeline.store.carry_over import carry_over_records
from agentledger.pipeline.store.span_history import backfill_span_keys

__all__ = [
    "Migration",
    "load_migrations",
    "migrate",
    "MigrationDrift",
    "render_for_cluster",
    "SHARD_KEYS",
    "DATA_STEPS",
]

log = logging.getLogger(__name__)

_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

SHARD_KEYS = {
    "spans": "cityHash64(tenant, trace_id)",
    "contents": "cityHash64(tenant, hash)",
    "usage_hourly": "cityHash64(tenant, hour)",
    "usage_hourly_state": "cityHash64(tenant, hour)",
    "anomalies": "cityHash64(tenant, anomaly_id)",
    "intents": "cityHash64(tenant, intent_id)",
    "intent_outcomes": "cityHash64(tenant, intent_id)",
    "controls": "cityHash64(tenant)",
    "feedback": "cityHash64(tenant, feedback_id)",
    "datasets": "cityHash64(tenant, dataset_id)",
    "dataset_members": "cityHash64(tenant, dataset_id)",
    "replays": "cityHash64(tenant, run_id)",
    "replay_runs": "cityHash64(tenant, run_id)",
    "ledger_checkpoints": "cityHash64(tenant, stream)",
    "records": "cityHash64(tenant, record_id)",
    "ledger_leaves": "cityHash64(tenant)",  # one shard per tenant log: its indices and tokens
    "ledger_tree_checkpoints": "cityHash64(tenant)",
    "span_keys": "cityHash64(tenant, trace_id)",
    "span_conflicts": "cityHash64(tenant, trace_id)",
    "logs": "cityHash64(tenant, trace_id)",  # beside the spans they are joined to
}
"""Sharding expression of each Distributed table (others: rand())."""

_CREATE = re.compile(r"^CREATE TABLE IF NOT EXISTS (\w+)\s*\(", re.S)
_ENGINE = re.compile(r"ENGINE\s*=\s*(\w*MergeTree)(?:\(([^)]*)\))?")
_ALTER = re.compile(r"^ALTER TABLE (\w+)\s+", re.S)
_VIEW = re.compile(r"^CREATE VIEW IF NOT EXISTS (\w+) AS\b", re.S)
_DROP_VIEW = re.compile(r"^DROP VIEW IF EXISTS (\w+)\s*$")


def _recompute_loss_report_hours(store: Store) -> None:
    """Migration 0014's data step: hours whose rollup counted agents' loss reports as calls get a
    state row that matches no fingerprint, so the next rollup pass recomputes them."""
    store.command(
        "INSERT INTO usage_hourly_state (tenant, hour, span_rows, fingerprint, computed_at) "
        "SELECT tenant, toStartOfHour(start_time), 0, 0, now64(6) FROM spans "
        "WHERE name = 'agentledger.spans_lost' AND scope_name = 'agentledger.instrumentation' "
        "GROUP BY tenant, toStartOfHour(start_time) SETTINGS async_insert = 0"
    )


DATA_STEPS: dict[int, Callable[[Store], object]] = {
    8: carry_over_records,
    12: backfill_span_keys,
    14: _recompute_loss_report_hours,
}
"""Data carried over by a migration, by version: run after its statements, safe to run twice."""


def render_for_cluster(statement: str, cluster: str, database: str) -> list[str]:
    """One migration statement as the statements that apply it to ``cluster``."""
    create = _CREATE.match(statement)
    if create:
        name = create.group(1)
        local = f"{name}_local"
        body = _CREATE.sub(
            f"CREATE TABLE IF NOT EXISTS {local} ON CLUSTER {cluster}\n(", statement, count=1
        )

        def replicated(m: re.Match[str]) -> str:
            args = [f"'/clickhouse/tables/{{shard}}/{database}/{local}'", "'{replica}'"]
            if m.group(2):
                args.append(m.group(2))
            return f"ENGINE = Replicated{m.group(1)}({', '.join(args)})"

        body = _ENGINE.sub(replicated, body, count=1)
        body = body.replace(
            "non_replicated_deduplication_window", "replicated_deduplication_window"
        )
        shard = SHARD_KEYS.get(name, "rand()")
        distributed = (
            f"CREATE TABLE IF NOT EXISTS {name} ON CLUSTER {cluster} AS {local}\n"
            f"ENGINE = Distributed({cluster}, {database}, {local}, {shard})"
        )
        return [body, distributed]
    alter = _ALTER.match(statement)
    if alter:
        name, rest = alter.group(1), statement[alter.end() :]
        return [
            f"ALTER TABLE {name}_local ON CLUSTER {cluster} {rest}",
            f"ALTER TABLE {name} ON CLUSTER {cluster} {rest}",
        ]
    drop = _DROP_VIEW.match(statement)
    if drop:  # a view is replaced by dropping it and creating it again, on every node
        return [f"DROP VIEW IF EXISTS {drop.group(1)} ON CLUSTER {cluster}"]
    view = _VIEW.match(statement)
    if view:
        return [
            _VIEW.sub(
                f"CREATE VIEW IF NOT EXISTS {view.group(1)} ON CLUSTER {cluster} AS", statement, 1
            )
        ]
    return [statement]


_LEDGER_DDL = """
CREATE TABLE IF NOT EXISTS schema_migrations
(
    version UInt32,
    name String,
    checksum String,
    applied_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
ORDER BY version
"""


class MigrationDrift(StoreRejected):
    """An applied migration's file changed after it was applied."""


@dataclass(frozen=True)
class Migration:
    """One numbered migration file."""

    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()

    def statements(self) -> list[str]:
        body = "\n".join(
            line for line in self.sql.splitlines() if not line.lstrip().startswith("--")
        )
        return [s.strip() for s in re.split(r";\s*$", body, flags=re.M) if s.strip()]


def load_migrations() -> list[Migration]:
    """All shipped migrations, in version order."""
    folder = resources.files("agentledger.schemas").joinpath("migrations")
    found = []
    for entry in folder.iterdir():
        m = _FILE.match(entry.name)
        if m:
            found.append(Migration(int(m.group(1)), m.group(2), entry.read_text()))
    found.sort(key=lambda mig: mig.version)
    versions = [mig.version for mig in found]
    if len(set(versions)) != len(versions):
        raise StoreRejected(f"duplicate migration versions in {versions}")
    return found


def migrate(
    store: Store, migrations: list[Migration] | None = None, *, cluster: str | None = None
) -> list[int]:
    """Apply the migrations the store has not recorded; return the versions applied.

    With ``cluster``, the cluster variant is applied (see the module docstring).
    """
    shipped = load_migrations()
    migrations = shipped if migrations is None else migrations
    if cluster:
        ledger = _LEDGER_DDL.replace(
            "CREATE TABLE IF NOT EXISTS schema_migrations",
            f"CREATE TABLE IF NOT EXISTS schema_migrations ON CLUSTER {cluster}",
        ).replace(
            "ENGINE = ReplacingMergeTree",
            f"ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/all/{store.database}/schema_migrations', '{{replica}}')",
        )
        store.command(ledger)
    else:
        store.command(_LEDGER_DDL)
    done = {
        row["version"]: row["checksum"]
        for row in store.query_rows("SELECT version, checksum FROM schema_migrations FINAL")
    }
    applied = []
    for mig in migrations:
        if mig.version in done:
            if done[mig.version] != mig.checksum:
                raise MigrationDrift(
                    f"migration {mig.version:04d}_{mig.name} changed after it was applied; "
                    "add a new migration instead of editing an applied one"
                )
            continue
        log.info("applying migration %04d_%s", mig.version, mig.name)
        for statement in mig.statements():
            for rendered in (
                render_for_cluster(statement, cluster, store.database) if cluster else [statement]
            ):
                store.command(rendered)
        step = DATA_STEPS.get(mig.version)
        if step is not None and mig in shipped:
            step(store)
        store.insert_arrow(
            "schema_migrations",
            pa.table(
                {
                    "version": pa.array([mig.version], pa.uint32()),
                    "name": [mig.name],
                    "checksum": [mig.checksum],
                }
            ),
        )
        applied.append(mig.version)
    return applied
