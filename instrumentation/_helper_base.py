"""What ``retrieval``, ``tool`` and ``llm_call`` share: one span as context manager and decorator.

``_SpanHelper`` owns the span's life (start in the current context, record the
user's exception and re-raise it unchanged, end once); a subclass only says
which attributes go in at the start and how a decorated function's arguments
and result are read. Helpers reach the instrumentation state lazily: importing
them must not pull in ``lifecycle``.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from opentelemetry import context as context_api
from opentelemetry import trace as trace_api
from opentelemetry.trace import Span, Status, StatusCode

from agentledger.instrumentation._openai_attrs import _JSON_ENCODE as _ENCODE
from agentledger.instrumentation._openai_attrs import _Capture
from agentledger.instrumentation._spans import set_attributes
from agentledger.schemas.attributes import OpenInference as OI

logger = logging.getLogger("agentledger.instrumentation.helpers")

F = TypeVar("F", bound=Callable[..., Any])
_JSON = "application/json"
_TEXT = "text/plain"


def _state() -> Any:
    from agentledger.instrumentation.lifecycle import instrumentation

    return instrumentation()


def _tracer() -> trace_api.Tracer:
    from agentledger.instrumentation.lifecycle import SCOPE
    from agentledger.instrumentation.version import VERSION

    state = _state()
    provider = state.provider if state is not None else trace_api.get_tracer_provider()
    return provider.get_tracer(SCOPE, VERSION)


def _capture() -> _Capture:
    state = _state()
    if state is None:
        return _Capture(True, True)
    return _Capture(state.capture.messages, state.capture.tool_io)


def _documents_on() -> bool:
    state = _state()
    return state is None or state.capture.documents


def _value(value: Any) -> tuple[str, str]:
    """A value as ``input.value``/``output.value`` text and its mime type."""
    if isinstance(value, str):
        return value, _TEXT
    if hasattr(value, "model_dump") and callable(value.model_dump):
        try:
            value = value.model_dump(mode="json")
        except Exception:  # not JSON-able as a model: fall back to str() per value below
            logger.debug("model_dump failed for %s", type(value).__name__, exc_info=True)
    return _ENCODE(value), _JSON


class _SpanHelper:
    """Context manager + decorator around one span; subclasses fill in the attributes."""

    kind = ""
    default_name = ""

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        if len(args) == 1 and not kwargs and callable(args[0]) and not isinstance(args[0], str):
            return cls()(args[0])  # used bare: @tool instead of @tool()
        return super().__new__(cls)

    def __init__(self, name: str = "") -> None:
        self.name = name or self.default_name
        self.span: Span | None = None
        self._token: object = None
        self._attrs: dict[str, Any] = {}

    # -- what subclasses provide ---------------------------------------------------------------

    def _start_attributes(self) -> dict[str, Any]:
        return {OI.SPAN_KIND: self.kind}

    def _copy_for_call(
        self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> _SpanHelper:
        raise NotImplementedError

    def _record_result(self, result: Any) -> None:
        raise NotImplementedError

    def _before_end(self) -> BaseException | None:
        """Last attributes before the span ends; an exception to raise instead of returning."""
        return None

    # -- context manager ------------------------------------------------------------------------

    def set(self, key: str, value: Any) -> None:
        """Add one attribute to the span."""
        self._attrs[key] = value

    def __enter__(self) -> Any:
        try:
            attrs = self._start_attributes()
            self.span = _tracer().start_span(self.name, attributes={OI.SPAN_KIND: self.kind})
            set_attributes(self.span, attrs)
            self._token = context_api.attach(trace_api.set_span_in_context(self.span))
        except Exception:
            logger.exception("could not start a %s span", self.kind)
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        span = self.span
        if span is None:
            return
        if self._token is not None:
            context_api.detach(self._token)  # type: ignore[arg-type]
            self._token = None
        error: BaseException | None = None
        try:
            if exc is None:
                error = self._before_end()
            if self._attrs:
                set_attributes(span, self._attrs)
            failure = exc or error
            if failure is not None:
                span.record_exception(failure)
                span.set_status(Status(StatusCode.ERROR, f"{type(failure).__name__}: {failure}"))
            else:
                span.set_status(Status(StatusCode.OK))
            span.end()
        except Exception:
            logger.exception("could not end a %s span", self.kind)
        if error is not None:
            raise error

    async def __aenter__(self) -> Any:
        return self.__enter__()

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        self.__exit__(exc_type, exc, tb)

    # -- decorator ----------------------------------------------------------------------------

    def __call__(self, fn: F) -> F:
        helper = self
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                with helper._for_call(fn, args, kwargs) as h:
                    result = await fn(*args, **kwargs)
                    h._safe_record(result)
                    return result

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with helper._for_call(fn, args, kwargs) as h:
                result = fn(*args, **kwargs)
                h._safe_record(result)
                return result

        return wrapper  # type: ignore[return-value]

    def _for_call(
        self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> _SpanHelper:
        try:
            return self._copy_for_call(fn, args, kwargs)
        except Exception:
            logger.exception("could not read the arguments of %s", getattr(fn, "__name__", fn))
            blank = type(self)()
            blank.name = self.name
            return blank

    def _safe_record(self, result: Any) -> None:
        try:
            self._record_result(result)
        except Exception:
            logger.exception("could not record the result of %s", self.name)


def _bound_arguments(
    fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> dict[str, Any]:
    try:
        bound = inspect.signature(fn).bind(*args, **kwargs)
    except (TypeError, ValueError):
        return {"args": list(args), "kwargs": kwargs}
    bound.apply_defaults()
    out = dict(bound.arguments)
    for name in ("self", "cls"):
        out.pop(name, None)
    return out
