"""The record log: where governance records become durable before the collector answers.

``RecordLog.append`` returns only once the record is durable, which is what
"logged before taken" rests on: the collector acknowledges an intent (and the
governed tool runs) only after ``append`` returned. Implementations:
``StoreLog`` (group-committed inserts into the store: the embedded server, or any
collector with a store), ``KafkaLog`` (the intents topic, acks=all; the pipeline's
``IntentConsumer`` stores it) and ``MemoryLog`` (the test double).

Exceptions, by what the agent should do::

    RecordLogError
    ├── GovernanceUnavailable  retryable: store or broker down, timed out  -> HTTP 503 + Retry-After
    └── GovernanceRejected     permanent: the record can never be taken     -> HTTP 400 (or its status)
"""

from __future__ import annotations

import abc

from agentledger.schemas.records import Record

__all__ = ["RecordLog", "RecordLogError", "GovernanceUnavailable", "GovernanceRejected"]


class RecordLogError(Exception):
    """A governance record could not be taken (the agent side has its own `GovernanceError`)."""


class GovernanceUnavailable(RecordLogError):
    """Nothing was stored; asking again later may succeed."""

    def __init__(self, message: str, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class GovernanceRejected(RecordLogError):
    """The record can never be stored as it is."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class RecordLog(abc.ABC):
    """Makes governance records durable.

    Contract: ``append`` is called from many threads at once and blocks until the
    record is durable, or raises RecordLogError (then nothing is promised stored).
    It appends: nothing it does replaces or changes a stored record. Appending the
    same record twice may store it twice; readers of the record log count it once
    (same record id and body hash). ``close`` is safe to call twice.
    """

    @abc.abstractmethod
    def append(self, record: Record, key: str) -> None:
        """Make ``record`` durable or raise. ``key`` orders records that share it (the intent
        id of an intent and its outcome; the scope and target of a control)."""

    def close(self) -> None:
        """Release resources."""
