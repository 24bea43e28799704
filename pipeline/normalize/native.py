"""The compiled normalizer (``agentledger_native``, built from ``native/`` by every install of
agentledger): the same rows as ``OtlpNormalizer``, an order of magnitude faster.

It reads serialized OTLP protobuf (what the collector received and what Kafka records hold)
without building Python objects per attribute, runs without the GIL, and hands back each
column as Arrow buffers (offsets and values) that become ``pyarrow`` arrays here without a copy
per value. ``make_normalizer`` picks it whenever it is installed; the test suite holds both
implementations to identical rows.
"""

from __future__ import annotations

from typing import Any, Literal

import pyarrow as pa
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from agentledger.pipeline.normalize.base import (
    NormalizedBatch,
    NormalizeError,
    Normalizer,
    SourcePosition,
)
from agentledger.pipeline.normalize.otlp import OtlpNormalizer
from agentledger.schemas import CONTENT_ARROW_SCHEMA, SPAN_ARROW_SCHEMA, PriceTable

try:
    import agentledger_native as compiled
except ImportError:  # not built: the pure-Python normalizer serves
    compiled = None
"""The compiled module (``agentledger_native``), or None when it is not installed: the one place
that asks (the collector's request check and the ledger's Merkle roots use it too)."""

__all__ = [
    "NativeNormalizer",
    "make_normalizer",
    "native_available",
    "normalizer_choice",
    "NormalizerKind",
    "count_spans",
    "compiled",
]

NormalizerKind = Literal["auto", "native", "python"]


def native_available() -> bool:
    return compiled is not None


def count_spans(data: bytes) -> int:
    """Spans in a serialized request (counted from its framing by the compiled normalizer when
    installed, without decoding the spans); raises ``DecodeError`` when it does not parse. A
    request whose framing holds but whose spans do not decode is caught by the normalizer."""
    if compiled is not None:
        try:
            spans: int = compiled.count_spans(data)
            return spans
        except ValueError:
            pass  # the protobuf library decides, and names the problem
    request = ExportTraceServiceRequest.FromString(data)
    return sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)


def _array(type_: pa.DataType, n: int, payload: Any) -> pa.Array:
    """An Arrow array of ``type_`` from the buffers the compiled normalizer returns."""
    if pa.types.is_string(type_):
        offsets, data = payload
        return pa.Array.from_buffers(type_, n, [None, pa.py_buffer(offsets), pa.py_buffer(data)])
    if pa.types.is_map(type_):
        offsets, keys, values = payload
        m = len(offsets) // 4 - 1
        k = len(keys[0]) // 4 - 1
        return pa.MapArray.from_arrays(
            pa.Array.from_buffers(pa.int32(), m + 1, [None, pa.py_buffer(offsets)]),
            _array(pa.string(), k, keys),
            _array(pa.string(), k, values),
            type=type_,
        )
    if pa.types.is_list(type_):
        offsets, child = payload
        value_type = type_.value_type
        child_n = int.from_bytes(offsets[-4:], "little", signed=True) if n else 0
        if pa.types.is_struct(value_type):
            fields = [value_type.field(i) for i in range(value_type.num_fields)]
            items: pa.Array = pa.StructArray.from_arrays(
                [_array(f.type, child_n, c) for f, c in zip(fields, child)], fields=fields
            )
        else:
            items = _array(value_type, child_n, child)
        return pa.ListArray.from_arrays(
            pa.Array.from_buffers(pa.int32(), n + 1, [None, pa.py_buffer(offsets)]),
            items,
            type=type_,
        )
    return pa.Array.from_buffers(type_, n, [None, pa.py_buffer(payload)])


def _table(schema: pa.Schema, n: int, columns: dict[str, Any]) -> pa.Table:
    return pa.Table.from_arrays([_array(f.type, n, columns[f.name]) for f in schema], schema=schema)


class NativeNormalizer(Normalizer):
    """The compiled normalizer; requests may be given serialized (preferred) or parsed."""

    def __init__(self, prices: PriceTable | None = None, ref_threshold: int = 512) -> None:
        if compiled is None:
            raise RuntimeError(
                "agentledger_native is not installed: reinstall agentledger with cargo on PATH"
            )
        prices = prices or PriceTable.load()
        entries = [
            (provider, prefix, p.input, p.output, p.cache_read, p.cache_write)
            for provider, prefix, p in prices.entries()
        ]
        self._impl = compiled.Normalizer(entries, prices.aliases(), ref_threshold)

    def normalize(
        self, requests: list[tuple[ExportTraceServiceRequest | bytes, SourcePosition]]
    ) -> NormalizedBatch:
        args = [
            (
                r if isinstance(r, bytes) else r.SerializeToString(),
                pos.tenant,
                pos.received_at_ns,
                pos.topic,
                pos.partition,
                pos.offset,
            )
            for r, pos in requests
        ]
        try:
            n, spans, m, contents = self._impl.normalize(args)
        except ValueError as exc:
            raise NormalizeError(str(exc)) from exc
        return NormalizedBatch(
            _table(SPAN_ARROW_SCHEMA, n, spans), _table(CONTENT_ARROW_SCHEMA, m, contents)
        )


def normalizer_choice(kind: NormalizerKind = "auto") -> Literal["native", "python"]:
    """Which normalizer ``make_normalizer(kind=kind)`` builds: the compiled one when installed
    (``auto``), or the one asked for."""
    if kind == "native" or (kind == "auto" and compiled is not None):
        return "native"
    return "python"


def make_normalizer(
    prices: PriceTable | None = None, kind: NormalizerKind = "auto", ref_threshold: int = 512
) -> Normalizer:
    """The compiled normalizer when installed (``auto``), or the one asked for."""
    if normalizer_choice(kind) == "native":
        return NativeNormalizer(prices, ref_threshold)
    return OtlpNormalizer(prices, ref_threshold)
