"""The tamper-evident ledger: a clean store verifies; each kind of tampering is detected and located."""

from __future__ import annotations

import time

import pytest

from agentledger.pipeline.derive.ledger import Ledger, merkle_root, verify
from agentledger.pipeline.normalize import OtlpNormalizer
from agentledger.pipeline.sinks import IngestBatch
from agentledger.pipeline.sinks.embedded import EmbeddedSink
from agentledger.pipeline.store.writer import StoreWriter
from bench.traffic import SPANS_PER_RUN, requests

KEY = b"ledger-test-key"


@pytest.fixture
def filled(store):
    sink = EmbeddedSink(
        store,
        OtlpNormalizer(),
        writer=StoreWriter(store, ledger=Ledger(store, key=KEY, key_id="k1")),
    )
    reqs = list(requests(12, runs_per_request=3, seed=71))
    for req in reqs:
        sink.write(IngestBatch("acme", time.time_ns(), req, 3 * SPANS_PER_RUN))
    sink.close()
    return store


def _mutate(store, sql: str) -> None:
    store.command(sql + " SETTINGS mutations_sync = 2")


def _one_span(store) -> dict:
    return store.query_rows(
        "SELECT trace_id, span_id, input_hash FROM spans WHERE kind = 'LLM' ORDER BY span_id LIMIT 1"
    )[0]


def test_clean_store_verifies(filled) -> None:
    report = verify(filled, "acme", key=KEY)
    assert report.ok, report.as_dict()
    assert report.checkpoints == 4 and report.rows == 12 * SPANS_PER_RUN
    assert report.contents > 0 and report.heads
    assert verify(filled, "other").ok  # no data, nothing broken


def test_redelivery_does_not_break_verification(filled) -> None:
    sink = EmbeddedSink(filled, OtlpNormalizer())
    for req in list(requests(12, runs_per_request=3, seed=71))[
        :2
    ]:  # the same spans again, new positions
        sink.write(IngestBatch("acme", time.time_ns(), req, 3 * SPANS_PER_RUN))
    sink.close()
    assert verify(filled, "acme").ok
    filled.command("OPTIMIZE TABLE spans FINAL")  # duplicates merged away
    assert verify(filled, "acme").ok


def test_changed_span_is_located(filled) -> None:
    span = _one_span(filled)
    _mutate(
        filled,
        f"ALTER TABLE spans UPDATE output_tokens = output_tokens + 1 WHERE span_id = '{span['span_id']}'",
    )
    report = verify(filled, "acme")
    assert not report.ok
    problem = report.problems[0]
    assert problem.kind == "rows_changed_or_deleted"
    assert f"{span['trace_id']}/{span['span_id']}" in problem.spans


def test_deleted_span_is_located(filled) -> None:
    span = _one_span(filled)
    _mutate(filled, f"ALTER TABLE spans DELETE WHERE span_id = '{span['span_id']}'")
    problems = verify(filled, "acme").problems
    assert [p.kind for p in problems] == ["rows_changed_or_deleted"]
    assert problems[0].spans == [f"{span['trace_id']}/{span['span_id']}"]


def test_changed_content_is_located(filled) -> None:
    span = _one_span(filled)
    _mutate(
        filled,
        f"ALTER TABLE contents UPDATE content = 'forged prompt' WHERE hash = '{span['input_hash']}'",
    )
    problems = verify(filled, "acme").problems
    assert [p.kind for p in problems] == ["content_changed"]
    assert f"{span['trace_id']}/{span['span_id']}" in problems[0].spans


def test_forged_span_is_detected(filled) -> None:
    filled.command(
        "INSERT INTO spans SELECT * REPLACE ('ffffffffffffffff' AS span_id, source_offset + 1000 AS source_offset) "
        "FROM spans WHERE kind = 'TOOL' LIMIT 1"
    )
    problems = verify(filled, "acme").problems
    assert [p.kind for p in problems] == ["rows_not_checkpointed"]
    assert any(s.endswith("/ffffffffffffffff") for s in problems[0].spans)


def test_forged_span_inside_a_checkpointed_range_is_detected(filled) -> None:
    filled.command(
        "INSERT INTO spans SELECT * REPLACE ('eeeeeeeeeeeeeeee' AS span_id) FROM spans WHERE kind = 'TOOL' LIMIT 1"
    )
    problems = verify(filled, "acme").problems
    assert problems and problems[0].kind == "rows_not_checkpointed"
    assert any(s.endswith("/eeeeeeeeeeeeeeee") for s in problems[0].spans)


def test_truncated_ledger_tail_is_detected(filled) -> None:
    last = filled.query_scalar("SELECT max(seq) FROM ledger_checkpoints")
    _mutate(filled, f"ALTER TABLE ledger_checkpoints DELETE WHERE seq = {last}")
    problems = verify(filled, "acme").problems
    assert [p.kind for p in problems] == ["rows_not_checkpointed"]
    assert len(problems[0].spans) == 3 * SPANS_PER_RUN


def test_rewritten_checkpoint_fails_the_signature(filled) -> None:
    _mutate(
        filled, "ALTER TABLE ledger_checkpoints UPDATE signature = repeat('0', 64) WHERE seq = 2"
    )
    assert verify(filled, "acme").ok  # without the key only the chain is checked
    problems = verify(filled, "acme", key=KEY).problems
    assert [(p.kind, p.seq) for p in problems] == [("bad_signature", 2)]
    assert not verify(filled, "acme", key=b"wrong key").ok


def test_merkle_root_is_order_and_content_sensitive() -> None:
    a, b, c = ("a" * 64, "b" * 64, "c" * 64)
    assert merkle_root([a, b, c]) != merkle_root([a, c, b])
    assert merkle_root([a, b]) != merkle_root([a, b, c])
    assert len(merkle_root([a])) == 64


def test_in_batch_row_hashes_equal_the_stored_rows_hashes(store) -> None:
    """The embedded store hashes the inserted batch itself (no read-back); those hashes must be
    exactly what ``verify`` recomputes from the stored rows, for every column type."""
    import json

    from agentledger.pipeline.derive.ledger import _batch_hashes, _hash_map, _range_hashes
    from agentledger.pipeline.normalize import SourcePosition
    from tests.pipeline.test_native_normalizer import AWKWARD_FLOATS, AWKWARD_TEXT
    from tests.pipeline.test_normalizer import _request

    reqs = list(requests(6, runs_per_request=3, seed=5))
    reqs.append(
        _request(
            {
                "openinference.span.kind": "RETRIEVER",
                "retrieval.documents.0.document.content": "x",
                "agentledger.principal.chain": json.dumps(AWKWARD_TEXT),
                "odd": AWKWARD_FLOATS[3],
                **{f"t{i}": t for i, t in enumerate(AWKWARD_TEXT)},
            },
            name="é \x01",
        )
    )
    batch = OtlpNormalizer().normalize(
        [(r, SourcePosition("acme", time.time_ns(), "embedded", 0, i)) for i, r in enumerate(reqs)]
    )
    StoreWriter(store).write(batch, "hash-check")
    in_batch = _batch_hashes(store, batch.spans)
    assert in_batch is not None
    streams = zip(
        *(in_batch.column(c).to_pylist() for c in ("tenant", "source_topic", "source_partition"))
    )
    assert set(streams) == {("acme", "embedded", 0)}
    stored = _range_hashes(store, "acme", "embedded/0", 0, len(reqs) - 1)
    assert stored.num_rows == in_batch.num_rows == batch.span_count
    assert _hash_map(in_batch) == _hash_map(stored)
    assert len(_hash_map(stored)) == batch.span_count


@pytest.mark.parametrize("n", [0, 1, 2, 3, 7, 64, 1001])
def test_compiled_merkle_root_equals_the_reference(n: int) -> None:
    import hashlib

    from agentledger.pipeline.derive.ledger import _native, merkle_root_python

    assert _native is not None  # the test command installs agentledger-native
    leaves = sorted(hashlib.sha256(str(i).encode()).hexdigest() for i in range(n))
    assert merkle_root(leaves) == merkle_root_python(leaves)


def test_checkpoint_leaves_are_the_distinct_row_hashes_in_order() -> None:
    """A row delivered twice in one batch is one leaf; leaves sort as strings, each with its span."""
    import pyarrow as pa

    from agentledger.pipeline.derive.ledger import _leaves

    hashed = pa.table(
        {
            "h": ["c3", "a1", "b2", "a1", "c3"],
            "trace_id": ["t3", "t1", "t2", "t1", "t3"],
            "span_id": ["s3", "s1", "s2", "s1", "s3"],
        }
    )
    hashes, ids = _leaves(hashed)
    assert hashes.to_pylist() == ["a1", "b2", "c3"]
    assert ids.to_pylist() == ["t1/s1", "t2/s2", "t3/s3"]
    assert [a.to_pylist() for a in _leaves(hashed.slice(0, 0))] == [[], []]


# -- streaming: verify holds a chunk of checkpoints, never the whole tenant ----------------------


def _pages(store, monkeypatch) -> list[int]:
    """Record how many checkpoints each page read of ``verify`` returned."""
    from agentledger.pipeline.derive import ledger_verify

    sizes: list[int] = []
    real = store.query_rows

    def spy(sql, params=None, *args, **kwargs):
        rows = real(sql, params, *args, **kwargs)
        if sql is ledger_verify._PAGE:
            sizes.append(len(rows))
        return rows

    monkeypatch.setattr(store, "query_rows", spy)
    return sizes


def test_verify_in_small_chunks_gives_the_same_answer(filled, monkeypatch) -> None:
    whole = verify(filled, "acme", key=KEY).as_dict()
    assert whole["ok"] and whole["checkpoints"] == 4
    pages = _pages(filled, monkeypatch)
    for chunk in (1, 3):
        pages.clear()
        assert verify(filled, "acme", key=KEY, chunk_size=chunk).as_dict() == whole
        assert max(pages) <= chunk and sum(pages) == 4 and len(pages) >= 4 // chunk


def test_a_tampered_row_in_a_later_chunk_is_found(filled, monkeypatch) -> None:
    last = filled.query_rows(
        "SELECT seq, leaf_spans FROM ledger_checkpoints FINAL ORDER BY seq DESC LIMIT 1"
    )[0]
    trace_id, span_id = last["leaf_spans"][0].split("/")
    _mutate(
        filled,
        f"ALTER TABLE spans UPDATE output_tokens = output_tokens + 7 WHERE span_id = '{span_id}'",
    )
    pages = _pages(filled, monkeypatch)
    chunked = verify(filled, "acme", chunk_size=1)
    assert max(pages) == 1 and len(pages) >= 4  # one checkpoint per page, the last one later
    # the recorded row no longer hashes as checkpointed; its changed version was never checkpointed
    assert [(p.kind, p.seq) for p in chunked.problems] == [
        ("rows_changed_or_deleted", last["seq"]),
        ("rows_not_checkpointed", last["seq"]),
    ]
    assert [p.spans for p in chunked.problems] == [[f"{trace_id}/{span_id}"]] * 2
    assert chunked.as_dict() == verify(filled, "acme").as_dict()


def test_a_missing_middle_checkpoint_reads_alike_in_chunks(filled) -> None:
    _mutate(filled, "ALTER TABLE ledger_checkpoints DELETE WHERE seq = 2")
    chunked = verify(filled, "acme", chunk_size=1)
    kinds = [(p.kind, p.seq) for p in chunked.problems]
    assert kinds[0] == ("missing_checkpoint", 2)
    # the rows of checkpoints 2 to 4 are no longer vouched for: one problem, counted in the store
    assert kinds[1] == ("rows_not_checkpointed", 2) and len(kinds) == 2
    assert "stored row(s) are covered by no checkpoint" in chunked.problems[1].detail
    assert chunked.as_dict() == verify(filled, "acme", chunk_size=2).as_dict()


def test_chunk_size_must_be_positive(filled) -> None:
    with pytest.raises(ValueError, match="chunk_size"):
        verify(filled, "acme", chunk_size=0)
