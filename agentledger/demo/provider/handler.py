"""The scripted provider's HTTP side: parse and record each request, then write the scripted
answer as the API called would (JSON, or an SSE stream sent chunked over keep-alive, as the
SDKs expect)."""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, cast

from agentledger.demo.provider.request import Api, ProviderRequest, _api_for_path
from agentledger.demo.provider.script import ScriptedResponse
from agentledger.demo.provider.wire import (
    _anthropic_stop_reason,
    _arguments_json,
    _error_body,
    _models_list,
    _openai_finish_reason,
    _split_fixed,
    _split_text,
    _sse,
    _status_phrase,
    _Usage,
)

if TYPE_CHECKING:
    from agentledger.demo.provider.server import ScriptedProvider

logger = logging.getLogger(__name__)


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
