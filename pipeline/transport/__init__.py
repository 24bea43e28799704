"""Kafka in and out: producers, subscriptions, topics, dead letters, and the batching loop.

The interface is in ``base`` (``Transport``, ``Producer``, ``Subscription``, ``Admin``, the
record types and the exceptions); ``kafka.KafkaTransport`` is the kafka-python implementation
(the only module that imports ``kafka``), ``MemoryTransport`` the test double. ``records`` is
the layout of our topics; ``batch.BatchConsumer`` the poll -> store -> commit loop every topic
consumer runs.
"""

from agentledger.pipeline.transport.base import (
    Admin,
    CommitFailed,
    Follower,
    HeaderList,
    IncomingRecord,
    OutgoingRecord,
    PartitionLag,
    Producer,
    RecordTooLarge,
    Subscription,
    TopicPartition,
    Transport,
    TransportError,
    TransportUnavailable,
    resolve,
)
from agentledger.pipeline.transport.memory import MemoryTransport
from agentledger.pipeline.transport.records import header_map, record_headers, split_by_trace

__all__ = [
    "Admin",
    "CommitFailed",
    "Follower",
    "HeaderList",
    "IncomingRecord",
    "OutgoingRecord",
    "PartitionLag",
    "Producer",
    "RecordTooLarge",
    "Subscription",
    "TopicPartition",
    "Transport",
    "TransportError",
    "TransportUnavailable",
    "resolve",
    "MemoryTransport",
    "header_map",
    "record_headers",
    "split_by_trace",
]
