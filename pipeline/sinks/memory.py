"""In-memory sink: the test double for ``Sink``."""

from __future__ import annotations

import threading

from agentledger.pipeline.sinks.base import IngestBatch, Sink, SinkError

__all__ = ["MemorySink"]


class MemorySink(Sink):
    """Keeps every batch in a list; ``fail_with`` makes the next writes raise."""

    def __init__(self) -> None:
        self.batches: list[IngestBatch] = []
        self.fail_with: SinkError | None = None
        self.is_ready = True
        self._lock = threading.Lock()

    def write(self, batch: IngestBatch) -> None:
        if self.fail_with is not None:
            raise self.fail_with
        with self._lock:
            self.batches.append(batch)

    def ready(self) -> bool:
        return self.is_ready

    @property
    def span_count(self) -> int:
        return sum(b.span_count for b in self.batches)
