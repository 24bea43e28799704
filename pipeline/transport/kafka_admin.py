"""``KafkaAdmin``: topics and consumer-group lag, behind the transport's ``Admin``."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer
from kafka import errors as ke
from kafka.admin import NewTopic
from kafka.structs import TopicPartition as KafkaTopicPartition

from agentledger.pipeline.settings import KafkaSettings
from agentledger.pipeline.transport.base import PartitionLag
from agentledger.pipeline.transport.kafka_setup import _boundary, security_config

__all__ = ["KafkaAdmin"]

log = logging.getLogger(__name__)


class KafkaAdmin:
    """``KafkaAdminClient`` (and a group-less consumer for end offsets) behind ``Admin``."""

    def __init__(
        self,
        settings: KafkaSettings,
        *,
        timeout: float = 10.0,
        security: Mapping[str, Any] | None = None,
    ) -> None:
        self._settings = settings
        self._security = security_config(settings) if security is None else security
        self._timeout_ms = int(timeout * 1000)
        self._offsets: Any = None  # a group-less consumer for end offsets, made on first use
        with _boundary(settings):
            self._client: Any = KafkaAdminClient(
                **self._security,
                bootstrap_servers=settings.bootstrap_servers,
                client_id=settings.client_id,
                request_timeout_ms=self._timeout_ms,
            )

    def ensure_topics(
        self, topics: Sequence[str] | None = None, *, compacted: bool = False
    ) -> list[str]:
        s = self._settings
        if topics is None:
            plain = (
                s.spans_topic,
                s.logs_topic,
                s.dead_letter_topic,
                s.feedback_topic,
                s.intents_topic,
            )
            return self.ensure_topics(plain) + self.ensure_topics(
                [s.controls_topic], compacted=True
            )
        wanted = list(topics)
        configs = {"max.message.bytes": str(s.max_record_bytes + 64 * 1024)}
        if compacted:  # the latest record per key is kept for good: no time retention
            configs["cleanup.policy"] = "compact"
        else:
            configs["retention.ms"] = str(s.retention_ms)
        created: list[str] = []
        with _boundary():
            existing = set(self._client.list_topics())
            missing = [t for t in wanted if t not in existing]
            if missing:
                try:
                    self._client.create_topics(
                        [
                            NewTopic(t, s.partitions, s.replication_factor, topic_configs=configs)
                            for t in missing
                        ]
                    )
                    created = missing
                except ke.TopicAlreadyExistsError:  # another replica created them first
                    pass
        if created:
            log.info("created Kafka topics %s", created)
        return created

    def group_lag(self, group_id: str, topic: str) -> list[PartitionLag]:
        """Kept open between calls (a metrics endpoint asks every few seconds): its end-offsets
        consumer too, so a query costs two requests rather than a new connection."""
        with _boundary(self._settings):
            if self._offsets is None:
                self._offsets = KafkaConsumer(
                    **self._security,
                    bootstrap_servers=self._settings.bootstrap_servers,
                    client_id=self._settings.client_id,
                    request_timeout_ms=self._timeout_ms,
                )
            partitions = self._offsets.partitions_for_topic(topic) or set()
            tps = [KafkaTopicPartition(topic, p) for p in sorted(partitions)]
            ends = self._offsets.end_offsets(tps)
            committed = self._client.list_group_offsets({group_id: None}).get(group_id, {})
        rows = []
        for tp in tps:
            done = committed.get(tp)
            offset = done.offset if done is not None and done.offset >= 0 else 0
            rows.append(PartitionLag(topic, tp.partition, offset, ends[tp]))
        return rows

    def close(self) -> None:
        for client in (self._offsets, self._client):
            try:
                if client is not None:
                    client.close()
            except Exception:
                log.warning("closing a Kafka admin client failed", exc_info=True)

    def __enter__(self) -> KafkaAdmin:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
