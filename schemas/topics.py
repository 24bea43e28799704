"""Kafka topic names and record header keys shared by collector and pipeline."""

from __future__ import annotations

from typing import Final

__all__ = [
    "SPANS_TOPIC",
    "LOGS_TOPIC",
    "DEAD_LETTER_TOPIC",
    "FEEDBACK_TOPIC",
    "INTENTS_TOPIC",
    "CONTROLS_TOPIC",
    "EMBEDDED_SOURCE",
    "SCHEMA_VERSION",
    "Headers",
]

SPANS_TOPIC: Final = "agentledger.spans"
"""OTLP ``ExportTraceServiceRequest`` records (``otlp_proto``), keyed by trace id."""
LOGS_TOPIC: Final = "agentledger.logs"
"""OTLP ``ExportLogsServiceRequest`` records (``otlp_proto``), one per request, keyed by its first
trace id; the pipeline's log consumer stores them."""
DEAD_LETTER_TOPIC: Final = "agentledger.spans.dlq"
"""Records that can never be stored, with the error in headers."""
FEEDBACK_TOPIC: Final = "agentledger.feedback"
"""Scores, labels and comments attached to traces and spans."""
INTENTS_TOPIC: Final = "agentledger.intents"
"""Intent records of governed tool calls, written before the tool runs."""
CONTROLS_TOPIC: Final = "agentledger.controls"
"""Run controls (pause, resume), compacted, keyed ``tenant/scope/target``: every collector
replica follows it from the beginning (the intents topic carries the same records to the store)."""
EMBEDDED_SOURCE: Final = "embedded"
"""``source_topic`` of rows stored by the embedded server (no Kafka)."""
SCHEMA_VERSION: Final = "1"
"""Version of the record layout, sent in the ``agentledger-schema`` header."""


class Headers:
    """Kafka record header keys."""

    TENANT = "agentledger-tenant"
    """Tenant the collector stamped from the API key."""
    RECEIVED_AT = "agentledger-received-at"
    """Receive time at the collector, Unix nanoseconds as decimal text."""
    ACTOR = "agentledger-actor"
    """Who sent the record, as the collector knows it (an API key's name or id, ``api``, ``cli``)."""
    AGENT = "agentledger-agent"
    """The one agent the sending key may send spans for (absent: any); the pipeline drops the
    spans of other agents."""
    SCHEMA = "agentledger-schema"
    """Record layout version."""
    ERROR = "agentledger-error"
    """Dead letters: why the record could not be stored."""
    ERROR_CLASS = "agentledger-error-class"
    """Dead letters: the exception class."""
    SOURCE = "agentledger-source"
    """Dead letters: topic/partition/offset the record came from."""
