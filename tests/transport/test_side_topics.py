"""The logs, feedback and intents consumers share one base (``consumers/side_topic.py``): each
still reads its own topic in its own consumer group (operators watch those groups' lag, so the
names must not change), and the shared loop dead-letters what it cannot read and commits it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from agentledger.pipeline.consumers.feedback import FeedbackConsumer
from agentledger.pipeline.consumers.intents import IntentConsumer
from agentledger.pipeline.consumers.logs import LogConsumer
from agentledger.pipeline.settings import PipelineSettings
from agentledger.pipeline.store.embedded import EmbeddedStore
from agentledger.pipeline.transport import MemoryTransport
from agentledger.pipeline.transport.base import OutgoingRecord, TopicPartition
from tests.transport.conftest import Running, wait_for

pytestmark = pytest.mark.unit

Make = Callable[[MemoryTransport, EmbeddedStore], Any]

CONSUMERS: dict[str, tuple[Make, str, str]] = {
    "logs": (lambda t, s: LogConsumer(t, s), "logs", "pipeline-logs"),
    "feedback": (lambda t, s: FeedbackConsumer(t, s), "feedback", "pipeline-feedback"),
    "intents": (
        lambda t, s: IntentConsumer(t, PipelineSettings(), s),
        "intents",
        "pipeline.governance",
    ),
}


@pytest.mark.parametrize("name", sorted(CONSUMERS))
def test_each_side_topic_keeps_its_topic_and_group_and_dead_letters_garbage(
    name: str, transport: MemoryTransport, store: EmbeddedStore
) -> None:
    make, topic, group = CONSUMERS[name]
    consumer = make(transport, store)
    assert (consumer.topic, consumer.group_id, consumer.store) == (topic, group, store)
    assert consumer.default_tenant == "default"
    garbage = b"\xffnot a record"
    transport.producer().send([OutgoingRecord(topic, b"k", garbage, [])], 1)
    (sent,) = transport.records(topic)
    with Running(consumer):
        wait_for(
            lambda: (
                transport.committed(group)
                == {TopicPartition(topic, sent.partition): sent.offset + 1}
            ),
            f"the {name} group committed the record",
        )
    (dead,) = transport.records("spans.dlq")
    assert dead.value == garbage
    assert consumer.stats.dead_letters == 1
