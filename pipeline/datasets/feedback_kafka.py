"""Feedback over Kafka: the collector produces to the feedback topic, the pipeline consumes it.

Record layout, like the spans topic's: value = the :class:`FeedbackRecord` as
JSON, key = its trace id (else span id), headers = tenant, receive time and
schema version (``agentledger-tenant`` is authoritative, as the collector
stamped it from the API key).

The consumer stores a batch, then commits its offsets: a crash in between
re-reads the batch, and the deduplicating ``feedback`` table (plus an insert
token derived from the offsets) keeps one row per feedback. A record that is
not a feedback goes to the dead-letter topic with the error in its headers.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from agentledger.pipeline.datasets.feedback import FeedbackRecord, resolve_trace_ids, write_feedback
from agentledger.pipeline.kafka_io import (
    KafkaUnavailable,
    header_map,
    producer_config,
    record_headers,
    translate,
)
from agentledger.pipeline.settings import KafkaSettings
from agentledger.pipeline.stores import Store, StoreRejected, StoreUnavailable
from agentledger.schemas.topics import Headers
from pydantic import ValidationError

__all__ = ["FeedbackConsumer", "FeedbackConsumerStats", "FeedbackProducer"]

log = logging.getLogger(__name__)


class FeedbackProducer:
    """Sends feedback records with acks=all; ``send`` returns once the broker has them all."""

    def __init__(self, settings: KafkaSettings) -> None:
        from kafka import KafkaProducer

        self.settings = settings
        try:
            self._producer: Any = KafkaProducer(**producer_config(settings))
        except Exception as exc:
            raise translate(exc) from exc

    def send(self, records: list[FeedbackRecord], received_at_ns: int | None = None) -> None:
        """Raises KafkaUnavailable when the broker did not acknowledge every record in time."""
        received = received_at_ns or time.time_ns()
        deadline = time.monotonic() + self.settings.produce_timeout_s
        try:
            futures = [
                self._producer.send(self.settings.feedback_topic, key=(r.trace_id or r.span_id).encode(),
                                    value=r.to_json(), headers=record_headers(r.tenant, received))
                for r in records
            ]
            self._producer.flush(timeout=max(0.1, deadline - time.monotonic()))
            for future in futures:
                future.get(timeout=max(0.1, deadline - time.monotonic()))
        except Exception as exc:
            raise KafkaUnavailable(f"Kafka did not acknowledge the feedback: {translate(exc)}") from exc

    def close(self) -> None:
        try:
            self._producer.close(timeout=10)
        except Exception:  # closing after a broker loss must not raise
            log.warning("closing the feedback producer failed", exc_info=True)


@dataclass
class FeedbackConsumerStats:
    """Counters of the feedback consumer."""

    records: int = 0
    stored: int = 0
    batches: int = 0
    dead_letters: int = 0
    store_retries: int = 0
    started_at: float = field(default_factory=time.time)


class FeedbackConsumer:
    """Consumes the feedback topic into the store. ``run()`` blocks until ``stop()``.

    Group ``<group_id>-feedback``, so it keeps its own offsets beside the span consumer's.
    """

    def __init__(self, kafka: KafkaSettings, store: Store, *, default_tenant: str = "default",
                 batch_max: int = 5_000, batch_seconds: float = 0.5, retry_max_seconds: float = 30.0) -> None:
        from agentledger.pipeline.kafka_io import ensure_topics
        from kafka import KafkaConsumer, KafkaProducer

        if not kafka.bootstrap_servers:
            raise ValueError("the feedback consumer needs AGENTLEDGER_KAFKA_BOOTSTRAP_SERVERS")
        self.kafka = kafka
        self.store = store
        self.default_tenant = default_tenant
        self.batch_max = batch_max
        self.batch_seconds = batch_seconds
        self.retry_max_seconds = retry_max_seconds
        self.stats = FeedbackConsumerStats()
        self._stop = threading.Event()
        try:
            ensure_topics(kafka)
            self._consumer: Any = KafkaConsumer(
                kafka.feedback_topic,
                bootstrap_servers=kafka.bootstrap_servers,
                client_id=f"{kafka.client_id}-feedback",
                group_id=f"{kafka.group_id}-feedback",
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                max_poll_records=batch_max,
                session_timeout_ms=10_000,
                heartbeat_interval_ms=3_000,
            )
            self._dlq: Any = KafkaProducer(**producer_config(kafka))
        except Exception as exc:
            raise translate(exc) from exc

    def stop(self) -> None:
        """Finish the current batch, commit, and return from ``run()``."""
        self._stop.set()

    def run(self) -> None:
        log.info("consuming %s as group %s-feedback", self.kafka.feedback_topic, self.kafka.group_id)
        try:
            while not self._stop.is_set():
                batch = self._poll()
                if batch:
                    self._process(batch)
        finally:
            closers: list[Callable[[], Any]] = [lambda: self._dlq.flush(timeout=10), lambda: self._dlq.close(timeout=10),
                                                lambda: self._consumer.close(autocommit=False)]
            for closer in closers:
                try:
                    closer()
                except Exception:
                    log.warning("closing a Kafka client failed", exc_info=True)

    def _poll(self) -> list[Any]:
        records: list[Any] = []
        deadline = time.monotonic() + self.batch_seconds
        while len(records) < self.batch_max and not self._stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            polled = self._consumer.poll(timeout_ms=int(min(remaining, 0.5) * 1000),
                                         max_records=self.batch_max - len(records))
            for part in polled.values():
                records.extend(part)
            if not polled and records:
                break
        return records

    def _decode(self, record: Any) -> FeedbackRecord | None:
        self.stats.records += 1
        headers = header_map(record.headers)
        try:
            data = orjson.loads(record.value or b"")
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")  # noqa: TRY004 - a bad record, as its JSON errors are
            data["tenant"] = headers.get(Headers.TENANT) or data.get("tenant") or self.default_tenant
            return FeedbackRecord.model_validate(data)
        except (ValueError, ValidationError) as exc:
            self._dead_letter(record, f"not a feedback record: {exc}", type(exc).__name__)
            return None

    def _process(self, batch: list[Any]) -> None:
        from kafka.structs import OffsetAndMetadata, TopicPartition

        records = [r for r in (self._decode(rec) for rec in batch) if r is not None]
        ranges: dict[tuple[str, int], list[int]] = {}
        for rec in batch:
            lo_hi = ranges.setdefault((rec.topic, rec.partition), [rec.offset, rec.offset])
            lo_hi[0], lo_hi[1] = min(lo_hi[0], rec.offset), max(lo_hi[1], rec.offset)
        token = "feedback-" + ",".join(f"{t}:{p}:{lo}-{hi}" for (t, p), (lo, hi) in sorted(ranges.items()))
        if records:
            self._store(records, token)
        try:
            self._dlq.flush(timeout=30)
            self._consumer.commit({TopicPartition(t, p): OffsetAndMetadata(hi + 1, "", -1)
                                   for (t, p), (_, hi) in ranges.items()})
        except Exception as exc:  # rebalanced away: the next owner re-reads; the table deduplicates
            log.warning("feedback offset commit failed (%s); records will be re-read", exc)
        self.stats.batches += 1

    def _store(self, records: list[FeedbackRecord], token: str) -> None:
        delay = 0.2
        while True:
            try:
                resolve_trace_ids(self.store, records)
                write_feedback(self.store, records, dedup_token=token)
                self.stats.stored += len(records)
                return
            except StoreUnavailable as exc:
                self.stats.store_retries += 1
                log.warning("store unavailable (%s); retrying feedback in %.1fs", exc, delay)
                if self._stop.wait(delay):
                    raise
                delay = min(delay * 2, self.retry_max_seconds)
            except StoreRejected as exc:
                log.error("store rejected %d feedback records: %s", len(records), exc)
                for r in records:
                    self._dlq.send(self.kafka.dead_letter_topic, value=r.to_json(),
                                   headers=record_headers(r.tenant, time.time_ns())
                                   + [(Headers.ERROR, str(exc)[:2000].encode()),
                                      (Headers.ERROR_CLASS, type(exc).__name__.encode())])
                    self.stats.dead_letters += 1
                return

    def _dead_letter(self, record: Any, error: str, error_class: str) -> None:
        headers = list(record.headers or []) + [
            (Headers.ERROR, error[:2000].encode()),
            (Headers.ERROR_CLASS, error_class.encode()),
            (Headers.SOURCE, f"{record.topic}/{record.partition}/{record.offset}".encode()),
        ]
        self._dlq.send(self.kafka.dead_letter_topic, key=record.key, value=record.value or b"", headers=headers)
        self.stats.dead_letters += 1
        log.warning("dead-lettered feedback %s/%s/%s: %s", record.topic, record.partition, record.offset, error)
