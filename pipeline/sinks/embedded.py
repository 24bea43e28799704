"""Embedded sink: normalize and store in-process, acknowledging after the insert.

Requests from many HTTP handlers are group-committed: handlers enqueue and
wait; a normalizing thread takes everything queued and normalizes it, and a
writer thread inserts it, then wakes the handlers. The two stages overlap (the
store's engine runs without the GIL), and what queues up while an insert runs
goes into the next insert together: small requests thus share one insert
instead of paying one each. Each request gets a sequence number (the embedded
stand-in for a Kafka offset); a group's deduplication token is its sequence
range, so a retried insert stores nothing twice.

A span re-sent with the ids of a stored span but other content is kept as a conflict and the
stored version stands (``StoreWriter``); the insert tells which, so each handler answers with the
conflicts of its own request (OTLP partial success: ``SinkResult``).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from agentledger.pipeline.normalize import NormalizedBatch, Normalizer, SourcePosition
from agentledger.pipeline.sinks.agents import drop_foreign_agents, foreign_agent_message
from agentledger.pipeline.sinks.base import (
    IngestBatch,
    Sink,
    SinkRejected,
    SinkResult,
    SinkUnavailable,
)
from agentledger.pipeline.store import Store, StoreError, StoreUnavailable
from agentledger.pipeline.store.writer import StoreWriter, WriteResult
from agentledger.schemas.topics import EMBEDDED_SOURCE

__all__ = ["EmbeddedSink"]

log = logging.getLogger(__name__)


@dataclass
class _Pending:
    batch: IngestBatch
    done: threading.Event = field(default_factory=threading.Event)
    error: Exception | None = None
    offset: int = 0  # the request's sequence number, the source_offset of its rows
    result: SinkResult | None = None
    foreign: list[str] = field(default_factory=list)  # agents of the spans refused (sinks.agents)


class EmbeddedSink(Sink):
    """Group-committing sink into a store.

    ``max_queued_spans`` bounds memory: beyond it ``write`` raises
    SinkUnavailable (HTTP 503) instead of queueing without limit.
    """

    def __init__(
        self,
        store: Store,
        normalizer: Normalizer,
        *,
        max_batch_spans: int = 50_000,
        max_queued_spans: int = 200_000,
        write_timeout: float = 60.0,
        writer: StoreWriter | None = None,
    ) -> None:
        self.store = store
        self.normalizer = normalizer
        self.writer = writer or StoreWriter(store)
        self.max_batch_spans = max_batch_spans
        self.max_queued_spans = max_queued_spans
        self.write_timeout = write_timeout
        self._queue: deque[_Pending] = deque()
        self._queued_spans = 0
        self._cv = threading.Condition()
        self._closed = False
        self._healthy = True
        last = store.query_scalar(
            "SELECT max(source_offset) FROM spans WHERE source_topic = {topic:String}",
            {"topic": EMBEDDED_SOURCE},
        )
        self._next_seq = int(last or 0) + 1
        # Tokens carry a per-process epoch: after a restart the sequence resumes from what the
        # spans table holds, and a batch that half-landed before the restart must not make a
        # new batch with the same sequence range look like a duplicate.
        self._epoch = f"{time.time_ns():x}"
        self.stored_spans = 0
        self.stored_requests = 0
        self.unchanged_spans = 0  # re-sent unchanged: dropped, stored once
        self.conflict_spans = 0  # re-sent changed: kept as conflicts
        self.foreign_agent_spans = 0  # sent by a key bound to another agent: refused
        self._last_stored = float("-inf")  # monotonic time of the last stored group
        self._handoff: queue.Queue[_Prepared | None] = queue.Queue(maxsize=2)
        self._thread = threading.Thread(
            target=self._run, name="agentledger-embedded-normalizer", daemon=True
        )
        self._writer_thread = threading.Thread(
            target=self._write_loop, name="agentledger-embedded-writer", daemon=True
        )
        self._thread.start()
        self._writer_thread.start()

    def write(self, batch: IngestBatch) -> SinkResult | None:
        item = _Pending(batch)
        with self._cv:
            if self._closed:
                raise SinkUnavailable("embedded sink is shutting down", retry_after=5)
            if self._queued_spans + batch.span_count > self.max_queued_spans and self._queue:
                raise SinkUnavailable(
                    f"ingest queue full ({self._queued_spans} spans waiting)", retry_after=1
                )
            self._queue.append(item)
            self._queued_spans += batch.span_count
            self._cv.notify()
        if not item.done.wait(self.write_timeout):
            raise SinkUnavailable(
                f"store did not confirm the write within {self.write_timeout:.0f}s"
            )
        if item.error is not None:
            raise item.error
        return item.result

    def busy(self) -> bool:
        """Requests are waiting or were stored in the last ``_BUSY_WINDOW_S``: background jobs
        hold off (``JobScheduler``)."""
        if self._queued_spans > 0 or not self._handoff.empty():
            return True
        return time.monotonic() - self._last_stored < _BUSY_WINDOW_S

    def ready(self) -> bool:
        return (
            self._healthy
            and not self._closed
            and self._thread.is_alive()
            and self._writer_thread.is_alive()
        )

    def close(self) -> None:
        with self._cv:
            self._closed = True
            self._cv.notify_all()
        self._thread.join(timeout=self.write_timeout)
        self._writer_thread.join(timeout=self.write_timeout)

    # -- writer thread ---------------------------------------------------------------------------

    def _take(self) -> list[_Pending]:
        with self._cv:
            while not self._queue and not self._closed:
                self._cv.wait(0.5)
            group: list[_Pending] = []
            spans = 0
            while self._queue and (
                not group or spans + self._queue[0].batch.span_count <= self.max_batch_spans
            ):
                item = self._queue.popleft()
                spans += item.batch.span_count
                group.append(item)
            self._queued_spans -= spans
            return group

    def _run(self) -> None:
        """Stage 1: normalize what is queued and hand it to the store writer, in order."""
        while True:
            group = self._take()
            if not group:
                if self._closed:
                    self._handoff.put(None)
                    return
                continue
            try:
                prepared = self._prepare(group)
            except Exception as exc:  # never let the normalizing thread die
                log.exception("embedded normalizer failed")
                _fail(group, SinkUnavailable(f"normalizing failed: {exc}"))
                continue
            if prepared is not None:
                self._handoff.put(prepared)  # blocks while the writer is two batches behind

    def _prepare(self, group: list[_Pending]) -> _Prepared | None:
        first = self._next_seq
        requests = [
            (
                item.batch.raw or item.batch.request,
                SourcePosition(
                    item.batch.tenant, item.batch.received_at_ns, EMBEDDED_SOURCE, 0, offset
                ),
            )
            for offset, item in enumerate(group, start=first)
        ]
        for offset, item in enumerate(group, start=first):
            item.offset = offset
        accepted: list[_Pending] = []
        try:  # the whole group in one call (contents deduplicated across it)...
            normalized = self.normalizer.normalize(requests)
            accepted = group
        except Exception:  # ...or request by request, refusing only those that cannot be normalized
            parts: list[NormalizedBatch] = []
            for item, request in zip(group, requests):
                try:
                    parts.append(self.normalizer.normalize([request]))
                    accepted.append(item)
                except Exception as exc:
                    log.warning("request rejected by the normalizer: %s", exc)
                    item.error = SinkRejected(f"cannot normalize request: {exc}")
                    item.done.set()
            normalized = NormalizedBatch.concat(parts)
        names = pa.array([item.batch.sent_by for item in group], pa.string())
        offsets = normalized.spans.column("source_offset")
        normalized = normalized.stamped(pc.take(names, pc.subtract(offsets, first)))
        bound = {(EMBEDDED_SOURCE, 0, item.offset): item.batch.agent for item in group}
        kept, refused = drop_foreign_agents(normalized.spans, bound)
        if refused:
            normalized = NormalizedBatch(kept, normalized.contents)
            for item in group:
                item.foreign = refused.get((EMBEDDED_SOURCE, 0, item.offset), [])
                self.foreign_agent_spans += len(item.foreign)
        last = first + len(group) - 1
        # Sequence numbers are never reused, even when this write fails: a token names one
        # batch's data only, so a later, different batch cannot be mistaken for a duplicate.
        self._next_seq = last + 1
        if not accepted:
            return None
        return _Prepared(accepted, normalized, first, last)

    def _write_loop(self) -> None:
        """Stage 2: store what was normalized. Batches that wait meanwhile are stored as one:
        the slower the store, the larger (and cheaper per span) its inserts."""
        while True:
            first = self._handoff.get()
            if first is None:
                return
            ready = [first]
            spans = first.batch.span_count
            while spans < self.max_batch_spans:
                try:
                    more = self._handoff.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._handoff.put(None)  # seen again after this write: then the loop ends
                    break
                ready.append(more)
                spans += more.batch.span_count
            items = [item for p in ready for item in p.items]
            try:
                batch = (
                    ready[0].batch
                    if len(ready) == 1
                    else NormalizedBatch.concat([p.batch for p in ready])
                )
                self._commit(
                    items,
                    batch,
                    f"{EMBEDDED_SOURCE}-{self._epoch}-{ready[0].first}-{ready[-1].last}",
                )
            except Exception as exc:  # never let the writer thread die
                log.exception("embedded writer failed")
                _fail(items, SinkUnavailable(f"store write failed: {exc}"))

    def _commit(self, accepted: list[_Pending], batch: NormalizedBatch, token: str) -> None:
        delay = 0.05
        while True:
            try:
                result = self.writer.write(batch, token)
                self._healthy = True
                break
            except StoreUnavailable as exc:
                self._healthy = False
                if delay > 2:  # give the handlers a retryable answer rather than block them
                    raise
                log.warning("store unavailable, retrying in %.2fs: %s", delay, exc)
                time.sleep(delay)
                delay *= 2
            except StoreError as exc:
                _fail(accepted, SinkRejected(f"store rejected the batch: {exc}"))
                return
        self.stored_spans += result.inserted
        self.stored_requests += len(accepted)
        self._last_stored = time.monotonic()
        self.unchanged_spans += result.unchanged
        self.conflict_spans += len(result.conflict_ids)
        if result.conflict_ids:
            _report_conflicts(accepted, result)
        for item in accepted:
            if item.foreign:
                _report_foreign(item)
            item.done.set()


_BUSY_WINDOW_S = 1.0
"""How long after a stored group the sink still counts as busy (requests come in bursts)."""


@dataclass
class _Prepared:
    """Normalized requests with their sequence range, on the way to the store."""

    items: list[_Pending]
    batch: NormalizedBatch
    first: int
    last: int


_NAMED = 5
"""Conflicting spans named in a partial-success message; the count covers the rest."""


def _report_conflicts(items: list[_Pending], result: WriteResult) -> None:
    """Give each request the conflicts among its own spans (rows carry its sequence number)."""
    assert result.conflicts is not None
    offsets = result.conflicts.column("source_offset").to_pylist()
    by_offset: dict[int, list[str]] = {}
    for offset, span in zip(offsets, result.conflict_ids):
        by_offset.setdefault(offset, []).append(span)
    for item in items:
        ids = by_offset.get(item.offset)
        if ids:
            named = ", ".join(ids[:_NAMED]) + (
                f" and {len(ids) - _NAMED} more" if len(ids) > _NAMED else ""
            )
            item.result = SinkResult(
                len(ids),
                f"{len(ids)} span(s) re-sent with the trace and span ids of stored spans but "
                f"different content: the stored versions stand, the re-sent ones are kept as "
                f"conflicts (trace_id/span_id: {named})",
            )


def _report_foreign(item: _Pending) -> None:
    """Add the spans refused for naming another agent to the request's partial success."""
    before = item.result or SinkResult()
    message = foreign_agent_message(item.batch.agent, item.foreign)
    item.result = SinkResult(
        before.rejected + len(item.foreign),
        "; ".join(m for m in (before.message, message) if m),
        foreign_agent=len(item.foreign),
    )


def _fail(items: list[_Pending], error: Exception) -> None:
    for item in items:
        if not item.done.is_set():
            item.error = error
            item.done.set()
