"""Process runners: serve an app in a thread, run the pipeline's consumers until stopped.

What they run is built by ``agentledger.compose``; nothing here chooses a sink, store
or transport.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from typing import TYPE_CHECKING, Any, Protocol

from fastapi import FastAPI

from agentledger.collector import CollectorSettings
from agentledger.pipeline.settings import StoreSettings
from agentledger.pipeline.store import Store

if TYPE_CHECKING:
    from agentledger.pipeline.derive.base import Job

__all__ = ["AppServer", "EmbeddedServer", "PipelineRunner"]

log = logging.getLogger(__name__)


class AppServer:
    """Runs an ASGI app under uvicorn in a background thread (demo, tests, notebooks)."""

    def __init__(self, app: FastAPI, host: str = "127.0.0.1", port: int = 0) -> None:
        import uvicorn

        self.app = app
        config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, name="agentledger-server", daemon=True
        )
        self._url: str | None = None

    @property
    def url(self) -> str:
        """The address it listens on; still the same once stopped (a client may ask late)."""
        if self._url is None:
            raise RuntimeError("the server was not started")
        return self._url

    def start(self, timeout: float = 30) -> AppServer:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.02)
        host, port = self._server.servers[0].sockets[0].getsockname()[:2]
        self._url = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=30)

    def __enter__(self) -> AppServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class EmbeddedServer(AppServer):
    """The embedded app (collector + normalizer + store) in a background thread."""

    def __init__(
        self,
        collector: CollectorSettings | None = None,
        store_settings: StoreSettings | None = None,
        store: Store | None = None,
    ) -> None:
        from agentledger.compose import build_embedded_app

        self.collector = collector or CollectorSettings(no_auth=True, port=0)
        app = build_embedded_app(self.collector, store_settings or StoreSettings(), store)
        super().__init__(app, self.collector.host, self.collector.port)

    @property
    def store(self) -> Store:
        store = self.app.state.services.store
        assert store is not None, "the embedded app always has its store"
        return store  # type: ignore[no-any-return]


class _Consumer(Protocol):
    def run(self) -> None: ...

    def stop(self) -> None: ...


class _Metrics(Protocol):
    def start(self) -> object: ...

    def stop(self) -> None: ...


class PipelineRunner:
    """The pipeline process: Kafka consumer into the store, with its metrics endpoint and the
    background jobs (``ledger_log``: the tenant logs' appender, run first in each pass)."""

    def __init__(
        self,
        store: Store,
        consumer: Any,
        side_consumers: list[_Consumer],
        *,
        metrics: _Metrics | None = None,
        gc_threshold: int = 0,
        own_store: bool = True,
        ledger_log: Job | None = None,
    ) -> None:
        self.store = store
        self.consumer = consumer
        self.side_consumers = side_consumers
        self.metrics = metrics
        self.gc_threshold = gc_threshold
        self._own_store = own_store
        self.ledger_log = ledger_log

    def run(self) -> None:
        from agentledger.pipeline.derive import start_background_jobs

        if self.gc_threshold:  # see PipelineSettings.gc_threshold: set up, the live objects stay
            gc.collect()
            gc.freeze()
            _, older, oldest = gc.get_threshold()
            gc.set_threshold(self.gc_threshold, older, oldest)

        if self.metrics is not None:
            self.metrics.start()
        # the ledger's appender, usage rollup, anomaly detection
        stop_jobs = start_background_jobs(self.store, ledger_log=self.ledger_log)
        threads = [
            threading.Thread(target=c.run, name=f"agentledger-{type(c).__name__}", daemon=True)
            for c in self.side_consumers
        ]
        for thread in threads:
            thread.start()
        try:
            self.consumer.run()
        finally:
            for consumer in self.side_consumers:
                consumer.stop()
            for thread in threads:
                thread.join(timeout=30)
            stop_jobs()
            if self.metrics is not None:
                self.metrics.stop()
            if self._own_store:
                self.store.close()

    def stop(self) -> None:
        self.consumer.stop()
        for consumer in self.side_consumers:
            consumer.stop()
