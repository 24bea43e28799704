"""The sink interface: take a batch of OTLP requests, make it durable, then return.

A sink is where the collector hands data off. ``write`` returns only once the
data is durable (the broker acknowledged it with acks=all, or the store
inserted it); the collector answers 200 only after that. Implementations:
``KafkaSink`` (records to the spans topic), ``EmbeddedSink`` (normalize and
store in-process) and ``MemorySink`` (the test double).

Exceptions, by what the client should do::

    SinkError
    ├── SinkUnavailable   retryable: broker or store down, queue full -> HTTP 503 + Retry-After
    └── SinkRejected      permanent: the data can never be stored      -> HTTP 400 (413 if too large)
"""

from __future__ import annotations

import abc
from dataclasses import dataclass

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

__all__ = ["IngestBatch", "Sink", "SinkResult", "SinkError", "SinkUnavailable", "SinkRejected"]


class IngestBatch:
    """One accepted OTLP request with what the collector stamped on it.

    ``raw`` is the request serialized, when the collector received it so and changed nothing:
    the compiled normalizer reads it directly, and ``request`` is then parsed only if a sink
    asks for it (the Kafka sink does, to split by trace).
    """

    __slots__ = ("tenant", "received_at_ns", "span_count", "raw", "sent_by", "agent", "_request")

    def __init__(
        self,
        tenant: str,
        received_at_ns: int,
        request: ExportTraceServiceRequest | None,
        span_count: int,
        raw: bytes | None = None,
        sent_by: str = "",
        agent: str = "",
    ) -> None:
        if request is None and raw is None:
            raise ValueError("an IngestBatch needs the request, parsed or serialized")
        self.tenant = tenant
        self.received_at_ns = received_at_ns
        self.span_count = span_count
        self.raw = raw
        self.sent_by = sent_by
        """The name of the API key that sent the request (stamped on every span stored)."""
        self.agent = agent
        """The one agent that key may send spans for (``sinks.agents``); empty = any."""
        self._request = request

    @property
    def request(self) -> ExportTraceServiceRequest:
        if self._request is None:
            assert self.raw is not None
            self._request = ExportTraceServiceRequest.FromString(self.raw)
        return self._request

    def __repr__(self) -> str:
        return f"IngestBatch(tenant={self.tenant!r}, spans={self.span_count}, received_at_ns={self.received_at_ns})"


@dataclass(frozen=True)
class SinkResult:
    """Spans of a durable batch that were not stored as sent, for OTLP partial success: a sink
    that knows at acknowledgement time (the embedded one) reports spans re-sent with the ids of
    stored spans but other content (kept as conflicts; the stored versions stand)."""

    rejected: int = 0
    message: str = ""
    foreign_agent: int = 0
    """Of ``rejected``: spans refused for naming another agent than the key's."""


class SinkError(Exception):
    """The sink could not take the batch."""


class SinkUnavailable(SinkError):
    """Try again later; nothing of the batch is guaranteed stored."""

    def __init__(self, message: str, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class SinkRejected(SinkError):
    """The batch can never be taken as it is."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class Sink(abc.ABC):
    """Makes accepted batches durable.

    Contract: ``write`` is called from many threads at once; it blocks until
    the batch is durable or raises. Writing the same batch twice may store it
    twice at the transport, never in the results (the pipeline deduplicates).
    ``close`` flushes what was accepted and is safe to call twice.
    """

    @abc.abstractmethod
    def write(self, batch: IngestBatch) -> SinkResult | None:
        """Make ``batch`` durable or raise SinkError; a SinkResult names spans not stored as
        sent (None: all were, or the sink cannot know yet)."""

    @abc.abstractmethod
    def ready(self) -> bool:
        """True when ``write`` can be expected to succeed now."""

    def close(self) -> None:
        """Flush and release resources."""
