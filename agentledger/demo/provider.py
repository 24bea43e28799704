"""A scripted LLM provider: a local HTTP server that answers like OpenAI and Anthropic.

Why it exists: the demo and the tests must exercise the *real* SDKs and the
*real* instrumentation (which read wire formats, SSE streams, usage blocks and
answered-model names) without network access, API keys or non-determinism.
So instead of mocking the SDK, this module runs a tiny server on 127.0.0.1
that speaks the two wire protocols and answers from a script.

A script is an ordered list of :class:`Rule`. Each rule pairs a matcher (a
predicate on the parsed :class:`ProviderRequest`) with a
:class:`ScriptedResponse` (or a function building one from the request). The
first matching rule answers; if none matches, the provider's default response
does. The same script serves both APIs: tool calls become OpenAI ``tool_calls``
or Anthropic ``tool_use`` blocks, finish reasons are translated.

Everything that would vary between runs against a real provider is made
deterministic: ids come from per-provider counters (``chatcmpl-1``,
``call_1``, ``msg_1``, ``toolu_1``) and token counts default to a function of
the request and response lengths.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, cast

from agentledger.demo.documents import LOOKUP_JOURNAL_ENTRY

if TYPE_CHECKING:
    from typing_extensions import Self

__all__ = [
    "DEFAULT_MODEL_ALIASES",
    "DEFAULT_RESPONSE",
    "FIN7_THRESHOLD",
    "Matcher",
    "ProviderRequest",
    "Responder",
    "Rule",
    "ScriptedProvider",
    "ScriptedResponse",
    "ToolCall",
    "ToolResult",
    "all_of",
    "always",
    "any_of",
    "api_is",
    "default_script",
    "demo_provider",
    "estimate_tokens",
    "has_tool_result",
    "last_user_contains",
    "model_is",
    "negate",
    "offers_tool",
    "system_contains",
]

logger = logging.getLogger(__name__)

Api = Literal["openai", "anthropic", "other"]

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

# finish reasons: one script drives both APIs, so translate in both directions.
_OPENAI_TO_ANTHROPIC_STOP = {
    "stop": "end_turn",
    "tool_calls": "tool_use",
    "length": "max_tokens",
    "content_filter": "refusal",
}
_ANTHROPIC_TO_OPENAI_STOP = {v: k for k, v in _OPENAI_TO_ANTHROPIC_STOP.items()}
_ANTHROPIC_TO_OPENAI_STOP["stop_sequence"] = "stop"


# --------------------------------------------------------------------------- script types


@dataclass(frozen=True)
class ToolCall:
    """A tool call the scripted model makes: a tool name and its arguments."""

    name: str
    arguments: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ScriptedResponse:
    """What the scripted model answers.

    ``prompt_tokens`` is the total prompt size, cached part included (OpenAI's
    meaning); on the Anthropic API it is split into ``input_tokens``,
    ``cache_read_input_tokens`` and ``cache_creation_input_tokens`` so the two
    APIs report the same total. ``completion_tokens`` includes
    ``reasoning_tokens``. Left as ``None``, both are derived from the lengths
    of the request and the answer, so they are stable across runs.

    ``finish_reason`` may be given in either API's vocabulary; by default it
    is ``tool_calls``/``tool_use`` when there are tool calls, else
    ``stop``/``end_turn``. ``model`` overrides the answered model.
    """

    text: str | None = None
    tool_calls: Sequence[ToolCall] = ()
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_tokens: int = 0
    cache_creation_tokens: int = 0
    reasoning_tokens: int = 0
    model: str | None = None


@dataclass(frozen=True)
class ToolResult:
    """A tool result found in a request, with the tool name resolved from the earlier call."""

    call_id: str
    name: str | None
    content: str


@dataclass(frozen=True)
class ProviderRequest:
    """One request the provider received: what matchers see and what tests inspect.

    ``status`` and ``rule`` are filled in once the provider has answered (the
    HTTP status sent and the name of the rule that matched, ``"<default>"``
    when none did, ``None`` for injected failures and non-chat endpoints).
    """

    method: str
    path: str
    headers: Mapping[str, str]
    body: Mapping[str, Any]
    status: int = 0
    rule: str | None = None

    @property
    def api(self) -> Api:
        return _api_for_path(self.path)

    @property
    def model(self) -> str | None:
        model = self.body.get("model")
        return model if isinstance(model, str) else None

    @property
    def stream(self) -> bool:
        return bool(self.body.get("stream"))

    @property
    def messages(self) -> list[Mapping[str, Any]]:
        messages = self.body.get("messages")
        if not isinstance(messages, list):
            return []
        return [m for m in messages if isinstance(m, Mapping)]

    def system_text(self) -> str:
        """System instructions: Anthropic's top-level ``system``, OpenAI's system/developer."""
        parts = [_content_text(self.body.get("system"))]
        parts += [
            _content_text(m.get("content"))
            for m in self.messages
            if m.get("role") in ("system", "developer")
        ]
        return "\n".join(p for p in parts if p)

    def user_texts(self) -> list[str]:
        """The text of each user turn, skipping Anthropic turns that only carry tool results."""
        texts = [_content_text(m.get("content")) for m in self.messages if m.get("role") == "user"]
        return [t for t in texts if t]

    def last_user_text(self) -> str:
        texts = self.user_texts()
        return texts[-1] if texts else ""

    def tool_results(self) -> list[ToolResult]:
        """Tool results in the conversation, in order, in either API's format."""
        names: dict[str, str] = {}
        results: list[ToolResult] = []
        for message in self.messages:
            role = message.get("role")
            content = message.get("content")
            for call in message.get("tool_calls") or ():  # OpenAI assistant turn
                if isinstance(call, Mapping):
                    function = call.get("function") or {}
                    names[str(call.get("id"))] = str(function.get("name"))
            if role == "tool":  # OpenAI tool turn
                call_id = str(message.get("tool_call_id"))
                results.append(ToolResult(call_id, names.get(call_id), _content_text(content)))
            if isinstance(content, list):  # Anthropic blocks
                for block in content:
                    if not isinstance(block, Mapping):
                        continue
                    if block.get("type") == "tool_use":
                        names[str(block.get("id"))] = str(block.get("name"))
                    elif block.get("type") == "tool_result":
                        call_id = str(block.get("tool_use_id"))
                        text = _content_text(block.get("content"))
                        results.append(ToolResult(call_id, names.get(call_id), text))
        return results

    def offered_tools(self) -> list[str]:
        """Names of the tools the request offers the model."""
        names = []
        for tool in self.body.get("tools") or ():
            if isinstance(tool, Mapping):
                function = tool.get("function")
                name = function.get("name") if isinstance(function, Mapping) else tool.get("name")
                if isinstance(name, str):
                    names.append(name)
        return names


def _api_for_path(path: str) -> Api:
    path = path.split("?", 1)[0].rstrip("/")
    if path.endswith("/chat/completions"):
        return "openai"
    if path.endswith("/messages"):
        return "anthropic"
    return "other"


def _content_text(content: object) -> str:
    """Text of a message content in either API's shape (string, or list of parts/blocks)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [
            str(part.get("text", ""))
            for part in content
            if isinstance(part, Mapping) and part.get("type") == "text"
        ]
        return "\n".join(t for t in texts if t)
    return ""


Matcher = Callable[[ProviderRequest], bool]
Responder = Callable[[ProviderRequest], ScriptedResponse]


@dataclass(frozen=True)
class Rule:
    """When ``when`` matches a request, answer with ``respond``.

    ``respond`` is a fixed :class:`ScriptedResponse` or a function of the request
    (for answers that depend on what was sent, such as a tool result).
    ``name`` shows up as :attr:`ProviderRequest.rule` on recorded requests.
    """

    when: Matcher
    respond: ScriptedResponse | Responder
    name: str = ""

    def response_for(self, request: ProviderRequest) -> ScriptedResponse:
        if isinstance(self.respond, ScriptedResponse):
            return self.respond
        return self.respond(request)


# --------------------------------------------------------------------------- matchers


def always() -> Matcher:
    """Match every request (a catch-all rule)."""
    return lambda request: True


def last_user_contains(text: str, *, case_sensitive: bool = False) -> Matcher:
    """Match when the latest user turn with text contains ``text``."""

    def match(request: ProviderRequest) -> bool:
        haystack = request.last_user_text()
        if case_sensitive:
            return text in haystack
        return text.lower() in haystack.lower()

    return match


def system_contains(text: str) -> Matcher:
    """Match when the system instructions contain ``text`` (case-insensitive)."""
    return lambda request: text.lower() in request.system_text().lower()


def has_tool_result(tool_name: str | None = None) -> Matcher:
    """Match when the conversation holds a result of ``tool_name`` (of any tool when ``None``)."""

    def match(request: ProviderRequest) -> bool:
        return any(tool_name is None or r.name == tool_name for r in request.tool_results())

    return match


def model_is(*models: str) -> Matcher:
    """Match when the *requested* model is one of ``models``."""
    wanted = frozenset(models)
    return lambda request: request.model in wanted


def api_is(api: Api) -> Matcher:
    """Match requests to one API (``"openai"`` or ``"anthropic"``)."""
    return lambda request: request.api == api


def offers_tool(name: str) -> Matcher:
    """Match when the request offers the model a tool called ``name``."""
    return lambda request: name in request.offered_tools()


def all_of(*matchers: Matcher) -> Matcher:
    return lambda request: all(m(request) for m in matchers)


def any_of(*matchers: Matcher) -> Matcher:
    return lambda request: any(m(request) for m in matchers)


def negate(matcher: Matcher) -> Matcher:
    return lambda request: not matcher(request)


# --------------------------------------------------------------------------- token counts


def estimate_tokens(text: str) -> int:
    """About four characters a token, at least one: deterministic, roughly realistic."""
    return max(1, (len(text) + 3) // 4)


def _prompt_text(request: ProviderRequest) -> str:
    prompt = {k: request.body.get(k) for k in ("system", "messages", "tools")}
    return json.dumps(prompt, sort_keys=True, separators=(",", ":"))


def _arguments_json(arguments: Mapping[str, Any]) -> str:
    return json.dumps(dict(arguments), separators=(",", ":"))


@dataclass(frozen=True)
class _Usage:
    prompt: int
    completion: int
    cached: int
    cache_creation: int
    reasoning: int

    @classmethod
    def of(cls, request: ProviderRequest, response: ScriptedResponse) -> _Usage:
        cached, creation = response.cached_tokens, response.cache_creation_tokens
        prompt = response.prompt_tokens
        if prompt is None:
            prompt = estimate_tokens(_prompt_text(request))
        prompt = max(prompt, cached + creation)
        completion = response.completion_tokens
        if completion is None:
            visible = (response.text or "") + "".join(
                c.name + _arguments_json(c.arguments) for c in response.tool_calls
            )
            completion = estimate_tokens(visible) + response.reasoning_tokens
        return cls(prompt, completion, cached, creation, response.reasoning_tokens)

    def openai(self) -> dict[str, Any]:
        return {
            "prompt_tokens": self.prompt,
            "completion_tokens": self.completion,
            "total_tokens": self.prompt + self.completion,
            "prompt_tokens_details": {"cached_tokens": self.cached, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": self.reasoning,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }

    def anthropic(self) -> dict[str, Any]:
        return {
            "input_tokens": self.prompt - self.cached - self.cache_creation,
            "output_tokens": self.completion,
            "cache_read_input_tokens": self.cached,
            "cache_creation_input_tokens": self.cache_creation,
        }


# --------------------------------------------------------------------------- the provider


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


class _ProviderServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        provider: ScriptedProvider,
    ) -> None:
        self.provider = provider
        super().__init__(address, handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Log instead of printing to stderr; a client dropping a keep-alive socket is routine."""
        if isinstance(sys.exc_info()[1], ConnectionError):
            logger.debug("client %s dropped the connection", client_address)
        else:
            logger.exception("scripted provider: error serving %s", client_address)


# --------------------------------------------------------------------------- HTTP handling


class _Handler(BaseHTTPRequestHandler):
    """Parses a request, records it, and writes the scripted answer (JSON or SSE)."""

    protocol_version = "HTTP/1.1"  # keep-alive as the SDKs expect; SSE goes out chunked
    server_version = "AgentLedgerScriptedProvider/1.0"
    _started_response = False  # once headers are out, an error can no longer become a 500
    _request: ProviderRequest | None = None  # the request being served, until recorded

    @property
    def provider(self) -> ScriptedProvider:
        return cast(_ProviderServer, self.server).provider

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("%s %s", self.address_string(), format % args)

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def _serve(self, method: str) -> None:
        self._started_response, self._request = False, None
        try:
            self._dispatch(method)
        except Exception as exc:  # a script bug must reach the test as an error, not a hang
            logger.exception("scripted provider failed on %s %s", method, self.path)
            self.close_connection = True
            if self._request is not None:
                self.provider._record(replace(self._request, status=500))
            if not self._started_response:
                message = f"scripted provider error: {exc!r}"
                self._send_json(500, _error_body(_api_for_path(self.path), 500, message))

    def _dispatch(self, method: str) -> None:
        path = self.path.split("?", 1)[0].rstrip("/")
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            parsed = json.loads(raw) if raw else {}
        except ValueError:
            parsed = None
        body: Mapping[str, Any] = parsed if isinstance(parsed, dict) else {}
        request = self._request = ProviderRequest(method, path, headers, body)
        provider = self.provider

        failure = provider._take_failure()
        if failure is not None:
            self._record(replace(request, status=failure.status))
            self._send_error(request.api, failure.status, failure.body, failure.headers)
            return
        if parsed is None or (raw and not isinstance(parsed, dict)):
            self._record(replace(request, status=400))
            self._send_error(request.api, 400, "request body is not a JSON object")
            return

        if method == "GET" and path.endswith("/models"):
            self._record(replace(request, status=200))
            self._send_json(200, _models_list(provider._models()))
        elif method == "POST" and request.api != "other":
            rule, response = provider._choose(request)
            self._record(replace(request, status=200, rule=rule))
            logger.debug("%s %s answered by %s", method, path, rule)
            if request.api == "openai":
                self._answer_openai(request, response)
            else:
                self._answer_anthropic(request, response)
        else:
            self._record(replace(request, status=404))
            self._send_error(request.api, 404, f"no route for {method} {path}")

    def _record(self, request: ProviderRequest) -> None:
        """Record before answering, so a test sees the request as soon as its SDK call returns."""
        self.provider._record(request)
        self._request = None  # recorded: the error path must not record it again

    # ----------------------------------------------------------------- OpenAI

    def _answer_openai(self, request: ProviderRequest, response: ScriptedResponse) -> None:
        provider = self.provider
        model = response.model or provider.answered_model(request.model or "")
        usage = _Usage.of(request, response)
        calls = [(provider._next_id("call_"), c) for c in response.tool_calls]
        finish = _openai_finish_reason(response)
        head = {
            "id": provider._next_id("chatcmpl-"),
            "created": int(time.time()),
            "model": model,
            "system_fingerprint": provider.system_fingerprint,
            "service_tier": "default",
        }
        if not request.stream:
            message: dict[str, Any] = {
                "role": "assistant",
                "content": response.text,
                "refusal": None,
                "annotations": [],
            }
            if calls:
                message["tool_calls"] = [
                    {
                        "id": call_id,
                        "type": "function",
                        "function": {"name": c.name, "arguments": _arguments_json(c.arguments)},
                    }
                    for call_id, c in calls
                ]
            choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}
            self._send_json(
                200,
                {**head, "object": "chat.completion", "choices": [choice], "usage": usage.openai()},
            )
            return

        options = request.body.get("stream_options")
        include_usage = isinstance(options, Mapping) and bool(options.get("include_usage"))
        head = {**head, "object": "chat.completion.chunk"}

        def chunk(delta: Mapping[str, Any], finish_reason: str | None = None) -> str:
            body: dict[str, Any] = {
                **head,
                "choices": [
                    {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
                ],
            }
            if include_usage:
                body["usage"] = None
            return _sse(body)

        def events() -> Iterator[str]:
            yield chunk(
                {"role": "assistant", "content": "" if response.text else None, "refusal": None}
            )
            for piece in _split_text(response.text or "", provider.stream_chunk_chars):
                yield chunk({"content": piece})
            for index, (call_id, call) in enumerate(calls):
                opening = {
                    "index": index,
                    "id": call_id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": ""},
                }
                yield chunk({"tool_calls": [opening]})
                arguments = _arguments_json(call.arguments)
                for piece in _split_fixed(arguments, provider.stream_chunk_chars):
                    yield chunk(
                        {"tool_calls": [{"index": index, "function": {"arguments": piece}}]}
                    )
            yield chunk({}, finish)
            if include_usage:
                yield _sse({**head, "choices": [], "usage": usage.openai()})
            yield "data: [DONE]\n\n"

        self._send_sse(events())

    # ----------------------------------------------------------------- Anthropic

    def _answer_anthropic(self, request: ProviderRequest, response: ScriptedResponse) -> None:
        provider = self.provider
        model = response.model or provider.answered_model(request.model or "")
        usage = _Usage.of(request, response)
        stop_reason = _anthropic_stop_reason(response)
        blocks: list[dict[str, Any]] = []
        if response.text:
            blocks.append({"type": "text", "text": response.text})
        for call in response.tool_calls:
            blocks.append(
                {
                    "type": "tool_use",
                    "id": provider._next_id("toolu_"),
                    "name": call.name,
                    "input": dict(call.arguments),
                }
            )
        message: dict[str, Any] = {
            "id": provider._next_id("msg_"),
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": blocks,
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": usage.anthropic(),
        }
        if not request.stream:
            self._send_json(200, message)
            return

        def event(name: str, data: Mapping[str, Any]) -> str:
            return f"event: {name}\n{_sse({'type': name, **data})}"

        def events() -> Iterator[str]:
            start_usage = {**usage.anthropic(), "output_tokens": 1}
            opening = {**message, "content": [], "stop_reason": None, "usage": start_usage}
            yield event("message_start", {"message": opening})
            yield event("ping", {})
            for index, block in enumerate(blocks):
                if block["type"] == "text":
                    yield event(
                        "content_block_start",
                        {"index": index, "content_block": {"type": "text", "text": ""}},
                    )
                    for piece in _split_text(block["text"], provider.stream_chunk_chars):
                        delta = {"type": "text_delta", "text": piece}
                        yield event("content_block_delta", {"index": index, "delta": delta})
                else:
                    yield event(
                        "content_block_start",
                        {"index": index, "content_block": {**block, "input": {}}},
                    )
                    arguments = _arguments_json(block["input"])
                    for piece in [""] + _split_fixed(arguments, provider.stream_chunk_chars):
                        delta = {"type": "input_json_delta", "partial_json": piece}
                        yield event("content_block_delta", {"index": index, "delta": delta})
                yield event("content_block_stop", {"index": index})
            yield event(
                "message_delta",
                {
                    "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                    "usage": usage.anthropic(),
                },
            )
            yield event("message_stop", {})

        self._send_sse(events())

    # ----------------------------------------------------------------- writing

    def _common_headers(self) -> None:
        request_id = self.provider._next_id("req_")
        self.send_header("x-request-id", request_id)
        self.send_header("request-id", request_id)

    def _send_json(self, status: int, payload: object, headers: Mapping[str, str] = {}) -> None:
        data = json.dumps(payload).encode()
        self._started_response = True
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self._common_headers()
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _send_sse(self, events: Iterable[str]) -> None:
        self._started_response = True
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self._common_headers()
        self.end_headers()
        try:
            for text in events:
                data = text.encode()
                self.wfile.write(b"%X\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            logger.debug("client closed the stream early")
            self.close_connection = True

    def _send_error(
        self,
        api: Api,
        status: int,
        body: Mapping[str, Any] | str | None,
        headers: Mapping[str, str] = {},
    ) -> None:
        if isinstance(body, Mapping):
            payload: object = body
        else:
            message = body or _status_phrase(status)
            payload = _error_body(api, status, message)
        self._send_json(status, payload, headers)


# --------------------------------------------------------------------------- wire helpers


def _sse(payload: object) -> str:
    return f"data: {json.dumps(payload, separators=(',', ':'))}\n\n"


def _split_text(text: str, size: int) -> list[str]:
    """Split on word boundaries into pieces of about ``size`` characters, like token streams."""
    pieces: list[str] = []
    for word in re.findall(r"\s*\S+\s*|\s+", text):
        if pieces and len(pieces[-1]) + len(word) <= size:
            pieces[-1] += word
        else:
            pieces.append(word)
    return pieces


def _split_fixed(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), max(1, size))]


def _status_phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Overloaded" if status == 529 else f"HTTP {status}"


def _openai_finish_reason(response: ScriptedResponse) -> str:
    if response.finish_reason:
        return _ANTHROPIC_TO_OPENAI_STOP.get(response.finish_reason, response.finish_reason)
    return "tool_calls" if response.tool_calls else "stop"


def _anthropic_stop_reason(response: ScriptedResponse) -> str:
    if response.finish_reason:
        return _OPENAI_TO_ANTHROPIC_STOP.get(response.finish_reason, response.finish_reason)
    return "tool_use" if response.tool_calls else "end_turn"


_OPENAI_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    429: "rate_limit_error",
}
_ANTHROPIC_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    429: "rate_limit_error",
    529: "overloaded_error",
}


def _error_body(api: Api, status: int, message: str) -> dict[str, Any]:
    if api == "anthropic":
        kind = _ANTHROPIC_ERROR_TYPES.get(status, "api_error")
        return {"type": "error", "error": {"type": kind, "message": message}}
    kind = _OPENAI_ERROR_TYPES.get(status, "server_error")
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


def _models_list(models: Sequence[str]) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [
            {"id": m, "object": "model", "created": 1700000000, "owned_by": "agentledger-demo"}
            for m in models
        ],
    }


# --------------------------------------------------------------------------- the demo's script

_ENTRY_ID = re.compile(r"\bJE-\d+\b", re.IGNORECASE)
FIN7_THRESHOLD = 1_000_000
"""FIN-7: reclassifications above this need Corporate Controller and CFO approval."""


def _request_lookup(request: ProviderRequest) -> ScriptedResponse:
    """First turn: the model asks to see the entry named in the question."""
    found = _ENTRY_ID.search(request.last_user_text())
    entry_id = found.group(0).upper() if found else "JE-4471"
    return ScriptedResponse(tool_calls=[ToolCall(LOOKUP_JOURNAL_ENTRY, {"entry_id": entry_id})])


def _decide(request: ProviderRequest) -> ScriptedResponse:
    """Second turn: the model reads the looked-up entry and decides, citing FIN-7/FIN-12."""
    results = [r for r in request.tool_results() if r.name == LOOKUP_JOURNAL_ENTRY]
    try:
        entry = json.loads(results[-1].content)
    except (ValueError, IndexError):
        entry = {}
    if not isinstance(entry, dict) or "amount" not in entry:
        entry_id = entry.get("entry_id", "the entry") if isinstance(entry, dict) else "the entry"
        return ScriptedResponse(
            text=(
                f"ESCALATE: {entry_id} could not be found in the ledger, so it cannot be "
                "checked against FIN-7. Route it to the Corporate Controller for review."
            )
        )
    amount = float(entry["amount"])
    currency = entry.get("currency", "USD")
    approver = entry.get("requested_approver") or {}
    limit = float(approver.get("approval_limit") or 0)
    who = f"{approver.get('name', 'the requested approver')} ({approver.get('role', 'approver')})"
    if amount > FIN7_THRESHOLD or amount > limit:
        text = (
            f"ESCALATE: {entry['entry_id']} reclassifies {currency} {amount:,.0f}. Under FIN-7, "
            f"reclassifications above {currency} {FIN7_THRESHOLD:,} require approval by the "
            f"Corporate Controller and the CFO, and under FIN-12 {who} may approve only up to "
            f"{currency} {limit:,.0f}. Route the entry to the Corporate Controller and the CFO "
            "with the attached reconciliation."
        )
    else:
        text = (
            f"APPROVE: {entry['entry_id']} reclassifies {currency} {amount:,.0f}, below the "
            f"FIN-7 threshold of {currency} {FIN7_THRESHOLD:,} and within the FIN-12 limit of "
            f"{who} ({currency} {limit:,.0f}); preparer and approver differ as SOX-3 requires."
        )
    return ScriptedResponse(text=text)


def default_script() -> list[Rule]:
    """Rules that play the model in the finance-controls demo.

    Order matters (first match wins): once the conversation carries the
    journal-entry lookup result the model decides; before that, a question
    naming a journal entry makes it call the lookup tool.
    """
    return [
        Rule(has_tool_result(LOOKUP_JOURNAL_ENTRY), _decide, name="decide"),
        Rule(
            all_of(last_user_contains("JE-"), offers_tool(LOOKUP_JOURNAL_ENTRY)),
            _request_lookup,
            name="lookup-entry",
        ),
    ]


DEFAULT_RESPONSE = ScriptedResponse(
    text="I can only review journal entries. Please name the entry, for example JE-4471."
)
"""What the demo model says when no rule of :func:`default_script` matches."""


def demo_provider(**kwargs: Any) -> ScriptedProvider:
    """A (not yet started) provider scripted for the finance demo; kwargs go to the constructor."""
    kwargs.setdefault("default", DEFAULT_RESPONSE)
    return ScriptedProvider(default_script(), **kwargs)
