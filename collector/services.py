"""What the collector's routers are handed: the services of one process, chosen elsewhere.

The composition root (``agentledger.compose``) builds an ``EdgeServices`` for the
embedded server or for the Kafka collector; routers reach it only through the
dependencies in ``collector.deps``, so no router decides which sink, store or
transport is in use.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from agentledger.pipeline.governance import GovernanceService
from agentledger.pipeline.services.access import AccessRecorder, KeyBook
from agentledger.pipeline.services.datasets.feedback import FeedbackLog
from agentledger.pipeline.sinks import Sink
from agentledger.pipeline.store import Store

__all__ = ["EdgeServices", "Lazy"]

T = TypeVar("T")


class Lazy(Generic[T]):
    """A service built on first use, once, from a factory the composition root gives.

    The collector must start while a broker is still coming up: a service that needs
    one (the intents producer) is built by the first request that needs it, and a
    failure is raised to that request (503) and tried again by the next.
    """

    def __init__(self, factory: Callable[[], T]) -> None:
        self._factory = factory
        self._value: T | None = None
        self._lock = threading.Lock()

    def get(self) -> T:
        value = self._value
        if value is not None:
            return value
        with self._lock:
            if self._value is None:
                self._value = self._factory()
            return self._value

    def peek(self) -> T | None:
        """The service if it was built, without building it."""
        return self._value


@dataclass
class EdgeServices:
    """The services behind the collector's routes.

    ``store`` is the read side (None: a Kafka collector with no ClickHouse URL), and then also
    where the API keys and the access log are;
    ``store_gates_readiness``: ingest lands in that store (embedded), so ``/readyz``
    requires it.
    """

    sink: Sink
    store: Store | None
    governance: Lazy[GovernanceService] | None
    feedback: Lazy[FeedbackLog] | None
    store_gates_readiness: bool = True
    keys: KeyBook | None = None
    """The store's API keys (None: only the configured bootstrap keys)."""
    access: AccessRecorder | None = None
    """Where reads of content are logged (every process that can read has a store)."""
    on_close: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        """Close what was built, the sink first (it may still write into the store)."""
        self.sink.close()
        for service in (self.governance, self.feedback):
            built = service.peek() if service is not None else None
            if built is not None:
                built.close()
        for closer in self.on_close:
            closer()
