"""Outcomes of governed tool calls, posted from one background thread.

Recording an outcome must never delay or break the agent: the caller only
queues it; a daemon thread posts it to ``/v1/intents/{id}/outcome``. The queue
is bounded (beyond it outcomes are dropped and counted), and what is queued is
flushed at interpreter exit (for at most two seconds).
"""

from __future__ import annotations

import atexit
import collections
import logging
import threading
import time
from typing import Any

from agentledger.instrumentation._intent_client import CollectorError, IntentClient

__all__ = ["OutcomeSender", "outcomes", "flush_outcomes"]

log = logging.getLogger(__name__)


class OutcomeSender:
    """Posts outcomes from one background thread, so recording them never delays the agent.

    Bounded: beyond ``capacity`` waiting outcomes, new ones are dropped and counted.
    """

    def __init__(self, capacity: int = 10_000) -> None:
        self.capacity = capacity
        self.dropped = 0
        self.failed = 0
        self._queue: collections.deque[tuple[IntentClient, str, dict[str, Any]]] = (
            collections.deque()
        )
        self._cv = threading.Condition()
        self._busy = 0
        self._thread: threading.Thread | None = None

    def submit(self, client: IntentClient, intent_id: str, payload: dict[str, Any]) -> None:
        with self._cv:
            if len(self._queue) >= self.capacity:
                self.dropped += 1
                log.warning(
                    "outcome of intent %s dropped: %d outcomes waiting", intent_id, len(self._queue)
                )
                return
            self._queue.append((client, intent_id, payload))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="agentledger-outcomes", daemon=True
                )
                self._thread.start()
            self._cv.notify()

    def flush(self, timeout_s: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout_s
        with self._cv:
            while self._queue or self._busy:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cv.wait(remaining)
        return True

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._queue:
                    self._cv.wait()
                client, intent_id, payload = self._queue.popleft()
                self._busy += 1
            try:
                client.post(f"/v1/intents/{intent_id}/outcome", payload)
            except CollectorError as exc:
                self.failed += 1
                log.warning("outcome of intent %s not recorded: %s", intent_id, exc)
            except Exception:  # never let the sender die
                self.failed += 1
                log.exception("outcome of intent %s not recorded", intent_id)
            finally:
                with self._cv:
                    self._busy -= 1
                    self._cv.notify_all()


outcomes = OutcomeSender()
"""The process-wide sender."""


def flush_outcomes(timeout_s: float = 5.0) -> bool:
    """Wait until every outcome recorded so far was sent (or failed); False on timeout."""
    return outcomes.flush(timeout_s)


atexit.register(lambda: outcomes.flush(2.0))
