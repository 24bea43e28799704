"""Feedback on the feedback topic: what a Kafka collector makes durable before it answers.

The producer is built on first use (``Lazy`` in the composition root), so a collector
starts while the broker is still coming up; the pipeline's ``FeedbackConsumer``
stores what the topic holds.
"""

from __future__ import annotations

from agentledger.pipeline.consumers.feedback import FeedbackProducer
from agentledger.pipeline.services.datasets.feedback import FeedbackRecord, FeedbackUnavailable
from agentledger.pipeline.transport import Transport, TransportError

__all__ = ["TopicFeedbackLog"]


class TopicFeedbackLog:
    """A ``FeedbackLog`` whose records are durable once the broker acknowledged them (acks=all)."""

    durable_in = "kafka"

    def __init__(self, transport: Transport) -> None:
        try:
            self._producer = FeedbackProducer(transport)
        except TransportError as exc:
            raise FeedbackUnavailable(str(exc)) from exc

    def append(
        self, records: list[FeedbackRecord], received_at_ns: int, *, actor: str | None = None
    ) -> None:
        try:
            self._producer.send(records, received_at_ns, actor=actor)
        except TransportError as exc:
            raise FeedbackUnavailable(str(exc)) from exc

    def close(self) -> None:
        self._producer.close()
