"""Where governed tools send intents: ``configure_governance``, the intent clients it builds,
and the tracer governed-tool spans go to (by default, ``instrument()``'s)."""

from __future__ import annotations

import sys
import threading
from dataclasses import dataclass
from typing import Any

from opentelemetry import trace

from agentledger.instrumentation import config as cfg
from agentledger.instrumentation._intent_client import IntentClient

_TRACER_NAME = "agentledger.governance"


@dataclass(frozen=True)
class _Config:
    url: str | None = None
    """Explicit collector URL; None follows ``instrument()`` and the environment."""
    api_key: str | None = None
    timeout_s: float = 5.0
    initial_backoff_s: float = 0.2
    max_backoff_s: float = 2.0
    max_pause_s: float = 3600.0
    tracer_provider: trace.TracerProvider | None = None


_config_lock = threading.Lock()
_config = _Config()
_clients: dict[tuple[str, tuple[tuple[str, str], ...], float], IntentClient] = {}


def _instrumented() -> Any:
    """The active ``instrument()`` state, without importing the lifecycle module for it."""
    lifecycle = sys.modules.get("agentledger.instrumentation.lifecycle")
    return lifecycle.instrumentation() if lifecycle is not None else None


def _base(url: str) -> str:
    url = url.rstrip("/")
    return url.removesuffix(cfg.TRACES_PATH)


def _target(config: _Config) -> tuple[str, dict[str, str]]:
    """Collector base URL and request headers: explicit, then the URL ``instrument()`` exports
    to, then ``AGENTLEDGER_ENDPOINT``, ``AGENTLEDGER_URL``, the ``OTEL_EXPORTER_OTLP_*`` endpoints."""
    headers = cfg.resolve_headers(config.api_key)
    if config.url:
        return _base(config.url), headers
    state = _instrumented()
    if state is not None and state.endpoint:
        return _base(state.endpoint), headers
    if (value := cfg.env("AGENTLEDGER_ENDPOINT")) is not None:
        return _base(value), headers
    if (value := cfg.env("AGENTLEDGER_URL")) is not None:
        return _base(value), headers
    return _base(cfg.resolve_endpoint()), headers


def configure_governance(
    url: str | None = None,
    *,
    api_key: str | None = None,
    timeout_s: float = 5.0,
    initial_backoff_s: float = 0.2,
    max_backoff_s: float = 2.0,
    max_pause_s: float = 3600.0,
    tracer_provider: trace.TracerProvider | None = None,
) -> None:
    """Where governed tools send intents, and the defaults of every governed tool.

    ``url``/``api_key``: the collector (default: where ``instrument()`` exports, else
    ``AGENTLEDGER_ENDPOINT``, ``AGENTLEDGER_URL``, the ``OTEL_EXPORTER_OTLP_*`` endpoint; the
    key from ``AGENTLEDGER_API_KEY`` or the OTLP header variables); ``timeout_s``: how long one
    ask may take to be acknowledged; ``initial_backoff_s``/``max_backoff_s``: how often a parked
    call asks again; ``max_pause_s``: how long a call waits parked before ``RunPaused`` (a
    tool's own ``max_pause_s`` wins); ``tracer_provider``: where governed-tool spans go
    (default: ``instrument()``'s provider, else the global one). Calling it again replaces
    the whole configuration.
    """
    global _config
    if (
        timeout_s <= 0
        or initial_backoff_s <= 0
        or max_backoff_s < initial_backoff_s
        or max_pause_s < 0
    ):
        raise ValueError(
            "timeout_s and initial_backoff_s must be > 0, max_backoff_s >= initial_backoff_s, "
            "max_pause_s >= 0"
        )
    new = _Config(
        url, api_key, timeout_s, initial_backoff_s, max_backoff_s, max_pause_s, tracer_provider
    )
    if url:
        IntentClient(_base(url))  # a malformed URL fails here, not at the first tool call
    with _config_lock:
        _config = new
        old = list(_clients.values())
        _clients.clear()
    for client in old:
        client.close()


def _current() -> tuple[_Config, IntentClient]:
    config = _config
    url, headers = _target(config)
    key = (url, tuple(sorted(headers.items())), config.timeout_s)
    client = _clients.get(key)
    if client is None:
        with _config_lock:
            client = _clients.get(key)
            if client is None:
                client = _clients[key] = IntentClient(
                    url, timeout_s=config.timeout_s, headers=headers
                )
    return config, client


def _tracer(config: _Config) -> trace.Tracer:
    provider = config.tracer_provider
    if provider is None:
        state = _instrumented()
        provider = state.provider if state is not None else None
    return trace.get_tracer(_TRACER_NAME, tracer_provider=provider)
