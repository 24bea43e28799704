"""The normalizer interface: one OTLP request in, canonical rows and contents out.

Normalization happens once, in the pipeline, whatever convention produced a
span. A normalizer never raises for a span it does not understand: such a
span still becomes a row (convention ``unknown``) with its raw attributes.
It raises ``NormalizeError`` only for input that cannot be a span at all.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import cast

import pyarrow as pa
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from agentledger.schemas import CONTENT_ARROW_SCHEMA, SPAN_ARROW_SCHEMA
from agentledger.schemas.spans import SENT_BY

__all__ = ["Normalizer", "NormalizedBatch", "SourcePosition", "NormalizeError"]


class NormalizeError(ValueError):
    """The input cannot be turned into rows (permanent: dead-letter it)."""


@dataclass(frozen=True)
class SourcePosition:
    """Where a request came from: Kafka topic/partition/offset, or the embedded sequence."""

    tenant: str
    received_at_ns: int
    topic: str
    partition: int = 0
    offset: int = 0


@dataclass
class NormalizedBatch:
    """Span rows and content records, as Arrow tables in the stored schemas."""

    spans: pa.Table = field(default_factory=SPAN_ARROW_SCHEMA.empty_table)
    contents: pa.Table = field(default_factory=CONTENT_ARROW_SCHEMA.empty_table)

    def stamped(self, sent_by: pa.Array) -> NormalizedBatch:
        """The batch with ``sent_by`` (one name per span row: the API key that sent the request
        the row came from) as a column: stamped by the server, never read from the request."""
        spans = self.spans
        if SENT_BY in spans.column_names:
            spans = spans.drop_columns([SENT_BY])
        return NormalizedBatch(spans.append_column(SENT_BY, sent_by), self.contents)

    @property
    def span_count(self) -> int:
        return cast(int, self.spans.num_rows)

    @classmethod
    def concat(cls, batches: list[NormalizedBatch]) -> NormalizedBatch:
        """One batch holding the rows of all ``batches``; contents deduplicated by hash."""
        if not batches:
            return cls()
        spans = pa.concat_tables([b.spans for b in batches])
        contents = pa.concat_tables([b.contents for b in batches])
        if contents.num_rows:
            hashes = contents.column("hash").to_pylist()
            seen: set[str] = set()
            keep = [not (h in seen or seen.add(h)) for h in hashes]  # type: ignore[func-returns-value]
            if not all(keep):
                contents = contents.filter(pa.array(keep))
        return cls(spans, contents)


class Normalizer(abc.ABC):
    """Turns OTLP requests into canonical rows. Pure: no I/O, safe to call from any thread."""

    @abc.abstractmethod
    def normalize(
        self, requests: list[tuple[ExportTraceServiceRequest | bytes, SourcePosition]]
    ) -> NormalizedBatch:
        """Rows for every span of every request, in request order. A request is given parsed or
        serialized (as received, or as a Kafka record holds it); one that does not parse raises
        ``NormalizeError``."""
