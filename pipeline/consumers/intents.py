"""``IntentConsumer``: the intents topic into the record log (Kafka mode).

The collector produced each intent, outcome and control as a record of the record log
(``agentledger.schemas.records``) and acknowledged it once the broker had it; this consumer
appends them, with the loop every AgentLedger topic consumer runs
(:class:`~agentledger.pipeline.transport.batch.BatchConsumer`): poll a batch, append it with a
deduplication token built from its topic/partition/offset ranges, then commit offsets; store
unavailable -> retry with back-off, nothing committed; a record that can never be stored (its
body does not match its hash, or it is not a governance record) -> the dead-letter topic with
the error in headers. A record appended twice (a crash between insert and commit) is the same
record, which readers count once. Values produced before the record log (a table's row plus
``type``) are read as well.

Before storing, each batch is screened (``idempotency.screen``) against the store and the
records before it: a collector with no store (or another replica) cannot see every record, so
this is where what it could not decide is: a record made before (same key, same request) is
dropped (``stats.duplicates``); a conflicting one (same key, another request; a second,
different outcome; an outcome whose intent was never asked) goes to the dead-letter topic with
the reason (``stats.conflicts``) and is not stored.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field

import orjson

from agentledger.pipeline.consumers.side_topic import SideTopicConsumer
from agentledger.pipeline.governance.idempotency import DUPLICATE, screen
from agentledger.pipeline.governance.records import legacy_record
from agentledger.pipeline.settings import KafkaSettings, PipelineSettings
from agentledger.pipeline.store import Store, StoreRejected
from agentledger.pipeline.store.records import append_records
from agentledger.pipeline.transport.base import IncomingRecord, Transport
from agentledger.pipeline.transport.batch import BatchStats
from agentledger.pipeline.transport.records import header_map
from agentledger.schemas.records import Record, RecordKind
from agentledger.schemas.topics import Headers

__all__ = ["IntentConsumer", "IntentConsumerStats"]

log = logging.getLogger(__name__)

_GOVERNANCE = frozenset({RecordKind.INTENT, RecordKind.OUTCOME, RecordKind.CONTROL})


@dataclass
class IntentConsumerStats(BatchStats):
    stored: dict[str, int] = field(default_factory=dict)
    """Records stored, by kind."""
    duplicates: int = 0
    """Records dropped as made before (same key and request)."""
    conflicts: int = 0
    """Records dead-lettered as conflicting with one made before, or outcomes without intent."""


@dataclass
class _Item:
    incoming: IncomingRecord
    record: Record


class IntentConsumer(SideTopicConsumer[_Item]):
    """Consumes the settings' ``intents_topic`` into a store. ``run()`` blocks until ``stop()``.

    Its consumer group is ``<group_id>.governance``, so it runs beside the span
    consumer (same process or not) without sharing offsets. ``transport``: a Transport, or
    KafkaSettings to build a KafkaTransport from (transitional).
    """

    topic_setting = "intents_topic"
    group_suffix = ".governance"
    client_suffix = "-governance"

    def __init__(
        self,
        transport: Transport | KafkaSettings,
        pipeline: PipelineSettings,
        store: Store,
        *,
        default_tenant: str = "default",
    ) -> None:
        self.settings = pipeline
        super().__init__(
            transport,
            store,
            stats=IntentConsumerStats(),
            default_tenant=default_tenant,
            batch_max=pipeline.batch_max_spans,
            batch_seconds=pipeline.batch_max_seconds,
            retry_max_seconds=pipeline.retry_max_seconds,
            max_poll_records=5000,
        )
        self.stats: IntentConsumerStats

    def decode(self, record: IncomingRecord) -> _Item | None:
        try:
            value = orjson.loads(record.value or b"")
            tenant = header_map(record.headers).get(Headers.TENANT)
            if "type" in value:  # produced before the record log: a table's row
                kind = value.pop("type")
                value["tenant"] = tenant or value.get("tenant") or self.default_tenant
                decoded = legacy_record(kind, value)
            else:
                decoded = Record.from_json(value)
                if tenant and tenant != decoded.tenant:  # the header the collector stamped wins
                    decoded = dataclasses.replace(decoded, tenant=tenant)
            if decoded.kind not in _GOVERNANCE:
                raise ValueError(f"{decoded.kind.value} records do not go on the intents topic")
        except Exception as exc:
            self.dead_letter(
                record, f"not a governance record: {type(exc).__name__}: {exc}", type(exc).__name__
            )
            return None
        return _Item(record, decoded)

    def handle(self, items: list[_Item], token: str) -> None:
        verdicts = self.retry_unavailable(lambda: screen(self.store, [i.record for i in items]))
        kept: list[_Item] = []
        for item, verdict in zip(items, verdicts, strict=True):
            if verdict is None:
                kept.append(item)
            elif verdict == DUPLICATE:
                self.stats.duplicates += 1
            else:
                self.stats.conflicts += 1
                self.dead_letter(item.incoming, f"conflict: {verdict}", "IdempotencyConflict")
        if kept:
            self._insert(kept, f"{token}/records")

    def _insert(self, items: list[_Item], token: str) -> None:
        try:
            self.retry_unavailable(
                lambda: append_records(self.store, [i.record for i in items], dedup_token=token)
            )
        except StoreRejected as exc:
            if len(items) == 1:
                self.dead_letter(
                    items[0].incoming, f"store refused the record: {exc}", type(exc).__name__
                )
                return
            for item in items:  # find the record it refuses; store the others
                self._insert([item], f"{token}/{item.incoming.partition}-{item.incoming.offset}")
            return
        for item in items:
            kind = item.record.kind.value
            self.stats.stored[kind] = self.stats.stored.get(kind, 0) + 1
