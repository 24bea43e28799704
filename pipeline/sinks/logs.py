"""Where ``POST /v1/logs`` hands OTLP log records: the store (embedded) or the logs topic (Kafka).

The same contract as the span sinks (``sinks/base.py``): ``write`` returns only once the records
are durable, and the collector answers 200 only after that; the errors are the span sinks'
(``SinkUnavailable`` -> 503 with Retry-After, ``SinkRejected`` -> 400/413).

Log requests are small and far fewer than span requests (a model call sends a handful of
events), so the embedded sink writes each request as it comes, in the caller's thread, rather
than group-committing them like ``EmbeddedSink``.
"""

from __future__ import annotations

import abc
import threading
import time
from dataclasses import dataclass

from agentledger.pipeline.normalize.base import NormalizeError, SourcePosition
from agentledger.pipeline.normalize.logs import NormalizedLogs, normalize_logs
from agentledger.pipeline.sinks.base import SinkRejected, SinkUnavailable
from agentledger.pipeline.store import Store, StoreError, StoreUnavailable
from agentledger.pipeline.transport.base import (
    OutgoingRecord,
    RecordTooLarge,
    Transport,
    TransportError,
)
from agentledger.pipeline.transport.records import record_headers
from agentledger.schemas.contents import CONTENTS_TABLE
from agentledger.schemas.logs import LOGS_TABLE
from agentledger.schemas.topics import EMBEDDED_SOURCE

__all__ = ["KafkaLogSink", "LogBatch", "LogSink", "StoreLogSink", "write_logs"]


@dataclass(frozen=True)
class LogBatch:
    """One accepted OTLP logs request (serialized ``ExportLogsServiceRequest``) with what the
    collector stamped on it: the tenant and the sending key's name come from the API key."""

    tenant: str
    received_at_ns: int
    raw: bytes
    records: int
    sent_by: str = ""
    key: bytes = b""
    """The first trace id of the request (the Kafka record's key: its partition)."""


class LogSink(abc.ABC):
    """Makes accepted log requests durable. ``write`` is called from many threads at once and
    blocks until the request is durable or raises a ``SinkError``; ``close`` is safe twice."""

    @abc.abstractmethod
    def write(self, batch: LogBatch) -> None: ...

    @abc.abstractmethod
    def ready(self) -> bool: ...

    def close(self) -> None:
        """Flush and release resources."""


def write_logs(store: Store, batch: NormalizedLogs, token: str) -> None:
    """Insert normalized logs, contents first (a visible row never points at a missing content
    record), both under ``token``: a retried write stores nothing twice."""
    if batch.contents.num_rows:
        store.insert_arrow(CONTENTS_TABLE, batch.contents, dedup_token=f"{token}/contents")
    if batch.logs.num_rows:
        store.insert_arrow(LOGS_TABLE, batch.logs, dedup_token=f"{token}/logs")


class StoreLogSink(LogSink):
    """Normalize and insert each request in the caller's thread (``agentledger serve``).

    Each request gets a sequence number, its rows' ``source_offset`` and its insert token (with a
    per-process epoch, as ``EmbeddedSink``'s tokens, so a restart never reuses one)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._seq = 0
        self._epoch = f"{time.time_ns():x}"
        self.stored_records = 0

    def write(self, batch: LogBatch) -> None:
        with self._lock:
            self._seq += 1
            seq = self._seq
        position = SourcePosition(batch.tenant, batch.received_at_ns, EMBEDDED_SOURCE, 0, seq)
        try:
            normalized = normalize_logs([(batch.raw, position, batch.sent_by)])
        except NormalizeError as exc:
            raise SinkRejected(f"cannot normalize logs: {exc}") from exc
        try:
            write_logs(self.store, normalized, f"logs-{EMBEDDED_SOURCE}-{self._epoch}-{seq}")
        except StoreUnavailable as exc:
            raise SinkUnavailable(f"store unavailable: {exc}", retry_after=2) from exc
        except StoreError as exc:
            raise SinkRejected(f"store rejected the logs: {exc}") from exc
        self.stored_records += normalized.count

    def ready(self) -> bool:
        return True


class KafkaLogSink(LogSink):
    """A producer on the logs topic (acks=all): one record per request, keyed by its first trace
    id, with the spans topic's headers (tenant, receive time, actor, schema version). The
    pipeline's ``LogConsumer`` stores what the topic holds."""

    def __init__(self, transport: Transport) -> None:
        self.settings = transport.settings
        self._producer = transport.producer()

    def write(self, batch: LogBatch) -> None:
        record = OutgoingRecord(
            self.settings.logs_topic,
            batch.key.hex().encode() or None,
            batch.raw,
            record_headers(batch.tenant, batch.received_at_ns, actor=batch.sent_by or None),
        )
        if len(batch.raw) > self.settings.max_record_bytes:
            raise SinkRejected(
                f"logs request of {len(batch.raw)} bytes is over the record limit of "
                f"{self.settings.max_record_bytes}; send smaller batches",
                status=413,
            )
        try:
            self._producer.send([record], timeout=self.settings.produce_timeout_s)
        except RecordTooLarge as exc:
            raise SinkRejected(f"record refused as too large: {exc}", status=413) from exc
        except TransportError as exc:
            raise SinkUnavailable(
                f"Kafka did not acknowledge the logs: {exc}", retry_after=2
            ) from exc

    def ready(self) -> bool:
        return bool(self._producer.ready(self.settings.logs_topic))

    def close(self) -> None:
        self._producer.close()
