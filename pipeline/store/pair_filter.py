"""``PairFilter``: which (tenant, id) pairs a store may hold, without asking the store.

A writer that is its store's only one (the embedded server) can answer "is this id new?" from
memory for the common case, a fresh id, and ask the store only when the answer may be "no". The
pairs stored when the filter was loaded are kept as sorted 64-bit digests (8 bytes each, searched
by bisection); the pairs added since are a set, merged into the sorted array once they are many.
``may_hold`` is exact for "no" and says "maybe" on a digest collision too, which only costs the
caller its lookup. Used for intent ids (``governance.idempotency``) and trace ids
(``store.span_history``).
"""

from __future__ import annotations

import bisect
import hashlib
import threading
from array import array
from collections.abc import Iterable
from typing import Any

from agentledger.pipeline.store.base import Store

__all__ = ["PairFilter"]

_MERGE_AT = 100_000
"""Pairs added since the load (or the last merge) that are merged into the sorted array."""


def _digest(tenant: str, value: str) -> int:
    raw = hashlib.blake2b(f"{tenant}\x1f{value}".encode(), digest_size=8).digest()
    return int.from_bytes(raw, "big")


class PairFilter:
    """(tenant, id) pairs that may be stored; thread-safe."""

    def __init__(self, pairs: Iterable[tuple[str, str]] = ()) -> None:
        self._sorted = array("Q", sorted({_digest(t, v) for t, v in pairs}))
        self._recent: set[int] = set()
        self._lock = threading.Lock()

    @classmethod
    def load(cls, store: Store, sql: str, params: dict[str, Any] | None = None) -> PairFilter:
        """The pairs ``sql`` selects (its first two columns: tenant, id)."""
        found = store.query_arrow(sql, params)
        return cls(zip(found.column(0).to_pylist(), found.column(1).to_pylist()))

    def may_hold(self, tenant: str, value: str) -> bool:
        digest = _digest(tenant, value)
        with self._lock:
            if digest in self._recent:
                return True
            at = bisect.bisect_left(self._sorted, digest)
            return at < len(self._sorted) and self._sorted[at] == digest

    def add(self, pairs: Iterable[tuple[str, str]]) -> None:
        """Note ``pairs`` as stored."""
        digests = {_digest(t, v) for t, v in pairs}
        with self._lock:
            self._recent |= digests
            if len(self._recent) >= _MERGE_AT:
                self._sorted = array("Q", sorted({*self._sorted, *self._recent}))
                self._recent.clear()
