"""The embedded server: collector + normalizer + embedded ClickHouse in one process.

This is where the embedded stages are wired, and nowhere else. A request is
acknowledged only after its rows are in the store.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Optional

from fastapi import FastAPI

from agentledger.collector import CollectorSettings, create_app
from agentledger.collector.auth import Authenticator
from agentledger.pipeline.normalize import OtlpNormalizer
from agentledger.pipeline.settings import StoreSettings
from agentledger.pipeline.sinks.embedded import EmbeddedSink
from agentledger.pipeline.stores import Store, migrate, open_store
from agentledger.schemas import PriceTable

__all__ = ["EmbeddedServer", "build_embedded_app"]

log = logging.getLogger(__name__)


def build_embedded_app(
    collector: CollectorSettings, store_settings: StoreSettings, store: Optional[Store] = None
) -> FastAPI:
    """The collector app writing through the normalizer into the store (opened if not given)."""
    Authenticator(collector.key_table(), no_auth=collector.no_auth, default_tenant=collector.default_tenant)
    own = store is None
    if store is None:
        store = open_store(
            clickhouse_url=store_settings.clickhouse_url,
            data_dir=store_settings.data_dir,
            database=store_settings.database,
        )
    migrate(store)
    normalizer = OtlpNormalizer(PriceTable.load(store_settings.price_table))
    sink = EmbeddedSink(store, normalizer)
    return create_app(collector, sink, store, on_shutdown=store.close if own else None)


class EmbeddedServer:
    """Runs the embedded app under uvicorn in a background thread (demo, tests, notebooks)."""

    def __init__(
        self,
        collector: Optional[CollectorSettings] = None,
        store_settings: Optional[StoreSettings] = None,
        store: Optional[Store] = None,
    ) -> None:
        import uvicorn

        self.collector = collector or CollectorSettings(no_auth=True, port=0)
        self.app = build_embedded_app(self.collector, store_settings or StoreSettings(), store)
        config = uvicorn.Config(
            self.app, host=self.collector.host, port=self.collector.port, log_level="warning", lifespan="on"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="agentledger-server", daemon=True)

    @property
    def store(self) -> Store:
        return self.app.state.store  # type: ignore[no-any-return]

    @property
    def url(self) -> str:
        sock = self._server.servers[0].sockets[0]
        host, port = sock.getsockname()[:2]
        return f"http://{host}:{port}"

    def start(self, timeout: float = 30) -> EmbeddedServer:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("embedded server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=30)

    def __enter__(self) -> EmbeddedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
