"""``StoreLog``: governance records appended to the store before the collector answers.

Asks from many agents arrive at once; one of them appends everything queued in one
insert into the record log while the others wait (group commit), so concurrent asks
share an insert instead of queueing for one each. The insert is
``agentledger.pipeline.store.records.append_records``, the one way records are stored.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from dataclasses import dataclass, field

from agentledger.pipeline.governance.base import (
    GovernanceRejected,
    GovernanceUnavailable,
    RecordLog,
    RecordLogError,
)
from agentledger.pipeline.store import StoreRejected, StoreUnavailable
from agentledger.pipeline.store.base import Store
from agentledger.pipeline.store.records import append_records
from agentledger.schemas.records import Record

__all__ = ["StoreLog", "store_records"]

log = logging.getLogger(__name__)


def store_records(store: Store, records: list[Record]) -> None:
    """Append records to the store now, errors as the record log's (GovernanceUnavailable,
    GovernanceRejected)."""
    try:
        append_records(store, records)
    except StoreUnavailable as exc:
        raise GovernanceUnavailable(f"store unavailable: {exc}") from exc
    except StoreRejected as exc:
        raise GovernanceRejected(f"store refused the records: {exc}", status=500) from exc


@dataclass
class _Pending:
    record: Record
    done: threading.Event = field(default_factory=threading.Event)
    error: RecordLogError | None = None


class StoreLog(RecordLog):
    """Group-committing writer of governance records into a store's record log.

    Leader/follower: the first caller to find no insert running becomes the
    writer; it inserts everything queued (its own record and any that arrived
    meanwhile) until the queue is empty, while the others wait for theirs.
    An ask alone therefore pays its insert on its own thread, without a hand-off.
    """

    def __init__(self, store: Store, *, timeout_s: float = 10.0, max_queued: int = 100_000) -> None:
        self.store = store
        self.timeout_s = timeout_s
        self.max_queued = max_queued
        self._queue: deque[_Pending] = deque()
        self._lock = threading.Lock()
        self._writing = False
        self._closed = False

    def append(self, record: Record, key: str) -> None:
        item = _Pending(record)
        with self._lock:
            if self._closed:
                raise GovernanceUnavailable("the collector is shutting down", retry_after=5)
            if len(self._queue) >= self.max_queued:
                raise GovernanceUnavailable(
                    f"{len(self._queue)} governance records waiting for the store"
                )
            self._queue.append(item)
            leader = not self._writing
            self._writing = True
        if leader:
            self._drain()
        elif not item.done.wait(self.timeout_s):
            raise GovernanceUnavailable(
                f"the store did not confirm the write within {self.timeout_s:g}s"
            )
        if item.error is not None:
            raise item.error

    def close(self) -> None:
        with self._lock:
            self._closed = True

    def _drain(self) -> None:
        while True:
            with self._lock:
                if not self._queue:
                    self._writing = False
                    return
                group = list(self._queue)
                self._queue.clear()
            self._commit(group)

    def _commit(self, group: list[_Pending]) -> None:
        error: RecordLogError | None = None
        try:
            store_records(self.store, [i.record for i in group])
        except RecordLogError as exc:
            error = exc
        except Exception as exc:  # a follower must never wait for a leader that died
            log.exception("governance insert into the record log failed")
            error = GovernanceUnavailable(f"store write failed: {exc}")
        for item in group:
            item.error = error
            item.done.set()
