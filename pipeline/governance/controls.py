"""Run controls: which traces, sessions, agents and principals are paused right now.

Controls are events (pause, resume) with who and why; the latest event per
(tenant, scope, target) decides. They are kept where every collector replica
reads them:

* with a store (embedded server; Kafka-mode collector with ``AGENTLEDGER_CLICKHOUSE_URL``):
  an event is appended to the record log before it is acknowledged (a resume is a new
  record, nothing is changed), and
  each replica re-reads the latest events when its copy is older than ``ttl_s``.
  A pause recorded on one replica therefore holds on every other within ``ttl_s``
  (plus one query); on the replica that recorded it, at once.
* with a follower (every Kafka-mode collector: ``control_topic.ControlTopic``): the event
  is made durable (intents topic or store) and written to the compacted controls topic,
  which every replica follows from its beginning and merges into its book (``merge``), so
  a pause recorded on one replica holds on all within the time one fetch takes. Until the
  follower has read what the topic held when it started, asks are refused
  (GovernanceUnavailable: 503) rather than answered from an incomplete book.
* with neither (tests, single process): the events are appended to the log and held in
  this book's memory only.

When the store cannot be read, the replica keeps enforcing the controls it last
read (and those recorded through it) and tries again after ``ttl_s``; when the controls
topic cannot be read, it keeps enforcing what it merged and the follower retries.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol

from agentledger.pipeline.governance import queries
from agentledger.pipeline.governance.base import GovernanceUnavailable, RecordLog
from agentledger.pipeline.governance.records import (
    ControlAction,
    ControlIn,
    ControlOut,
    ControlScope,
    IntentIn,
    control_record,
    new_id,
)
from agentledger.pipeline.store import Store, StoreError
from agentledger.schemas.records import Actor

__all__ = ["ControlBook", "ControlFollower"]

log = logging.getLogger(__name__)

_Key = tuple[str, str, str]  # tenant, scope, target


def _newer(a: ControlOut, b: ControlOut | None) -> bool:
    return b is None or (a.created_at_ns, a.control_id) > (b.created_at_ns, b.control_id)


class ControlFollower(Protocol):
    """Feeds a book the events every replica records (``ControlTopic``)."""

    def follow(self, merge: Callable[[list[ControlOut]], None]) -> None:
        """Start calling ``merge`` with the events recorded anywhere, from the first one."""
        ...

    def wait_caught_up(self, timeout: float) -> bool:
        """True once every event recorded before ``follow`` was merged."""
        ...


class ControlBook:
    """The latest control event per (tenant, scope, target), as this replica knows it.

    ``follower``: started here, it merges the events of every replica into this book;
    ``catch_up_s``: how long an ask waits for its first catch-up before 503.
    """

    def __init__(
        self,
        log_: RecordLog,
        store: Store | None,
        *,
        ttl_s: float = 1.0,
        history: int = 10_000,
        follower: ControlFollower | None = None,
        catch_up_s: float = 5.0,
    ) -> None:
        self._log = log_
        self._store = store
        self.ttl_s = ttl_s
        self.catch_up_s = catch_up_s
        self._latest: dict[_Key, ControlOut] = {}
        self._history: OrderedDict[str, ControlOut] = OrderedDict()  # without a store only
        self._history_max = history
        self._lock = threading.Lock()
        self._refresh_lock = threading.Lock()
        self._loaded_at = float("-inf")
        self._follower = follower
        if follower is not None:
            follower.follow(self.merge)

    @property
    def shared(self) -> bool:
        """True when every replica sees the controls (a store they read, or a followed topic)."""
        return self._store is not None or self._follower is not None

    def record(
        self,
        tenant: str,
        control: ControlIn,
        *,
        actor: str = Actor.API,
        control_id: str | None = None,
    ) -> ControlOut:
        """Make a pause or resume durable (a new record), then enforce it here at once.
        ``control_id``: the id the server chose (from an idempotency key), else a fresh one."""
        event = ControlOut(
            control_id=control_id or new_id(),
            tenant=tenant,
            created_at_ns=time.time_ns() // 1000 * 1000,  # microseconds, as the record keeps it
            action=control.action,
            scope=control.scope,
            target=control.target,
            by=actor,
            reason=control.reason,
            note=control.note(),
        )
        self._log.append(control_record(event, actor=actor), f"{event.scope.value}:{event.target}")
        self.merge([event])
        return event

    def holding(self, tenant: str, intent: IntentIn) -> ControlOut | None:
        """The pause that holds this intent's run (the newest, if several), or None."""
        self._await_follower()
        self._maybe_refresh()
        keys: list[_Key] = []
        for scope, target in (
            (ControlScope.TRACE, intent.trace_id),
            (ControlScope.SESSION, intent.session_id),
            (ControlScope.AGENT, intent.agent_name),
        ):
            if target:
                keys.append((tenant, scope.value, target))
        for principal in {intent.principal_id, *intent.principal_chain}:
            if principal:
                keys.append((tenant, ControlScope.PRINCIPAL.value, principal))
        found: ControlOut | None = None
        with self._lock:
            for key in keys:
                event = self._latest.get(key)
                if (
                    event is not None
                    and event.action is ControlAction.PAUSE
                    and _newer(event, found)
                ):
                    found = event
        return found

    def active(self, tenant: str) -> list[ControlOut]:
        """Pauses in force for ``tenant``, newest first (read from the store when there is one)."""
        self._await_follower()
        if self._store is not None:
            self._refresh(force=True)
        with self._lock:
            found = [
                e
                for (t, _, _), e in self._latest.items()
                if t == tenant and e.action is ControlAction.PAUSE
            ]
        return sorted(found, key=lambda e: (e.created_at_ns, e.control_id), reverse=True)

    def history(self, tenant: str, limit: int = 100) -> list[ControlOut]:
        """Every control event of ``tenant``, newest first."""
        if self._store is not None:
            return queries.control_history(self._store, tenant, limit)
        self._await_follower()
        with self._lock:
            found = [e for e in self._history.values() if e.tenant == tenant]
        found.sort(key=lambda e: (e.created_at_ns, e.control_id), reverse=True)
        return found[:limit]

    # -- cache -----------------------------------------------------------------------------------

    def merge(self, events: list[ControlOut]) -> None:
        """Take events recorded here or on another replica (the same event twice is one)."""
        with self._lock:
            for event in events:
                key = (event.tenant, event.scope.value, event.target)
                if _newer(event, self._latest.get(key)):
                    self._latest[key] = event
                if self._store is None and event.control_id not in self._history:
                    self._history[event.control_id] = event
                    if len(self._history) > self._history_max:
                        self._history.popitem(last=False)

    def _await_follower(self) -> None:
        if self._follower is not None and not self._follower.wait_caught_up(self.catch_up_s):
            raise GovernanceUnavailable(
                "run controls are still being read from the controls topic", retry_after=1
            )

    def _maybe_refresh(self) -> None:
        if self._store is not None and time.monotonic() - self._loaded_at >= self.ttl_s:
            self._refresh(force=False)

    def _refresh(self, *, force: bool) -> None:
        assert self._store is not None
        with self._refresh_lock:  # one query at a time; the others then find the copy fresh
            started = time.monotonic()
            if not force and started - self._loaded_at < self.ttl_s:
                return
            try:
                events = queries.latest_controls(self._store)
            except StoreError as exc:
                log.warning("cannot read run controls (%s); enforcing the last ones read", exc)
                self._loaded_at = started
                return
            self.merge(events)
            self._loaded_at = started
