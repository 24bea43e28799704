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
* without one (Kafka-mode collector with no store): events are produced to the
  intents topic (the pipeline stores them, so who/why stays on record) and held in
  this replica's memory. That is exact for a single collector replica; several
  replicas without a store do not see each other's controls, and a restarted
  replica forgets them. Run more than one replica only with a store configured.

When the store cannot be read, the replica keeps enforcing the controls it last
read (and those recorded through it) and tries again after ``ttl_s``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque

from agentledger.pipeline.governance import queries
from agentledger.pipeline.governance.base import RecordLog
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

__all__ = ["ControlBook"]

log = logging.getLogger(__name__)

_Key = tuple[str, str, str]  # tenant, scope, target


def _newer(a: ControlOut, b: ControlOut | None) -> bool:
    return b is None or (a.created_at_ns, a.control_id) > (b.created_at_ns, b.control_id)


class ControlBook:
    """The latest control event per (tenant, scope, target), as this replica knows it."""

    def __init__(
        self, log_: RecordLog, store: Store | None, *, ttl_s: float = 1.0, history: int = 10_000
    ) -> None:
        self._log = log_
        self._store = store
        self.ttl_s = ttl_s
        self._latest: dict[_Key, ControlOut] = {}
        self._history: deque[ControlOut] = deque(maxlen=history)  # memory mode only
        self._lock = threading.Lock()
        self._refresh_lock = threading.Lock()
        self._loaded_at = float("-inf")

    @property
    def shared(self) -> bool:
        """True when the controls live in a store every replica reads."""
        return self._store is not None

    def record(self, tenant: str, control: ControlIn, *, actor: str = Actor.API) -> ControlOut:
        """Make a pause or resume durable (a new record), then enforce it here at once."""
        event = ControlOut(
            control_id=new_id(),
            tenant=tenant,
            created_at_ns=time.time_ns(),
            action=control.action,
            scope=control.scope,
            target=control.target,
            by=control.by.strip() or f"api-key:{tenant}",
            reason=control.reason,
        )
        self._log.append(control_record(event, actor=actor), f"{event.scope.value}:{event.target}")
        self._merge([event])
        if self._store is None:
            with self._lock:
                self._history.appendleft(event)
        return event

    def holding(self, tenant: str, intent: IntentIn) -> ControlOut | None:
        """The pause that holds this intent's run (the newest, if several), or None."""
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
        with self._lock:
            return [e for e in self._history if e.tenant == tenant][:limit]

    # -- cache -----------------------------------------------------------------------------------

    def _merge(self, events: list[ControlOut]) -> None:
        with self._lock:
            for event in events:
                key = (event.tenant, event.scope.value, event.target)
                if _newer(event, self._latest.get(key)):
                    self._latest[key] = event

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
            self._merge(events)
            self._loaded_at = started
