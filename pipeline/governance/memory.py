"""``MemoryLog``: the record log's test double (records kept in a list)."""

from __future__ import annotations

import threading
from typing import Any

from agentledger.pipeline.governance.base import GovernanceUnavailable, RecordLog
from agentledger.schemas.records import Record, RecordKind

__all__ = ["MemoryLog"]


class MemoryLog(RecordLog):
    """Keeps appended records; ``unavailable`` makes ``append`` fail as a down store would."""

    def __init__(self) -> None:
        self.records: list[tuple[Record, str]] = []
        self.unavailable: str | None = None
        self._lock = threading.Lock()

    def append(self, record: Record, key: str) -> None:
        if self.unavailable:
            raise GovernanceUnavailable(self.unavailable)
        with self._lock:
            self.records.append((record, key))

    def rows(self, kind: RecordKind) -> list[dict[str, Any]]:
        """The bodies of the records of ``kind``, in the order they were appended."""
        with self._lock:
            return [r.fields() for r, _ in self.records if r.kind is kind]
