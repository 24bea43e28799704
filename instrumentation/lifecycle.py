"""``instrument()`` and ``uninstrument()``: one call to record an existing agent, one to stop.

What ``instrument()`` wires, in one place:

1. a TracerProvider: the application's own SDK provider when it has one (joined,
   never replaced), else a new one set as the global provider;
2. on it, one :class:`~agentledger.instrumentation.processors.Switchboard` holding
   the :class:`AttributionProcessor` (principal, unattributed, agent name) and a
   :class:`~agentledger.instrumentation.export_queue.ExportQueue` (no silent
   drops: a bounded wait, then the durable spool) that rewrites spans (capture
   switches, redaction, pin flags) and sends them over OTLP/HTTP to the
   collector, spooling what it cannot take;
3. AgentLedger's lean OpenAI chat wrapper, and every OpenInference instrumentor
   whose library is installed, with OpenInference's ``TraceConfig`` following
   the capture switches.

Idempotent: a second ``instrument()`` returns the running instrumentation
unchanged (call ``uninstrument()`` first to change the configuration).
``uninstrument()`` flushes, removes the wrappers and instrumentors it enabled
(not ones the application enabled itself) and empties the switchboard.
Configuration errors raise ``ValueError`` at once; a framework whose
instrumentation fails to load is logged and skipped: telemetry never stops the
agent from starting.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Union

from opentelemetry import context as otel_context
from opentelemetry import trace as trace_api
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanLimits, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter

from agentledger.instrumentation import config as cfg
from agentledger.instrumentation.capture import CaptureConfig
from agentledger.instrumentation.delivery import DeliveryConfig, ExporterSink, OTLPSink, spool_for
from agentledger.instrumentation.export_queue import ExportQueue
from agentledger.instrumentation.exporter import EdgeExporter, SpanRewriter
from agentledger.instrumentation.instrumentors import INSTRUMENTORS
from agentledger.instrumentation.losses import LossLedger
from agentledger.instrumentation.pinning import ModelPins, OnMismatch
from agentledger.instrumentation.processors import AttributionProcessor, Switchboard, current_agent
from agentledger.instrumentation.redaction import RedactionHook, RedactionPolicy
from agentledger.schemas.attributes import Resource as R

__all__ = ["Instrumentation", "flush", "instrument", "instrumentation", "uninstrument"]

logger = logging.getLogger(__name__)

SCOPE = "agentledger.instrumentation"
_ATTRIBUTE_LIMIT = (
    4096  # our own provider: long conversations keep every message (the SDK default is 128)
)

RedactSpec = Union[None, bool, str, Iterable[str], RedactionHook, RedactionPolicy]  # noqa: UP007 - a runtime alias


@dataclass
class Instrumentation:
    """What ``instrument()`` set up (returned by it, and by ``instrumentation()`` while active)."""

    provider: TracerProvider
    owns_provider: bool
    """True when AgentLedger created the provider; False when it joined the application's."""
    endpoint: str | None
    """OTLP/HTTP traces URL spans are exported to (None with ``export=False``)."""
    frameworks: tuple[str, ...]
    """Frameworks instrumented by this call (``openai`` is AgentLedger's own wrapper)."""
    skipped: dict[str, str]
    """Frameworks installed but not instrumented, with the reason."""
    capture: CaptureConfig
    redaction: RedactionPolicy | None
    pins: ModelPins
    agent_name: str
    _switchboard: Switchboard = field(repr=False)
    _instrumentors: list[Any] = field(default_factory=list, repr=False)
    _openai: Any = field(default=None, repr=False)
    losses: LossLedger | None = None
    """Spans lost in this process (None with ``export=False``): totals per agent and reason."""
    export_queue: ExportQueue | None = field(default=None, repr=False)


_LOCK = threading.RLock()
_STATE: Instrumentation | None = None
_SWITCHBOARDS: weakref.WeakKeyDictionary[TracerProvider, Switchboard] = weakref.WeakKeyDictionary()
_OWN_PROVIDER: TracerProvider | None = None


def instrumentation() -> Instrumentation | None:
    """The active instrumentation, or None."""
    return _STATE


def _model_pins(pins: Mapping[str, str] | None, on_mismatch: str | None) -> ModelPins:
    if pins is None and (raw := cfg.env("AGENTLEDGER_MODEL_PINS")) is not None:
        pins = cfg.parse_pairs(raw, "AGENTLEDGER_MODEL_PINS")
    mode = on_mismatch or cfg.env("AGENTLEDGER_ON_PIN_MISMATCH") or "flag"
    if mode not in ("raise", "flag"):
        raise ValueError(
            f"on_pin_mismatch / AGENTLEDGER_ON_PIN_MISMATCH: {mode!r} is not 'raise' or 'flag'"
        )
    on: OnMismatch = "raise" if mode == "raise" else "flag"
    return ModelPins(pins, on)


def _selected(names: Iterable[str] | None, disabled: Iterable[str] | None) -> set[str]:
    known = {i.name for i in INSTRUMENTORS}
    if names is None and (raw := cfg.env("AGENTLEDGER_INSTRUMENTORS")) is not None:
        names = [n.strip() for n in raw.split(",") if n.strip()]
    if disabled is None and (raw := cfg.env("AGENTLEDGER_DISABLED_INSTRUMENTORS")) is not None:
        disabled = [n.strip() for n in raw.split(",") if n.strip()]
    chosen = set(known if names is None else names)
    off = set(disabled or ())
    unknown = (chosen | off) - known
    if unknown:
        raise ValueError(f"unknown instrumentors {sorted(unknown)}; known: {sorted(known)}")
    return chosen - off


def _provider(
    explicit: TracerProvider | None, service_name: str | None
) -> tuple[TracerProvider, bool]:
    """The provider to join or the one to create (and whether AgentLedger owns it)."""
    global _OWN_PROVIDER
    if explicit is not None:
        return explicit, explicit is _OWN_PROVIDER
    current = trace_api.get_tracer_provider()
    if isinstance(current, TracerProvider):
        return current, current is _OWN_PROVIDER
    attributes: dict[str, Any] = {}
    if service_name:
        attributes[R.SERVICE_NAME] = service_name
    limit = (
        None
        if cfg.env("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT") or cfg.env("OTEL_ATTRIBUTE_COUNT_LIMIT")
        else _ATTRIBUTE_LIMIT
    )
    provider = TracerProvider(
        resource=Resource.create(attributes), span_limits=SpanLimits(max_span_attributes=limit)
    )
    trace_api.set_tracer_provider(provider)
    if (
        trace_api.get_tracer_provider() is not provider
    ):  # a non-SDK provider was set before: keep ours private
        logger.warning(
            "a non-SDK global TracerProvider is set; AgentLedger uses its own provider for its spans"
        )
    _OWN_PROVIDER = provider
    return provider, True


def _switchboard(provider: TracerProvider) -> Switchboard:
    board = _SWITCHBOARDS.get(provider)
    if board is None:
        board = _SWITCHBOARDS[provider] = Switchboard()
        provider.add_span_processor(board)
    return board


def _trace_config(capture: CaptureConfig) -> Any:
    try:
        from openinference.instrumentation import TraceConfig
    except ImportError:
        return None
    kwargs: dict[str, Any] = capture.trace_config_kwargs()
    return TraceConfig(**kwargs)


def _context_attributes() -> Any:
    """OpenInference's ``using_attributes`` context (session, user, metadata, tags), if available.

    Read straight from the current context (one lookup, then dict probes)
    rather than through ``get_attributes_from_context``, which looks the
    context up once per key: this runs on every LLM call.
    """
    try:
        from openinference.instrumentation.context_attributes import CONTEXT_ATTRIBUTES
    except ImportError:
        return None
    keys = frozenset(CONTEXT_ATTRIBUTES)
    get_current = otel_context.get_current

    def read() -> dict[str, Any]:  # a context holds a few entries: walk them, not the keys
        return {k: v for k, v in get_current().items() if k in keys}

    return read


def instrument(
    *,
    endpoint: str | None = None,
    api_key: str | None = None,
    service_name: str | None = None,
    agent_name: str | None = None,
    headers: Mapping[str, str] | None = None,
    tracer_provider: TracerProvider | None = None,
    export: bool = True,
    exporter: SpanExporter | None = None,
    capture: bool | CaptureConfig | Mapping[str, bool] | None = None,
    capture_messages: bool | None = None,
    capture_documents: bool | None = None,
    capture_tool_io: bool | None = None,
    redact: RedactSpec = None,
    model_pins: Mapping[str, str] | None = None,
    on_pin_mismatch: OnMismatch | None = None,
    instrumentors: Iterable[str] | None = None,
    disabled_instrumentors: Iterable[str] | None = None,
    lean_openai: bool = True,
    on_full: str | None = None,
    spool_dir: str | None = None,
) -> Instrumentation:
    """Record this process's agent: export spans to the collector and instrument installed frameworks.

    Every argument falls back to its ``AGENTLEDGER_*`` variable, then the
    standard ``OTEL_*`` one (see :mod:`agentledger.instrumentation.config`).
    ``exporter`` replaces the OTLP exporter (tests, other backends); it is
    still wrapped by the edge exporter, but has no spool: a batch it fails to
    export is counted as lost and reported (``on_full="block"`` retries it
    instead); durable delivery needs ``endpoint``. ``export=False`` only stamps spans
    (when the application already exports them to the collector).
    ``redact``: ``True``/``"all"``, preset names, a hook ``(key, value) -> value``,
    or a :class:`RedactionPolicy` (default: ``AGENTLEDGER_REDACT``, else off).
    ``model_pins``: agent name (``"*"`` for any) -> the model that must answer.
    ``on_full``: ``"spool"`` (default: a full export queue waits a few ms, then
    spools) or ``"block"`` (the caller waits; never drops); ``spool_dir``: where
    undelivered requests are kept (``AGENTLEDGER_ON_FULL``, ``AGENTLEDGER_SPOOL_DIR``).
    """
    global _STATE
    with _LOCK:
        if _STATE is not None:
            logger.debug("instrument() called again: already instrumented, configuration unchanged")
            return _STATE
        # configuration: errors here are the caller's to fix, so they raise
        capture_cfg = CaptureConfig.resolve(
            capture, messages=capture_messages, documents=capture_documents, tool_io=capture_tool_io
        )
        redaction = RedactionPolicy.of(
            redact if redact is not None else cfg.env("AGENTLEDGER_REDACT")
        )
        pins = _model_pins(model_pins, on_pin_mismatch)
        chosen = _selected(instrumentors, disabled_instrumentors)
        agent = agent_name or cfg.env("AGENTLEDGER_AGENT_NAME") or ""
        url = cfg.resolve_endpoint(endpoint) if export and exporter is None else None
        export_headers = cfg.resolve_headers(api_key, headers) if url is not None else {}
        delivery = DeliveryConfig.resolve(on_full, spool_dir) if export else None

        provider, owns = _provider(tracer_provider, cfg.resolve_service_name(service_name))
        processors: list[SpanProcessor] = [AttributionProcessor(agent)]
        losses = queue = None
        if delivery is not None:
            losses = LossLedger(agent)
            rewriter = SpanRewriter(capture_cfg, redaction, pins, agent)
            sink: OTLPSink | ExporterSink
            if exporter is None:
                from agentledger.instrumentation.sender import OTLPSender

                assert url is not None
                sender = OTLPSender(url, export_headers)
                spool = spool_for(delivery, sender)
                sink = OTLPSink(sender, rewriter, spool, losses, delivery.max_backoff_s)
            else:
                sink = ExporterSink(EdgeExporter(exporter, rewriter), losses)
                logger.info(
                    "AgentLedger exports through %s: no spool (spans it fails to export are "
                    "counted as lost); pass endpoint= for durable delivery",
                    type(exporter).__name__,
                )
            queue = ExportQueue(sink, delivery, losses)
            processors.append(queue)
        board = _switchboard(provider)
        for old in board.set(tuple(processors)):
            old.shutdown()
        state = Instrumentation(
            provider, owns, url, (), {}, capture_cfg, redaction, pins, agent, board
        )
        state.losses, state.export_queue = losses, queue
        _enable_frameworks(state, chosen, lean_openai)
        _STATE = state
        logger.info(
            "AgentLedger instrumentation on (%s provider, export to %s): %s",
            "own" if owns else "joined",
            url or ("custom exporter" if exporter else "nowhere"),
            ", ".join(state.frameworks) or "no frameworks",
        )
        return state


def _enable_frameworks(state: Instrumentation, chosen: set[str], lean_openai: bool) -> None:
    trace_config = None
    enabled: list[str] = []
    for spec in INSTRUMENTORS:
        if spec.name not in chosen or not spec.target_installed():
            continue
        try:
            inst = spec.load()
            if inst is not None:
                if inst.is_instrumented_by_opentelemetry:
                    state.skipped[spec.name] = "already instrumented by the application"
                    if spec.name != "openai":
                        continue
                else:
                    if trace_config is None:
                        trace_config = _trace_config(state.capture)
                    kwargs: dict[str, Any] = {"tracer_provider": state.provider}
                    if trace_config is not None:
                        kwargs["config"] = trace_config
                    inst.instrument(**kwargs)
                    if inst.is_instrumented_by_opentelemetry:
                        state._instrumentors.append(inst)
                        if spec.name != "openai":
                            enabled.append(spec.name)
                    else:
                        state.skipped[spec.name] = (
                            "instrumentor refused (dependency conflict, see the log)"
                        )
            elif spec.name != "openai":
                state.skipped[spec.name] = (
                    f"library installed but not its instrumentor: pip install {spec.package}"
                )
                continue
            if spec.name == "openai":
                if lean_openai:
                    _install_openai(state)
                    state.skipped.pop("openai", None)
                    enabled.append("openai")
                elif inst is not None and inst in state._instrumentors:
                    enabled.append("openai")
                elif inst is None:
                    state.skipped["openai"] = f"pip install {spec.package}, or use lean_openai=True"
        except Exception as exc:  # telemetry never breaks the agent
            logger.exception("could not instrument %s", spec.name)
            state.skipped[spec.name] = f"failed: {type(exc).__name__}: {exc}"
    state.frameworks = tuple(enabled)


def _install_openai(state: Instrumentation) -> None:
    from agentledger.instrumentation._lean import LeanTracer
    from agentledger.instrumentation._openai import OpenAIChatWrapper
    from agentledger.instrumentation.version import VERSION

    default_agent = state.agent_name
    wrapper = OpenAIChatWrapper(
        LeanTracer(state.provider.get_tracer(SCOPE, VERSION), state._switchboard),
        capture_messages=state.capture.messages,
        capture_tool_io=state.capture.tool_io,
        pins=state.pins,
        agent_name=lambda: current_agent(default_agent),
        context_attributes=_context_attributes(),
    )
    wrapper.install()
    state._openai = wrapper


def flush(timeout_millis: int = 30_000) -> bool:
    """Export every span recorded so far (blocks up to ``timeout_millis``); True when all went out."""
    state = _STATE
    return state._switchboard.force_flush(timeout_millis) if state is not None else True


def uninstrument() -> None:
    """Undo ``instrument()``: flush, unpatch, stop exporting. Safe to call when not instrumented."""
    global _STATE
    with _LOCK:
        state = _STATE
        if state is None:
            return
        _STATE = None
        if state._openai is not None:
            try:
                state._openai.uninstall()
            except Exception:
                logger.exception("could not remove the OpenAI wrapper")
        for inst in reversed(state._instrumentors):
            try:
                inst.uninstrument()
            except Exception:
                logger.exception("could not uninstrument %s", type(inst).__name__)
        for processor in state._switchboard.set(()):
            try:
                if not isinstance(processor, ExportQueue):  # its shutdown flushes, bounded
                    processor.force_flush()
                processor.shutdown()
            except Exception:
                logger.exception("could not flush %s", type(processor).__name__)
        logger.info("AgentLedger instrumentation off")
