"""Sinks: where the collector hands accepted OTLP requests off."""

from agentledger.pipeline.sinks.base import (
    IngestBatch,
    Sink,
    SinkError,
    SinkRejected,
    SinkUnavailable,
)
from agentledger.pipeline.sinks.memory import MemorySink

__all__ = ["IngestBatch", "Sink", "SinkError", "SinkRejected", "SinkUnavailable", "MemorySink"]
