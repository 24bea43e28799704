"""AgentLedger's own lean wrapper for OpenAI chat completions (sync, async, streaming).

Why not only OpenInference's ``OpenAIInstrumentor``: on the caller's thread it
costs ~0.6 ms per call (measured in ``bench/instrumentation_overhead.py``):
the whole request and response are serialized to JSON a second time
(``input.value``/``output.value`` duplicate the flattened messages), every
attribute goes through ``set_attribute`` one by one under a lock, and its
tracer masks each attribute again. This wrapper writes the same OpenInference
attribute keys (so the normalizer reads it unchanged) but builds each span's
attributes as one dict from precomputed keys, skips the duplicated raw JSON,
and never touches content whose capture is off. Under ``instrument()`` its
spans are lean (``_lean.py``): the request and answer attributes are computed
when the span is exported, off the caller's thread, from a snapshot of the
request and the SDK's answer object; on any other tracer they are set at once.

It patches ``openai.OpenAI.request`` / ``openai.AsyncOpenAI.request`` (the one
place every SDK call goes through). Chat completions are recorded here; every
other endpoint (responses, embeddings, images...) passes through untouched, to
OpenInference's instrumentor when that is enabled underneath. While a chat
call runs, OpenTelemetry's suppression key is set so that instrumentor does not
record the same call twice, and the call goes straight to the function it
wrapped (it would only pass it through).

Telemetry never breaks the call: any failure inside the wrapper is logged and
the SDK call proceeds (or its result is returned) as if uninstrumented. The one
deliberate exception is a model-pin mismatch with ``on_pin_mismatch="raise"``.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator, Mapping
from contextvars import Token
from typing import TYPE_CHECKING, Any, TypeAlias

from opentelemetry import context as context_api
from opentelemetry import trace as trace_api
from opentelemetry.context import Context
from opentelemetry.trace import Span, Status, StatusCode

from agentledger.instrumentation._lean import LeanTracer, context_with
from agentledger.instrumentation._openai_attrs import (
    _Answer,
    _Capture,
    _provider_from_host,
    _snapshot,
    _StreamAccumulator,
    request_attributes,
    response_attributes,
)
from agentledger.instrumentation._spans import set_attributes
from agentledger.instrumentation.pinning import ModelPins

__all__ = ["OpenAIChatWrapper", "request_attributes", "response_attributes"]

logger = logging.getLogger(__name__)

_SUPPRESS_KEY = context_api._SUPPRESS_INSTRUMENTATION_KEY
_SUPPRESS = {_SUPPRESS_KEY: True}
_OK = Status(StatusCode.OK)
_PROVIDER_SLOT = "_agentledger_provider"


class _Call:
    """One traced chat call: its span, and how it ends (once)."""

    __slots__ = ("acc", "agent", "done", "span", "wrapper")

    def __init__(self, span: Span, wrapper: OpenAIChatWrapper, agent: str) -> None:
        self.span = span
        self.wrapper = wrapper
        self.agent = agent
        self.done = False
        self.acc: _StreamAccumulator | None = None

    def fail(self, exc: BaseException) -> None:
        if self.done:
            return
        self.done = True
        try:
            self.span.record_exception(exc)
            self.span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
            self.span.end()
        except Exception:  # telemetry never breaks the call
            logger.exception("failed to end an OpenAI span")

    def finish(self, answer: _Answer | None = None) -> None:
        """End the span with the answer's attributes; raises ModelPinMismatch when pinned so.

        ``answer``: how to compute the answer's attributes, with the model it
        names. A lean span computes them when exported, off the caller's thread;
        any other span gets them now (a failure to compute them is logged, and
        the span still ends).
        """
        if self.done:
            return
        self.done = True
        mismatch = None
        try:
            attrs: dict[str, Any] = {}
            model = None
            if answer is not None:
                build, args, model = answer
                later = getattr(self.span, "set_attributes_later", None)
                if later is not None:
                    later(build, args)
                else:
                    try:
                        attrs = build(*args)
                    except Exception:
                        logger.exception("failed to record an OpenAI response")
            mismatch = self.wrapper.pins.check(self.agent, model, attrs)
            if attrs:
                set_attributes(self.span, attrs)
            if mismatch is not None:
                self.span.record_exception(mismatch)
                self.span.set_status(
                    Status(StatusCode.ERROR, f"{type(mismatch).__name__}: {mismatch}")
                )
            else:
                self.span.set_status(_OK)
            self.span.end()
        except Exception:
            logger.exception("failed to end an OpenAI span")
            return
        if mismatch is not None:
            raise mismatch


try:  # a transparent proxy keeps isinstance(stream, openai.Stream) true for callers that check
    from wrapt import ObjectProxy as _Proxy
except ImportError:  # pragma: no cover (wrapt comes with every OpenInference instrumentor)

    class _Proxy:  # type: ignore[no-redef]
        def __init__(self, wrapped: Any) -> None:
            object.__setattr__(self, "__wrapped__", wrapped)

        def __getattr__(self, name: str) -> Any:
            return getattr(self.__wrapped__, name)


if TYPE_CHECKING:  # wrapt's stubs make ObjectProxy generic; wrapt 1.x cannot subscript it
    _StreamProxy: TypeAlias = _Proxy[Any]
else:
    _StreamProxy = _Proxy


class _TracedStream(_StreamProxy):
    """A sync stream that records each chunk and ends the span when the stream ends."""

    def __init__(self, stream: Any, call: _Call) -> None:
        super().__init__(stream)
        self._self_call = call
        call.acc = _StreamAccumulator()

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        try:
            chunk = self.__wrapped__.__next__()
        except StopIteration:
            self._self_end()
            raise
        except BaseException as exc:
            self._self_call.fail(exc)
            raise
        self._self_add(chunk)
        return chunk

    def _self_add(self, chunk: Any) -> None:
        call = self._self_call
        acc = call.acc
        if acc is None:
            return
        try:
            first_model = acc.model is None
            acc.add(chunk)
            check_pin = first_model and acc.model is not None and call.wrapper.pins.raises
        except Exception:
            logger.exception("failed to record an OpenAI stream chunk")
            return
        if (
            check_pin
            and call.wrapper.pins.check(call.agent, acc.model, None, log=False) is not None
        ):
            self._self_end()  # ends the span with the mismatch recorded, and raises it

    def _self_end(self) -> None:
        call = self._self_call
        if call.done:
            return
        acc = call.acc
        call.finish(
            (acc.attributes, (call.wrapper.capture,), acc.model) if acc is not None else None
        )

    def close(self) -> None:
        try:
            self.__wrapped__.close()
        finally:
            self._self_end()

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _AsyncTracedStream(_TracedStream):
    """The async counterpart of ``_TracedStream``."""

    def __aiter__(self) -> Any:
        return self

    async def __anext__(self) -> Any:
        try:
            chunk = await self.__wrapped__.__anext__()
        except StopAsyncIteration:
            self._self_end()
            raise
        except BaseException as exc:
            self._self_call.fail(exc)
            raise
        self._self_add(chunk)
        return chunk

    async def close(self) -> None:  # type: ignore[override]
        try:
            await self.__wrapped__.close()
        finally:
            self._self_end()

    async def __aenter__(self) -> Any:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def _below_openinference(fn: Any) -> Any:
    """The function OpenInference's instrumentor wrapped, when ``fn`` is that wrapper; else ``fn``.

    Any other wrapper (the application's own) is kept: only a layer known to
    do nothing under the suppression key is skipped.
    """
    inner = getattr(fn, "__wrapped__", None)
    layer = getattr(fn, "_self_wrapper", None)
    if inner is not None and type(layer).__module__.startswith(
        "openinference.instrumentation.openai"
    ):
        return inner
    return fn


class OpenAIChatWrapper:
    """Installs and removes the lean chat-completion tracing on the ``openai`` SDK.

    ``agent_name`` returns the current agent's name (for model pins); ``capture``
    says which content is recorded at all. Safe to ``install`` twice (no-op).
    """

    def __init__(
        self,
        tracer: trace_api.Tracer | LeanTracer,
        *,
        capture_messages: bool = True,
        capture_tool_io: bool = True,
        pins: ModelPins | None = None,
        agent_name: Callable[[], str] = lambda: "",
        context_attributes: Callable[[], Any] | None = None,
    ) -> None:
        self.tracer = tracer
        self.capture = _Capture(capture_messages, capture_tool_io)
        self.pins = pins or ModelPins()
        self.agent_name = agent_name
        self.context_attributes = context_attributes
        self._originals: tuple[Any, Any] | None = None
        self._openai: Any = None

    @property
    def installed(self) -> bool:
        return self._originals is not None

    def install(self) -> None:
        if self._originals is not None:
            return
        import openai

        self._openai = openai
        chat_type = openai.types.chat.ChatCompletion
        sync_orig, async_orig = openai.OpenAI.request, openai.AsyncOpenAI.request
        # chat calls run under the suppression key, so OpenInference's instrumentor underneath
        # would only pass them through: they go straight to the SDK's function instead
        sync_chat, async_chat = _below_openinference(sync_orig), _below_openinference(async_orig)
        wrapper = self

        @functools.wraps(sync_orig)
        def request(client: Any, *args: Any, **kwargs: Any) -> Any:
            if not args or args[0] is not chat_type or context_api.get_value(_SUPPRESS_KEY):
                return sync_orig(client, *args, **kwargs)
            started = wrapper._start(client, args)
            if started is None:
                return sync_orig(client, *args, **kwargs)
            call, token = started
            try:
                response = sync_chat(client, *args, **kwargs)
            except BaseException as exc:
                call.fail(exc)
                raise
            finally:
                context_api.detach(token)
            return wrapper._result(call, response, _TracedStream)

        @functools.wraps(async_orig)
        async def async_request(client: Any, *args: Any, **kwargs: Any) -> Any:
            if not args or args[0] is not chat_type or context_api.get_value(_SUPPRESS_KEY):
                return await async_orig(client, *args, **kwargs)
            started = wrapper._start(client, args)
            if started is None:
                return await async_orig(client, *args, **kwargs)
            call, token = started
            try:
                response = await async_chat(client, *args, **kwargs)
            except BaseException as exc:
                call.fail(exc)
                raise
            finally:
                context_api.detach(token)
            return wrapper._result(call, response, _AsyncTracedStream)

        request._agentledger = True  # type: ignore[attr-defined]
        async_request._agentledger = True  # type: ignore[attr-defined]
        openai.OpenAI.request = request  # type: ignore[method-assign, assignment]
        openai.AsyncOpenAI.request = async_request  # type: ignore[method-assign, assignment]
        self._originals = (sync_orig, async_orig)

    def uninstall(self) -> None:
        if self._originals is None:
            return
        openai = self._openai
        if getattr(openai.OpenAI.request, "_agentledger", False):
            openai.OpenAI.request, openai.AsyncOpenAI.request = self._originals
        else:  # someone patched on top of us: leave their wrapper, disable ours
            logger.warning(
                "openai.OpenAI.request was re-wrapped after AgentLedger; tracing stays patched in"
            )
        self._originals = None

    # -- the hot path ------------------------------------------------------------------------

    def _start(self, client: Any, args: tuple[Any, ...]) -> tuple[_Call, Token[Context]] | None:
        try:
            options = args[1]
            params = getattr(options, "json_data", None)
            if not isinstance(params, Mapping):
                return None
            provider = client.__dict__.get(_PROVIDER_SLOT)
            if provider is None:  # the client's host decides; computed once per client
                host = getattr(getattr(client, "base_url", None), "host", "") or ""
                provider = client.__dict__[_PROVIDER_SLOT] = _provider_from_host(host)
            # attributes go in after the start, without the SDK's per-value validation
            # (a sampler therefore sees none: sampling on LLM attributes is not supported)
            span = self.tracer.start_span("ChatCompletion")
            later = getattr(span, "set_attributes_later", None)
            if (
                later is not None
            ):  # a lean span: the request is read on the export thread, from a snapshot
                later(request_attributes, (_snapshot(params), provider, self.capture))
                attrs = self.context_attributes() if self.context_attributes is not None else None
            else:
                attrs = request_attributes(params, provider, self.capture)
                if self.context_attributes is not None:
                    attrs.update(self.context_attributes())
            if attrs:
                set_attributes(span, attrs)
            token = context_api.attach(context_with(span, _SUPPRESS))
            return _Call(span, self, self.agent_name()), token
        except Exception:
            logger.exception("failed to start an OpenAI span")
            return None

    def _result(self, call: _Call, response: Any, stream_type: type[_TracedStream]) -> Any:
        openai = self._openai
        try:
            if isinstance(response, (openai.Stream, openai.AsyncStream)):
                return stream_type(response, call)
            parsed = response
            if not isinstance(response, openai.types.chat.ChatCompletion) and callable(
                getattr(response, "parse", None)
            ):  # .with_raw_response: the parsed value is cached by the SDK
                parsed = response.parse()
                if isinstance(parsed, (openai.Stream, openai.AsyncStream)):
                    call.finish()
                    return response
            answer: _Answer | None = (
                response_attributes,
                (parsed, self.capture),
                getattr(parsed, "model", None),
            )
        except Exception:
            logger.exception("failed to record an OpenAI response")
            answer = None
        call.finish(answer)
        return response
