"""Consumer-group lag, committed offset against end offset per partition, refreshed in the
background for the metrics endpoint.

Why not the consumer's own view (``Subscription.lag``): it covers only the partitions assigned
to this member, measured from its fetch position, and says nothing while the member is paused,
stuck or gone. The group's committed offsets are what a restart resumes from, so their distance
to the end is the backlog that is really not stored yet, whichever member owns a partition.
Every pipeline process of a group reports the same figures; aggregate with ``max`` by partition.

Queries run in a thread of their own, so a scrape never waits on Kafka; when the brokers do not
answer, the last figures stay and their age grows (``age_seconds``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from agentledger.pipeline.transport.base import Admin, PartitionLag, Transport, TransportError

__all__ = ["GroupLag", "LagSnapshot"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LagSnapshot:
    """The partitions of every watched (group, topic), as of ``taken_at`` (monotonic seconds)."""

    partitions: tuple[tuple[str, PartitionLag], ...] = ()
    """(group, partition lag) pairs."""
    taken_at: float | None = None

    def age_seconds(self) -> float | None:
        return None if self.taken_at is None else time.monotonic() - self.taken_at


class GroupLag:
    """Polls ``Admin.group_lag`` for each ``(group_id, topic)`` every ``interval_s`` seconds."""

    def __init__(
        self,
        transport: Transport,
        watched: Sequence[tuple[str, str]],
        *,
        interval_s: float = 5.0,
        timeout_s: float = 5.0,
    ) -> None:
        self._transport = transport
        self._watched = list(watched)
        self._interval_s = interval_s
        self._timeout_s = timeout_s
        self._snapshot = LagSnapshot()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="agentledger-lag", daemon=True)

    @property
    def snapshot(self) -> LagSnapshot:
        return self._snapshot

    def refresh(self, admin: Admin) -> LagSnapshot:
        """Query every watched group once (raises TransportError)."""
        rows = tuple(
            (group, lag) for group, topic in self._watched for lag in admin.group_lag(group, topic)
        )
        self._snapshot = LagSnapshot(rows, time.monotonic())
        return self._snapshot

    def start(self) -> GroupLag:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self._timeout_s + 5)

    def _run(self) -> None:
        admin: Admin | None = None
        try:
            while not self._stop.is_set():
                try:
                    if admin is None:
                        admin = self._transport.admin(timeout=self._timeout_s)
                    self.refresh(admin)
                except TransportError as exc:  # informational: keep the last figures
                    log.debug("consumer lag query failed: %s", exc)
                    if admin is not None:
                        admin.close()
                        admin = None
                self._stop.wait(self._interval_s)
        finally:
            if admin is not None:
                admin.close()
