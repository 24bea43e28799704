"""The engine's span leaf hash (``tlog_leaves.span_leaf_hash``) is the leaf ``schemas.ledger``
defines: the golden span fixture, and many generated rows (quotes, backslashes, control
characters, every plane of Unicode, repeated and non-BMP attribute names, huge token counts, times
before 1970) whose SQL hash is either the oracle's or NULL (left to the oracle), never another."""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
from typing import Any

import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentledger.pipeline.derive.tlog_leaves import span_leaf_hash
from agentledger.pipeline.derive.tlog_store import SPAN_SELECT, span_leaf
from agentledger.schemas import ledger as L

_TUPLE3 = pa.struct([("id", pa.string()), ("name", pa.string()), ("arguments_hash", pa.string())])
_DOC = pa.struct([("id", pa.string()), ("content_hash", pa.string()), ("score", pa.float64())])
_TYPES: dict[str, pa.DataType] = {
    "principal_chain": pa.list_(pa.string()),
    "finish_reasons": pa.list_(pa.string()),
    "tool_calls": pa.list_(_TUPLE3),
    "documents": pa.list_(_DOC),
    "attribute_refs": pa.map_(pa.string(), pa.string()),
    "start_time": pa.timestamp("ns", tz="UTC"),
    "end_time": pa.timestamp("ns", tz="UTC"),
    "ingest_time": pa.timestamp("ms", tz="UTC"),
    "input_tokens": pa.uint64(),
    "output_tokens": pa.uint64(),
}
_STRINGS = [
    f.name for f in L.SPAN_BODY_FIELDS if f.name not in _TYPES and f.name not in ("span_id",)
]
_serial = itertools.count()


def _insert(store, rows: list[dict[str, Any]]) -> None:
    columns = rows[0].keys()
    table = pa.table(
        {c: pa.array([r[c] for r in rows], _TYPES.get(c, pa.string())) for c in columns}
    )
    store.insert_arrow("spans", table)


def _both(store, tenant: str) -> list[tuple[str | None, str]]:
    """(engine's hash, oracle's hash) of every span of ``tenant``."""
    rows = store.query_rows(
        f"SELECT {SPAN_SELECT}, {span_leaf_hash()} AS engine FROM spans "
        "WHERE tenant = {t:String} ORDER BY span_id",
        {"t": tenant},
    )
    return [
        (r["engine"], L.leaf_hash(L.canonical_record(span_leaf(tenant, r))).hex()) for r in rows
    ]


def _nanos(text: str) -> int:
    whole = dt.datetime.strptime(text[:19], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=dt.timezone.utc)
    return int(whole.timestamp()) * 1_000_000_000 + int(text[20:29])


def test_the_golden_span_fixture(store) -> None:
    case = next(c for c in L.fixtures() if c["record"]["kind"] == "span")
    record = case["record"]
    body = dict(record["body"])
    row: dict[str, Any] = {
        **body,
        "tenant": record["tenant"],
        "sent_by": record["actor"],
        "start_time": _nanos(body["start_time"]),
        "end_time": _nanos(body["end_time"]),
        "ingest_time": 1_796_000_000_000,
        "tool_calls": [dict(c) for c in body["tool_calls"]],
        "documents": [{**d, "score": 0.5} for d in body["documents"]],
        "attribute_refs": list(body["attribute_refs"].items()),
    }
    _insert(store, [row])
    engine = store.query_scalar(
        f"SELECT {span_leaf_hash()} FROM spans WHERE tenant = {{t:String}}",
        {"t": record["tenant"]},
    )
    assert engine == case["leaf_hash"]


_HEX = st.text("0123456789abcdef", min_size=64, max_size=64)
_TEXT = st.one_of(
    st.text(st.characters(codec="utf-8"), max_size=12),
    st.text('ab"\\/\x00\x01\x1f\x7f \u2028\u00e9\ue000\uffff\U0001f600', max_size=8),
    st.sampled_from(["", "gpt-4o", "a\tb", "x\ny", "\\u0041"]),
)
_HASHLIKE = st.one_of(_HEX, _TEXT, st.just(""))
_NANOS = st.integers(-2_000_000_000_000_000_000, 4_000_000_000_000_000_000)
_TOKENS = st.one_of(st.integers(0, 10_000), st.integers(2**53 - 2, 2**64 - 1))


@st.composite
def _row(draw: st.DrawFn, tenant: str) -> dict[str, Any]:
    n = next(_serial)
    row: dict[str, Any] = {name: draw(_TEXT) for name in _STRINGS}
    for name in ("input_hash", "output_hash", "system_prompt_hash", "tools_hash"):
        row[name] = draw(_HASHLIKE)
    row.update(
        tenant=tenant,
        span_id=hashlib.sha256(str(n).encode()).hexdigest()[:16],
        raw_request_hash=draw(_HASHLIKE),
        sent_by=draw(st.one_of(st.just(""), _TEXT)),
        start_time=draw(_NANOS),
        end_time=draw(_NANOS),
        ingest_time=1_796_000_000_000 + n,
        input_tokens=draw(_TOKENS),
        output_tokens=draw(_TOKENS),
        principal_chain=draw(st.lists(_TEXT, max_size=3)),
        finish_reasons=draw(st.lists(_TEXT, max_size=2)),
        tool_calls=[
            {"id": a, "name": b, "arguments_hash": c}
            for a, b, c in draw(st.lists(st.tuples(_TEXT, _TEXT, _HASHLIKE), max_size=3))
        ],
        documents=[
            {"id": a, "content_hash": b, "score": 0.5}
            for a, b in draw(st.lists(st.tuples(_TEXT, _HASHLIKE), max_size=3))
        ],
        attribute_refs=draw(st.lists(st.tuples(_TEXT, _HASHLIKE), max_size=4)),
    )
    return row


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_the_engine_writes_the_oracles_leaf_or_leaves_it_to_the_oracle(store, data) -> None:
    tenant = f"t{next(_serial)}"
    rows = data.draw(st.lists(_row(tenant), min_size=1, max_size=25))
    _insert(store, rows)
    pairs = _both(store, tenant)
    assert len(pairs) == len(rows)
    for engine, oracle in pairs:
        assert engine in (None, oracle)


def test_plain_rows_are_all_written_by_the_engine(store) -> None:
    """The fallback is for the odd row only: ordinary spans (non-ASCII text included) never
    take it."""
    rows = []
    for n in range(300):
        rows.append(
            {
                **{name: f"v{n} é “quoted” \\ {name}" for name in _STRINGS},
                "tenant": "plain",
                "span_id": f"{n:016x}",
                "sent_by": "" if n % 2 else "key",
                "input_hash": hashlib.sha256(str(n).encode()).hexdigest(),
                "start_time": 1_796_000_000_123_456_789 + n,
                "end_time": 1_796_000_001_000_000_000 + n,
                "ingest_time": 1_796_000_000_000 + n,
                "input_tokens": n,
                "output_tokens": 2**53 - 1,
                "principal_chain": ["cfo", "controller"],
                "finish_reasons": ["stop"],
                "tool_calls": [{"id": "c1", "name": "pay", "arguments_hash": "x" * n}],
                "documents": [{"id": "d", "content_hash": "a" * 64, "score": 0.1}],
                "attribute_refs": [("z.big", "b" * 64), ("a.big", "c" * 64), ("\U0001f600", "")],
            }
        )
    _insert(store, rows)
    pairs = _both(store, "plain")
    assert len(pairs) == 300
    assert all(engine == oracle for engine, oracle in pairs)


_PLAIN_TEXT = st.text(
    st.characters(codec="utf-8", exclude_categories=["Cc", "Cs"], max_codepoint=0xDFFF), max_size=10
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_any_plain_row_is_written_by_the_engine_exactly(store, data) -> None:
    """Without control characters, huge numbers or pre-1970 times, the engine writes every leaf
    (no fallback) and each is the oracle's."""
    tenant = f"p{next(_serial)}"
    rows = data.draw(st.lists(_row(tenant), min_size=1, max_size=20))
    for row in rows:
        for name in _STRINGS:
            row[name] = data.draw(_PLAIN_TEXT)
        keys = data.draw(st.lists(_PLAIN_TEXT, max_size=4, unique=True))
        row["attribute_refs"] = [(k, data.draw(st.one_of(_HEX, _PLAIN_TEXT))) for k in keys]
        row["principal_chain"] = data.draw(st.lists(_PLAIN_TEXT, max_size=3))
        row["finish_reasons"] = data.draw(st.lists(_PLAIN_TEXT, max_size=2))
        row["sent_by"] = data.draw(_PLAIN_TEXT)
        row["start_time"] = data.draw(st.integers(0, 4_000_000_000_000_000_000))
        row["end_time"] = data.draw(st.integers(0, 4_000_000_000_000_000_000))
        row["input_tokens"] = data.draw(st.integers(0, 2**53 - 1))
        row["output_tokens"] = data.draw(st.integers(0, 2**53 - 1))
        for call in row["tool_calls"]:
            call.update(id=data.draw(_PLAIN_TEXT), name=data.draw(_PLAIN_TEXT))
            call["arguments_hash"] = data.draw(st.one_of(_HEX, _PLAIN_TEXT))
        for doc in row["documents"]:
            doc.update(id=data.draw(_PLAIN_TEXT), content_hash=data.draw(_HEX))
        for name in ("input_hash", "output_hash", "system_prompt_hash", "tools_hash"):
            row[name] = data.draw(st.one_of(_HEX, _PLAIN_TEXT))
        row["raw_request_hash"] = data.draw(st.one_of(_HEX, _PLAIN_TEXT))
    _insert(store, rows)
    pairs = _both(store, tenant)
    assert len(pairs) == len(rows)
    for engine, oracle in pairs:
        assert engine == oracle
