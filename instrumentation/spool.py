"""The durable spool: OTLP requests the collector did not take, kept on disk until it does.

Why on disk: an export queue in memory dies with the process, and a collector
that is down longer than the exporter's retries (or a crash of the agent while
it is down) would otherwise lose spans, and for an audit product a missing
span is a missing record. The spool holds encoded ``ExportTraceServiceRequest``
bodies (already redacted: nothing unredacted is ever written to disk), one file
per request, named so that sorting the names gives the order they were written
in: ``<time_ns>-<pid>-<seq>-<spans>.otlp``. A file is written to a temporary name,
fsynced and renamed, so a reader (this process later, or the next one after a
crash) never sees half a request.

One spool per collector and credential: a directory under the base directory
named by a hash of the endpoint URL and the authorization header, since a
request must be re-sent where, and as whom, it was first sent.

Bounded: ``max_bytes`` in total; :meth:`Spool.append` refuses beyond it (the
caller counts the refusal as a drop). Several processes may share a spool:
appends use unique names, and sending from it is serialized by an advisory
lock (``flock``) held only while one process drains it. A re-sent request
whose first send was stored but not acknowledged is stored once: the collector
treats an identical re-sent span as a duplicate.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory lock; one process per spool then
    fcntl = None  # type: ignore[assignment]

__all__ = ["DEFAULT_MAX_MB", "Spool", "SpoolEntry", "default_spool_dir"]

logger = logging.getLogger(__name__)

DEFAULT_MAX_MB = 256
_SUFFIX = ".otlp"


def default_spool_dir() -> Path:
    """The per-user cache directory the spool lives in by default."""
    if os.name == "nt":  # pragma: no cover - exercised on Windows only
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif os.uname().sysname == "Darwin":  # pragma: no cover - exercised on macOS only
        base = Path.home() / "Library" / "Caches"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "agentledger" / "spool"


@dataclass(frozen=True, order=True)
class SpoolEntry:
    """One spooled request: its file (ordered by name) and the number of spans in it."""

    path: Path
    spans: int
    size: int


def _entry(path: Path, size: int) -> SpoolEntry | None:
    parts = path.name[: -len(_SUFFIX)].split("-")
    if len(parts) != 4 or not all(p.isdigit() for p in parts):
        return None
    return SpoolEntry(path, int(parts[3]), size)


class Spool:
    """A bounded, ordered, crash-safe directory of OTLP request bodies (module docstring).

    Build it with :meth:`open`, which returns None (and logs why) when the
    directory cannot be written: the spool is then disabled, never an error.
    """

    def __init__(self, directory: Path, max_bytes: int) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self._seq = itertools.count()
        self._lock_path = directory / "drain.lock"
        self._bytes = sum(e.size for e in self.entries())

    @classmethod
    def open(cls, base: Path, key: str, max_bytes: int) -> Spool | None:
        """The spool for ``key`` (endpoint and credential) under ``base``, or None when disabled."""
        if max_bytes <= 0:
            logger.warning(
                "AgentLedger's spool is off (AGENTLEDGER_SPOOL_MAX_MB=0): spans the collector "
                "cannot take are dropped (and counted)"
            )
            return None
        directory = base / hashlib.sha256(key.encode()).hexdigest()[:16]
        try:
            directory.mkdir(parents=True, exist_ok=True)
            probe = directory / f".probe-{os.getpid()}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            logger.warning(
                "AgentLedger's spool is off: %s is not writable (%s). Spans the collector cannot "
                "take are dropped (and counted); set AGENTLEDGER_SPOOL_DIR to a writable directory",
                directory,
                exc,
            )
            return None
        return cls(directory, max_bytes)

    @property
    def held_bytes(self) -> int:
        """Bytes held (as last counted by this process)."""
        return self._bytes

    def entries(self) -> list[SpoolEntry]:
        """Every complete spooled request, oldest first (other processes' too)."""
        out = []
        try:
            with os.scandir(self.directory) as it:
                for d in it:
                    if d.name.endswith(_SUFFIX):
                        try:
                            e = _entry(Path(d.path), d.stat().st_size)
                        except FileNotFoundError:  # sent and removed by another process
                            continue
                        if e is not None:
                            out.append(e)
        except FileNotFoundError:
            return []
        out.sort()
        return out

    def append(self, body: bytes, spans: int) -> bool:
        """Write one request; False when the spool is full or the write failed (nothing written)."""
        if self._bytes + len(body) > self.max_bytes:
            self._bytes = sum(e.size for e in self.entries())  # others may have drained it
            if self._bytes + len(body) > self.max_bytes:
                return False
        name = f"{time.time_ns():020d}-{os.getpid():07d}-{next(self._seq):08d}-{spans}{_SUFFIX}"
        tmp = self.directory / f".{name}.tmp"
        try:
            with open(tmp, "wb") as f:
                f.write(body)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.directory / name)
        except OSError:
            logger.exception("could not write to AgentLedger's spool %s", self.directory)
            try:
                tmp.unlink()
            except OSError:
                pass
            return False
        self._bytes += len(body)
        return True

    def read(self, entry: SpoolEntry) -> bytes | None:
        """The request's body (None when another process has sent it meanwhile)."""
        try:
            return entry.path.read_bytes()
        except FileNotFoundError:
            return None

    def remove(self, entry: SpoolEntry) -> None:
        """Forget a request once the collector has it (or refused it for good)."""
        try:
            entry.path.unlink()
        except FileNotFoundError:
            return
        self._bytes = max(0, self._bytes - entry.size)

    @contextmanager
    def draining(self) -> Iterator[bool]:
        """Yields True when this process may send from the spool now (no other process is)."""
        if fcntl is None:  # pragma: no cover
            yield True
            return
        try:
            fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError:
            yield True  # cannot lock: sending twice is harmless (the collector stores once)
            return
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)
