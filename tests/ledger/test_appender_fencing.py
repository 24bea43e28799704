"""Two appenders racing for the same indices (what several pipeline processes do): the first
insert at an index wins store-side, the loser's insert is dropped and it signs nothing, so the log
stays one copy of each index and verifies."""

from __future__ import annotations

import logging
import time
from datetime import datetime, timezone
from typing import Any

import pyarrow as pa

from agentledger.pipeline.derive import tlog_store as S
from agentledger.pipeline.derive.tlog_job import TreeLogJob
from agentledger.pipeline.derive.tlog_leaves import span_leaf_hash
from agentledger.pipeline.derive.tlog_verify import verify_log
from agentledger.pipeline.normalize import OtlpNormalizer
from agentledger.pipeline.services.access import KeyBook
from agentledger.pipeline.sinks import IngestBatch
from agentledger.pipeline.sinks.embedded import EmbeddedSink
from agentledger.pipeline.tlog import Signer, leaf_hash
from bench.traffic import SPANS_PER_RUN, requests

TENANT = "acme"


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _ingest(store, seed: int, received_ns: int) -> None:
    sink = EmbeddedSink(store, OtlpNormalizer())
    for req in requests(2, runs_per_request=1, seed=seed):
        sink.write(IngestBatch(TENANT, received_ns, req, SPANS_PER_RUN))
    sink.close()


class _Rival:
    """The store as one appender sees it: just before that appender's first leaf insert (its
    head checked, its batch built), ``before_insert`` runs: another appender wins the race."""

    def __init__(self, store: Any, before_insert) -> None:
        self._store = store
        self._before = before_insert

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def insert_arrow(self, table: str, data: pa.Table, *, dedup_token: str | None = None) -> None:
        if table == S.LEAVES_TABLE and self._before is not None:
            before, self._before = self._before, None
            before()
        self._store.insert_arrow(table, data, dedup_token=dedup_token)


def test_the_loser_of_a_race_for_an_index_writes_no_fork_and_signs_nothing(store, caplog) -> None:
    signer = Signer.generate("agentledger")
    _ingest(store, seed=3, received_ns=time.time_ns())
    first = TreeLogJob(signer, chunk=1000)
    assert first.run(store, _now()).info["appended"][TENANT] == 2 * SPANS_PER_RUN
    head = S.log_head(store, TENANT)[0]
    before = S.latest_checkpoint(store, TENANT)
    assert before is not None and before.tree_size == head

    # the loser's batch is a key event; meanwhile spans received earlier (a slower replica's
    # batch) are stored and the winner appends them first: the two batches differ at ``head``
    KeyBook(store).create(TENANT, "reader", "bob", actor="admin")
    winner = TreeLogJob(signer, chunk=1000)

    def rival() -> None:
        _ingest(store, seed=4, received_ns=time.time_ns() - 2_000_000_000)
        assert winner.run(store, _now()).info["appended"][TENANT] == 2 * SPANS_PER_RUN + 1

    loser = TreeLogJob(signer, chunk=1000)
    with caplog.at_level(logging.INFO):
        assert loser.run(_Rival(store, rival), _now()).info["appended"][TENANT] == 0
    assert "another appender claimed leaves" in caplog.text
    assert "forked" not in caplog.text
    count, following, _ = S.log_head(store, TENANT)
    assert count == following == head + 2 * SPANS_PER_RUN + 1  # each index once: no fork
    signed = S.latest_checkpoint(store, TENANT)
    assert signed is not None and signed.tree_size == count  # the winner's, not the loser's
    assert int(store.query_scalar("SELECT count() FROM ledger_tree_checkpoints")) == 2
    dupes = store.query_scalar(
        "SELECT count() - uniqExact(kind, record_id, record_key) FROM ledger_leaves"
    )
    assert dupes == 0
    report = verify_log(store, TENANT, [signer.verifier()])
    assert report.ok, report.problems
    assert report.leaves == count and report.checkpoint_size == count
    # the loser's next pass finds the log whole and nothing to add
    assert loser.run(store, _now()).info["appended"][TENANT] == 0
    assert S.log_head(store, TENANT)[0] == count


def test_a_span_the_engine_leaves_to_the_oracle_is_appended_and_verified(store) -> None:
    """A span whose text holds a control character: the engine's expression gives no hash, so the
    appender and the verifier build its leaf with ``schemas.ledger``; a change to it is found."""
    signer = Signer.generate("agentledger")
    _ingest(store, seed=5, received_ns=time.time_ns())
    store.command(
        "ALTER TABLE spans UPDATE name = 'tab\there\x01' WHERE 1 SETTINGS mutations_sync = 1"
    )
    odd = store.query_scalar(
        f"SELECT countIf({span_leaf_hash()} IS NULL) FROM spans WHERE tenant = 'acme'"
    )
    assert odd == 2 * SPANS_PER_RUN
    job = TreeLogJob(signer, chunk=4)
    assert job.run(store, _now()).info["appended"][TENANT] == 2 * SPANS_PER_RUN
    for r in store.query_rows("SELECT kind, record_id, record_key, leaf_hash FROM ledger_leaves"):
        record = S.recompute(store, TENANT, r["kind"], r["record_id"], r["record_key"])
        assert record is not None and leaf_hash(record).hex() == r["leaf_hash"]
    assert verify_log(store, TENANT, [signer.verifier()]).ok
    span_id = store.query_scalar("SELECT span_id FROM spans ORDER BY span_id LIMIT 1")
    store.command(
        "ALTER TABLE spans UPDATE name = 'tab\there\x02' WHERE span_id = {s:String} "
        "SETTINGS mutations_sync = 1",
        {"s": span_id},
    )
    report = verify_log(store, TENANT, [signer.verifier()])
    assert report.counts == {"updated": 1}, report.as_dict()
    assert span_id in report.problems[0].detail
