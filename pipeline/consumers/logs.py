"""The logs consumer: Kafka logs topic -> log normalizer -> store, exactly-once results.

Like the spans consumer (``consumers/spans.py``): a batch of records is normalized and inserted
under a token derived from its topic/partition/offset range, and only then are the offsets
committed. A crash in between re-reads the batch, and the token (same batch) or the ``logs``
table's deduplicating key (``log_id``: any re-batching) keeps the result exact. A record that
does not parse as an ``ExportLogsServiceRequest`` goes to the dead-letter topic with the error in
its headers, and the consumer goes on. Group ``<group_id>-logs``: its offsets are its own.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from agentledger.pipeline.consumers.side_topic import SideTopicConsumer
from agentledger.pipeline.normalize.base import NormalizeError, SourcePosition
from agentledger.pipeline.normalize.logs import count_log_records, normalize_logs, parse_logs
from agentledger.pipeline.settings import KafkaSettings
from agentledger.pipeline.sinks.logs import write_logs
from agentledger.pipeline.store import Store, StoreRejected
from agentledger.pipeline.transport.base import IncomingRecord, Transport
from agentledger.pipeline.transport.batch import BatchStats, position_token
from agentledger.pipeline.transport.records import header_map, record_headers
from agentledger.schemas.topics import Headers

__all__ = ["LogConsumer", "LogConsumerStats"]

log = logging.getLogger(__name__)


@dataclass
class LogConsumerStats(BatchStats):
    """Counters of the logs consumer."""

    log_records: int = 0
    """Log records stored (``records`` counts the Kafka records read)."""


@dataclass
class _Item:
    position: SourcePosition
    raw: bytes
    records: int
    sent_by: str


class LogConsumer(SideTopicConsumer[_Item]):
    """Consumes the logs topic into a store. ``run()`` blocks until ``stop()``."""

    topic_setting = "logs_topic"
    group_suffix = client_suffix = "-logs"

    def __init__(
        self,
        transport: Transport | KafkaSettings,
        store: Store,
        *,
        default_tenant: str = "default",
        batch_max: int = 20_000,
        batch_seconds: float = 0.5,
        retry_max_seconds: float = 30.0,
    ) -> None:
        super().__init__(
            transport,
            store,
            stats=LogConsumerStats(),
            default_tenant=default_tenant,
            batch_max=batch_max,
            batch_seconds=batch_seconds,
            retry_max_seconds=retry_max_seconds,
            max_poll_records=2000,
        )
        self.stats: LogConsumerStats

    def decode(self, record: IncomingRecord) -> _Item | None:
        headers = header_map(record.headers)
        value = record.value or b""
        try:
            records = count_log_records(parse_logs(value))
        except NormalizeError as exc:
            self.dead_letter(record, str(exc), type(exc).__name__)
            return None
        received = headers.get(Headers.RECEIVED_AT, "")
        position = SourcePosition(
            headers.get(Headers.TENANT) or self.default_tenant,
            int(received) if received.isdigit() else record.timestamp_ms * 1_000_000,
            record.topic,
            record.partition,
            record.offset,
        )
        return _Item(position, value, records, headers.get(Headers.ACTOR, ""))

    def weight(self, item: _Item) -> int:
        return max(1, item.records)

    def handle(self, items: list[_Item], token: str) -> None:
        """Store the batch; a batch the store rejects is stored record by record, and the records
        it still rejects are dead-lettered."""
        try:
            self._store(items, f"logs-{token}")
        except StoreRejected as exc:
            log.warning("logs batch of %d records rejected (%s); one by one", len(items), exc)
            for item in items:
                p = item.position
                try:
                    self._store(
                        [item], f"logs-{position_token([(p.topic, p.partition, p.offset)])}"
                    )
                except StoreRejected as exc2:
                    self.dead_letter_value(
                        item.raw,
                        record_headers(p.tenant, p.received_at_ns),
                        str(exc2),
                        type(exc2).__name__,
                        f"{p.topic}/{p.partition}/{p.offset}",
                    )

    def _store(self, items: list[_Item], token: str) -> None:
        batch = normalize_logs([(i.raw, i.position, i.sent_by) for i in items])
        self.retry_unavailable(lambda: write_logs(self.store, batch, token))
        self.stats.log_records += batch.count
