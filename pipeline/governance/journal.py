"""``JournaledLog``: intents and outcomes made durable in an fsynced journal, stored behind.

An embedded store (chDB) takes about 10 ms for the smallest MergeTree insert, so a
governed tool that waited for the insert would wait that long before every call.
The journal is how databases answer this: the record is appended to a local
append-only file and ``fsync``ed (about 0.2 ms here), which is when the collector
acknowledges it; a background thread then inserts what the journal holds into the
store in batches and deletes the journal segments it stored. On start, segments
left by a crash are stored first, before anything is answered. A record appended
twice (a crash between the insert and the segment's deletion) is the same record
(same id, same body hash), which readers of the record log count once (see
``RecordLog``). A journal line is the record as ``Record.to_json`` writes it; lines
written by versions before the record log (a table's row) are read as well.

Commits are grouped: the thread that fsyncs covers every record written before it
started, so concurrent asks share one fsync. Controls are not journaled: they are
rare and must be visible to every reader at once, so they go straight to the
store (``direct``). Readers call ``sync()`` first, so an acknowledged intent is
always in what they read.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

import orjson

from agentledger.pipeline.governance.base import GovernanceUnavailable, RecordLog
from agentledger.pipeline.governance.records import legacy_record
from agentledger.pipeline.governance.store_log import store_records
from agentledger.pipeline.store import Store
from agentledger.schemas.records import Record, RecordKind

__all__ = ["JournaledLog"]

log = logging.getLogger(__name__)

_PREFIX, _SUFFIX = "journal-", ".jsonl"


class JournaledLog(RecordLog):
    """Durable on fsync of ``directory``'s journal; inserted into ``store`` every ``flush_interval_s``.

    ``direct``: the record log for the kinds that skip the journal (controls).
    """

    def __init__(
        self,
        store: Store,
        directory: str | Path,
        direct: RecordLog,
        *,
        flush_interval_s: float = 0.05,
        max_pending: int = 100_000,
        journaled: frozenset[RecordKind] = frozenset({RecordKind.INTENT, RecordKind.OUTCOME}),
    ) -> None:
        self.store = store
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.direct = direct
        self.journaled = journaled
        self.flush_interval_s = flush_interval_s
        self.max_pending = max_pending
        self._lock = threading.Lock()  # the current segment, its records, the sequence numbers
        self._sync_lock = threading.Lock()  # one fsync at a time
        self._flush_lock = threading.Lock()  # one store insert at a time
        self._written = 0
        self._synced = 0
        self._pending: list[Record] = []
        self._closed = False
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._recover()
        self._seq = self._next_seq()
        self._fd = self._open(self._seq)
        self._thread = threading.Thread(
            target=self._run, name="agentledger-governance-journal", daemon=True
        )
        self._thread.start()
        store.add_write_behind(self._sync_for_readers)

    # -- RecordLog ---------------------------------------------------------------------------------

    def append(self, record: Record, key: str) -> None:
        if record.kind not in self.journaled:
            self.direct.append(record, key)
            return
        line = orjson.dumps(record.to_json()) + b"\n"
        with self._lock:
            if self._closed:
                raise GovernanceUnavailable("the collector is shutting down", retry_after=5)
            if len(self._pending) >= self.max_pending:
                raise GovernanceUnavailable(
                    f"{len(self._pending)} governance records waiting for the store"
                )
            fd = self._fd
            try:
                os.write(fd, line)
            except OSError as exc:
                raise GovernanceUnavailable(f"cannot write the governance journal: {exc}") from exc
            self._pending.append(record)
            self._written += 1
            mine = self._written
        self._sync(mine)

    def sync(self) -> None:
        """Store every journaled record now (readers call this first). Waits for a flush already
        under way too: its records have left ``_pending`` but are not in the store until it ends."""
        with self._lock:
            if self._closed:
                return
        self._flush()

    def _sync_for_readers(self) -> None:
        try:
            self.sync()
        except GovernanceUnavailable as exc:  # the reader then sees what the store has
            log.warning("governance journal not stored before a read: %s", exc)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=30)
        try:
            self._flush()
        except GovernanceUnavailable as exc:  # the segments stay; the next start stores them
            log.warning(
                "governance journal not stored at shutdown (%s); it is stored at the next start",
                exc,
            )
        with self._lock:
            os.close(self._fd)
        self.direct.close()

    # -- durability --------------------------------------------------------------------------------

    def _sync(self, mine: int) -> None:
        with self._sync_lock:
            if self._synced >= mine:
                return  # an fsync that started after this record was written covered it
            with self._lock:
                target, fd = self._written, self._fd
            try:
                os.fsync(fd)
            except OSError as exc:
                raise GovernanceUnavailable(f"cannot sync the governance journal: {exc}") from exc
            self._synced = target

    def _flush(self) -> None:
        """Insert the pending records, then delete the segments they came from."""
        with self._flush_lock:
            with self._sync_lock, self._lock:  # rotate: the closed segments hold exactly ``batch``
                batch, self._pending = self._pending, []
                if not batch:
                    return
                os.fsync(self._fd)
                self._synced = self._written
                os.close(self._fd)
                done = self._seq
                self._seq += 1
                self._fd = self._open(self._seq)
            try:
                self._store(batch)
            except BaseException:
                with (
                    self._lock
                ):  # not stored: keep them for the next flush (their segment stays too)
                    self._pending[:0] = batch
                raise
            for path in self._segments():
                if _seq_of(path) <= done:
                    path.unlink(missing_ok=True)

    def _store(self, batch: list[Record]) -> None:
        store_records(self.store, batch)

    def _run(self) -> None:
        delay = self.flush_interval_s
        while not self._stop.is_set():
            self._wake.wait(delay)
            self._wake.clear()
            try:
                self._flush()
                delay = self.flush_interval_s
            except GovernanceUnavailable as exc:
                delay = min(max(delay * 2, 0.2), 5.0)
                log.warning(
                    "governance journal: %s; retrying in %.1fs (records stay journaled)", exc, delay
                )
            except Exception:
                delay = min(max(delay * 2, 0.2), 5.0)
                log.exception("governance journal flush failed; retrying in %.1fs", delay)

    # -- segments ----------------------------------------------------------------------------------

    def _segments(self) -> list[Path]:
        return sorted(p for p in self.directory.glob(f"{_PREFIX}*{_SUFFIX}") if _seq_of(p) >= 0)

    def _next_seq(self) -> int:
        found = [_seq_of(p) for p in self._segments()]
        return max(found, default=0) + 1

    def _open(self, seq: int) -> int:
        path = self.directory / f"{_PREFIX}{seq:012d}{_SUFFIX}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        dir_fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)  # the new file's name is durable too
        finally:
            os.close(dir_fd)
        return fd

    def _recover(self) -> None:
        """Store what a previous process journaled and did not store; then delete it."""
        segments = self._segments()
        if not segments:
            return
        batch: list[Record] = []
        for path in segments:
            for n, line in enumerate(path.read_bytes().splitlines()):
                try:
                    entry = orjson.loads(line)
                    batch.append(
                        legacy_record(entry["table"], entry["row"])
                        if "table" in entry
                        else Record.from_json(entry)
                    )
                except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                    # a torn last write: the process died before its fsync, so it was never acknowledged
                    log.warning("skipping unreadable line %d of %s", n + 1, path)
        deadline = time.monotonic() + 60
        while True:
            try:
                self._store(batch)
                break
            except GovernanceUnavailable:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)
        log.info("stored %d governance records left in the journal by an earlier run", len(batch))
        for path in segments:
            path.unlink(missing_ok=True)


def _seq_of(path: Path) -> int:
    digits = path.name[len(_PREFIX) : -len(_SUFFIX)]
    return int(digits) if digits.isdigit() else -1
