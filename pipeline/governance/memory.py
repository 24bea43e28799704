"""``MemoryLog``: the record log's test double (records kept in a list)."""

from __future__ import annotations

import threading
from typing import Any

from agentledger.pipeline.governance.base import GovernanceUnavailable, RecordLog
from agentledger.pipeline.governance.records import RecordType

__all__ = ["MemoryLog"]


class MemoryLog(RecordLog):
    """Keeps appended records; ``unavailable`` makes ``append`` fail as a down store would."""

    def __init__(self) -> None:
        self.records: list[tuple[RecordType, str, str, dict[str, Any]]] = []
        self.unavailable: str | None = None
        self._lock = threading.Lock()

    def append(self, kind: RecordType, tenant: str, key: str, row: dict[str, Any]) -> None:
        if self.unavailable:
            raise GovernanceUnavailable(self.unavailable)
        with self._lock:
            self.records.append((kind, tenant, key, dict(row)))

    def rows(self, kind: RecordType) -> list[dict[str, Any]]:
        with self._lock:
            return [row for k, _, _, row in self.records if k is kind]
