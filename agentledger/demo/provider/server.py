"""The scripted provider itself: its lifecycle, the script it answers from, and the state a
test controls and inspects (model aliases, injected failures, the requests received)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any

from agentledger.demo.provider.handler import _Handler, _ProviderServer
from agentledger.demo.provider.request import ProviderRequest
from agentledger.demo.provider.script import Rule, ScriptedResponse

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = ["DEFAULT_MODEL_ALIASES", "DEFAULT_SYSTEM_FINGERPRINT", "ScriptedProvider"]

logger = logging.getLogger(__name__)


DEFAULT_MODEL_ALIASES: Mapping[str, str] = {
    "gpt-4o": "gpt-4o-2024-08-06",
    "gpt-4o-mini": "gpt-4o-mini-2024-07-18",
    "gpt-4.1": "gpt-4.1-2025-04-14",
    "claude-haiku-4-5": "claude-haiku-4-5-20251001",
    "claude-opus-4-5": "claude-opus-4-5-20251101",
}
"""Requested model -> answered model, as real providers resolve floating aliases.

A flight recorder must record the model that *answered*, not the one asked
for; the demo makes the two differ so that mistake shows.
"""

DEFAULT_SYSTEM_FINGERPRINT = "fp_agentledger_demo"


@dataclass
class _Failure:
    remaining: int
    status: int
    body: Mapping[str, Any] | str | None
    headers: Mapping[str, str]


class ScriptedProvider:
    """A local OpenAI/Anthropic-compatible server answering from a script.

    Use as a context manager or call :meth:`start` / :meth:`stop`. Point the
    OpenAI SDK at :attr:`base_url` and the Anthropic SDK at
    :attr:`anthropic_base_url` (the Anthropic SDK adds ``/v1`` itself).
    """

    def __init__(
        self,
        rules: Iterable[Rule] = (),
        *,
        default: ScriptedResponse | None = None,
        model_aliases: Mapping[str, str] = DEFAULT_MODEL_ALIASES,
        system_fingerprint: str = DEFAULT_SYSTEM_FINGERPRINT,
        host: str = "127.0.0.1",
        port: int = 0,
        stream_chunk_chars: int = 12,
    ) -> None:
        self._lock = threading.Lock()
        self._rules: tuple[Rule, ...] = tuple(rules)
        self._default = default or ScriptedResponse(text="OK")
        self._aliases: dict[str, str] = dict(model_aliases)
        self.system_fingerprint = system_fingerprint
        self.stream_chunk_chars = stream_chunk_chars
        self._host, self._port = host, port
        self._requests: list[ProviderRequest] = []
        self._counters: dict[str, int] = {}
        self._failure: _Failure | None = None
        self._server: _ProviderServer | None = None
        self._thread: threading.Thread | None = None

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> Self:
        """Bind and serve in a daemon thread; idempotent. Returns ``self`` for chaining."""
        if self._server is not None:
            return self
        server = _ProviderServer((self._host, self._port), _Handler, self)
        thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="agentledger-scripted-provider",
            daemon=True,
        )
        thread.start()
        self._server, self._thread = server, thread
        logger.info("scripted LLM provider listening on %s", self.root_url)
        return self

    def stop(self) -> None:
        """Stop serving and release the port; idempotent."""
        server, thread = self._server, self._thread
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._server = self._thread = None
        logger.info("scripted LLM provider stopped")

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("provider not started")
        return int(self._server.server_address[1])

    @property
    def root_url(self) -> str:
        """``http://127.0.0.1:PORT`` with no path."""
        return f"http://{self._host}:{self.port}"

    @property
    def base_url(self) -> str:
        """OpenAI-style base URL, ``http://127.0.0.1:PORT/v1``."""
        return f"{self.root_url}/v1"

    @property
    def anthropic_base_url(self) -> str:
        """What to pass as the Anthropic SDK's ``base_url`` (it appends ``/v1/messages``)."""
        return self.root_url

    # ----------------------------------------------------------------- control

    def set_script(self, rules: Iterable[Rule], *, default: ScriptedResponse | None = None) -> None:
        """Replace the rules (and the default answer, if given) for every later request."""
        with self._lock:
            self._rules = tuple(rules)
            if default is not None:
                self._default = default

    def set_model_aliases(self, aliases: Mapping[str, str]) -> None:
        """Replace the requested -> answered model map (e.g. to simulate a model upgrade)."""
        with self._lock:
            self._aliases = dict(aliases)

    def answered_model(self, requested: str) -> str:
        with self._lock:
            return self._aliases.get(requested, requested)

    def fail_next(
        self,
        count: int = 1,
        *,
        status: int = 500,
        body: Mapping[str, Any] | str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Answer the next ``count`` requests with ``status`` instead of the script.

        Without ``body`` the error is shaped like the API called would shape it,
        so the SDKs raise their usual typed errors (``RateLimitError`` on 429...).
        """
        with self._lock:
            self._failure = _Failure(count, status, body, dict(headers or {}))

    @property
    def requests(self) -> list[ProviderRequest]:
        """A snapshot of every request received so far, oldest first."""
        with self._lock:
            return list(self._requests)

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    # ----------------------------------------------------------------- internals for the handler

    def _next_id(self, prefix: str) -> str:
        with self._lock:
            n = self._counters.get(prefix, 0) + 1
            self._counters[prefix] = n
        return f"{prefix}{n}"

    def _take_failure(self) -> _Failure | None:
        with self._lock:
            failure = self._failure
            if failure is None:
                return None
            failure.remaining -= 1
            if failure.remaining <= 0:
                self._failure = None
            return failure

    def _choose(self, request: ProviderRequest) -> tuple[str, ScriptedResponse]:
        with self._lock:
            rules, default = self._rules, self._default
        for index, rule in enumerate(rules):
            if rule.when(request):
                return rule.name or f"rule[{index}]", rule.response_for(request)
        return "<default>", default

    def _record(self, request: ProviderRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def _models(self) -> list[str]:
        with self._lock:
            return sorted(set(self._aliases) | set(self._aliases.values()))
