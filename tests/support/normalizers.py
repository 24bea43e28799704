"""Both normalizers, held to the same rows.

``normalize_both`` runs the pure-Python ``OtlpNormalizer`` and the compiled
``NativeNormalizer`` on the same requests (the compiled one reading them serialized, as
the collector and Kafka hand them over) and fails unless every column of every span row
and content record is identical. Tests that check what the normalizer stores use it, so
each of their assertions holds for both implementations.
"""

from __future__ import annotations

import math
from typing import Any

import pyarrow as pa
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from agentledger.pipeline.normalize import (
    NativeNormalizer,
    NormalizedBatch,
    OtlpNormalizer,
    SourcePosition,
)
from agentledger.schemas import PriceTable

__all__ = ["normalize_both", "assert_same_tables"]


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, dict) and isinstance(b, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def assert_same_tables(python: pa.Table, native: pa.Table, what: str) -> None:
    assert python.schema == native.schema, what
    assert python.num_rows == native.num_rows, (
        f"{what}: {python.num_rows} rows vs {native.num_rows}"
    )
    for name in python.schema.names:
        x, y = python.column(name), native.column(name)
        if x.equals(y):
            continue
        xs, ys = x.to_pylist(), y.to_pylist()
        for i, (a, b) in enumerate(zip(xs, ys)):
            assert _same(a, b), f"{what}.{name} row {i}: python {a!r} != native {b!r}"


def normalize_both(
    requests: list[tuple[ExportTraceServiceRequest, SourcePosition]],
    prices: PriceTable | None = None,
    ref_threshold: int = 512,
) -> NormalizedBatch:
    """The Python normalizer's batch, after checking the compiled one stores exactly the same."""
    python = OtlpNormalizer(prices, ref_threshold).normalize(requests)
    native = NativeNormalizer(prices, ref_threshold).normalize(
        [(r.SerializeToString(), pos) for r, pos in requests]
    )
    assert_same_tables(python.spans, native.spans, "spans")
    assert_same_tables(python.contents, native.contents, "contents")
    return python
