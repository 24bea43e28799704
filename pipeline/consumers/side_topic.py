"""``SideTopicConsumer``: what the consumers of the logs, feedback and intents topics share.

Each runs the ``BatchConsumer`` loop on one topic of ``KafkaSettings`` into a store, in a
consumer group of its own beside the span consumer's (``<group_id><suffix>``), so that each
keeps its own offsets whether or not they share a process. A subclass names its topic (the
``KafkaSettings`` attribute) and its suffixes; its stats, batch bounds and poll size are its
constructor's choice. Which group a topic is read in is part of the deployment (operators
watch its lag), so the suffixes must not change.
"""

from __future__ import annotations

from typing import ClassVar, TypeVar

from agentledger.pipeline.settings import KafkaSettings
from agentledger.pipeline.store import Store
from agentledger.pipeline.transport.base import Transport, resolve
from agentledger.pipeline.transport.batch import BatchConsumer, BatchStats

__all__ = ["SideTopicConsumer"]

T = TypeVar("T")


class SideTopicConsumer(BatchConsumer[T]):
    """A side topic into ``store``. ``run()`` blocks until ``stop()``.

    ``transport``: a Transport, or KafkaSettings to build a KafkaTransport from (transitional).
    """

    topic_setting: ClassVar[str]
    """The ``KafkaSettings`` attribute that names the topic (``logs_topic``...)."""
    group_suffix: ClassVar[str]
    """Appended to the settings' ``group_id``: the consumer group of this topic."""
    client_suffix: ClassVar[str]
    """Appended to the settings' ``client_id``."""

    def __init__(
        self,
        transport: Transport | KafkaSettings,
        store: Store,
        *,
        stats: BatchStats,
        default_tenant: str,
        batch_max: int,
        batch_seconds: float,
        retry_max_seconds: float,
        max_poll_records: int,
    ) -> None:
        self.store = store
        self.default_tenant = default_tenant
        transport = resolve(transport)
        kafka = transport.settings
        super().__init__(
            transport,
            topic=getattr(kafka, self.topic_setting),
            group_id=f"{kafka.group_id}{self.group_suffix}",
            client_id=f"{kafka.client_id}{self.client_suffix}",
            stats=stats,
            batch_max=batch_max,
            batch_seconds=batch_seconds,
            retry_max_seconds=retry_max_seconds,
            max_poll_records=max_poll_records,
        )
