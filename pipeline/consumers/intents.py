"""``IntentConsumer``: the intents topic into the governance tables (Kafka mode).

The collector produced each intent, outcome and control as a JSON record and
acknowledged it once the broker had it; this consumer stores them, with the loop
every AgentLedger topic consumer runs (:class:`~agentledger.pipeline.transport.batch.BatchConsumer`):
poll a batch, insert it with a deduplication token built from its
topic/partition/offset ranges, then commit offsets; store unavailable -> retry
with back-off, nothing committed; a record that can never be stored -> the
dead-letter topic with the error in headers. Rows the tables receive twice
(a crash between insert and commit) collapse on their sorting key (``FINAL``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import orjson

from agentledger.pipeline.governance.records import RecordType, to_arrow
from agentledger.pipeline.governance.store_log import TABLES
from agentledger.pipeline.settings import KafkaSettings, PipelineSettings
from agentledger.pipeline.store import Store, StoreRejected
from agentledger.pipeline.transport.base import IncomingRecord, Transport, resolve
from agentledger.pipeline.transport.batch import BatchConsumer, BatchStats
from agentledger.pipeline.transport.records import header_map
from agentledger.schemas.topics import Headers

__all__ = ["IntentConsumer", "IntentConsumerStats"]

log = logging.getLogger(__name__)


@dataclass
class IntentConsumerStats(BatchStats):
    stored: dict[str, int] = field(default_factory=dict)
    """Rows stored, by table."""


@dataclass
class _Item:
    record: IncomingRecord
    table: str
    row: dict[str, Any]


class IntentConsumer(BatchConsumer[_Item]):
    """Consumes the settings' ``intents_topic`` into a store. ``run()`` blocks until ``stop()``.

    Its consumer group is ``<group_id>.governance``, so it runs beside the span
    consumer (same process or not) without sharing offsets. ``transport``: a Transport, or
    KafkaSettings to build a KafkaTransport from (transitional).
    """

    def __init__(
        self,
        transport: Transport | KafkaSettings,
        pipeline: PipelineSettings,
        store: Store,
        *,
        default_tenant: str = "default",
    ) -> None:
        self.settings = pipeline
        self.store = store
        self.default_tenant = default_tenant
        transport = resolve(transport)
        kafka = transport.settings
        super().__init__(
            transport,
            topic=kafka.intents_topic,
            group_id=f"{kafka.group_id}.governance",
            client_id=f"{kafka.client_id}-governance",
            stats=IntentConsumerStats(),
            batch_max=pipeline.batch_max_spans,
            batch_seconds=pipeline.batch_max_seconds,
            retry_max_seconds=pipeline.retry_max_seconds,
            max_poll_records=5000,
        )
        self.stats: IntentConsumerStats

    def decode(self, record: IncomingRecord) -> _Item | None:
        try:
            value = orjson.loads(record.value or b"")
            kind = RecordType(value.pop("type"))
            tenant = (
                header_map(record.headers).get(Headers.TENANT)
                or value.get("tenant")
                or self.default_tenant
            )
            value["tenant"] = tenant
            table = TABLES[kind]
            to_arrow(table, [value])  # the row must fit its table; else it is a dead letter now
        except Exception as exc:
            self.dead_letter(
                record, f"not a governance record: {type(exc).__name__}: {exc}", type(exc).__name__
            )
            return None
        return _Item(record, table, value)

    def handle(self, items: list[_Item], token: str) -> None:
        by_table: dict[str, list[_Item]] = {}
        for item in items:
            by_table.setdefault(item.table, []).append(item)
        for table, rows in by_table.items():
            self._insert(table, rows, f"{token}/{table}")

    def _insert(self, table: str, items: list[_Item], token: str) -> None:
        try:
            self.retry_unavailable(
                lambda: self.store.insert_arrow(
                    table, to_arrow(table, [i.row for i in items]), dedup_token=token
                )
            )
        except StoreRejected as exc:
            if len(items) == 1:
                self.dead_letter(
                    items[0].record, f"store refused the row: {exc}", type(exc).__name__
                )
                return
            for item in items:  # find the row it refuses; store the others
                self._insert(table, [item], f"{token}/{item.record.partition}-{item.record.offset}")
            return
        self.stats.stored[table] = self.stats.stored.get(table, 0) + len(items)
