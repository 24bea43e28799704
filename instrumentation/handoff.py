"""Handoffs between agents: one audit trail when agent A passes work to agent B.

A handoff travels in a *carrier*: Kafka record headers, HTTP headers, a ticket's fields, a
queue message, a database row. ``inject_handoff`` writes into it the W3C ``traceparent`` and
``tracestate`` of a short ``handoff`` span that A starts for the purpose, and W3C ``baggage``
with the principal (``acting_for``), the delegation chain of agents so far, an opaque run id
and the handoff's id. ``receive_handoff`` reads them back in B and opens B's ``invoke_agent``
span, inside which every span B starts carries A's principal and the chain extended by B.

Why a span of its own on the sending side: a link needs a span to point at, and "A handed this
to B at 10:02:03" is itself a fact the audit trail must hold; the receiving span carries the
same ``agentledger.handoff.id``, so the two are joined even where links are not kept.

Asynchronous handoffs (a queue, a topic, a ticket) follow the OpenTelemetry messaging
conventions: B's work starts a trace of its own with a *link* to A's handoff span, because the
consumer may run hours later and many times. A synchronous call (``synchronous=True``: HTTP,
an MCP or A2A request answered in-line) continues A's trace as a child of the handoff span.

Where an OpenTelemetry instrumentation already propagates context (kafka-python's, requests',
httpx's, all with the default ``tracecontext,baggage`` propagators), the principal and the
delegation chain ride along in baggage with no code change; ``receive_handoff`` on the
receiving side is what turns them into B's attribution. Telemetry never breaks the agent: a
carrier that cannot be read or written is logged and the work goes on, marked
``agentledger.handoff.broken`` on the receiving side.

Carriers: any mutable mapping (values written as ``str``, or as ``bytes`` when the mapping
already holds bytes or ``as_bytes=True``), or a list of ``(key, bytes)`` pairs, which is what
kafka-python takes as ``headers=`` and gives back as ``record.headers``. One line each::

    queue.put({"task": task, "handoff": inject_handoff({}, to_agent="executor")})
    producer.send(topic, value, headers=inject_handoff([], to_agent="executor"))
    httpx.post(url, json=body, headers=inject_handoff({}, to_agent="executor"))
    ticket.fields.update(inject_handoff({}, to_agent="executor"))   # or a row's JSON column
"""

from __future__ import annotations

import contextvars
import logging
import uuid
from collections.abc import Iterable, Iterator, MutableMapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from opentelemetry import baggage, context, trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.propagators.textmap import Getter, Setter
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from agentledger.instrumentation.principal import (
    _CURRENT,
    Principal,
    current_principal,
    narrow,
    principal_from_baggage,
    scopes_to_baggage,
)
from agentledger.instrumentation.processors import _AGENT, _CHAIN, _RUN, current_agent
from agentledger.schemas.attributes import AgentLedger as AL
from agentledger.schemas.attributes import GenAI

__all__ = [
    "Handoff",
    "current_chain",
    "delegation_refusal",
    "inject_handoff",
    "receive_handoff",
]

log = logging.getLogger(__name__)

Carrier: TypeAlias = MutableMapping[str, Any] | list[tuple[str, bytes]]
"""Where a handoff is written: a mapping, or kafka-python's list of (key, bytes) headers."""

_PROPAGATOR = CompositePropagator([TraceContextTextMapPropagator(), W3CBaggagePropagator()])
"""Explicit, not the global one: a handoff must carry both whatever the process configured."""

_SCOPE = "agentledger.handoff"
_CHAIN_SEPARATOR = ","


_BROKEN: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "agentledger_handoff_broken", default=False
)


def current_chain() -> tuple[str, ...]:
    """The agents the current work passed through, ending with the current agent; () outside
    any handoff."""
    return _CHAIN.get() or ()


class _CarrierSetter(Setter[Carrier]):
    def __init__(self, as_bytes: bool) -> None:
        self.as_bytes = as_bytes

    def set(self, carrier: Carrier, key: str, value: str) -> None:
        if isinstance(carrier, list):
            carrier[:] = [(k, v) for k, v in carrier if k != key]
            carrier.append((key, value.encode()))
        else:
            carrier[key] = value.encode() if self.as_bytes else value


class _CarrierGetter(Getter[Any]):
    """Reads mappings (HTTP headers case-insensitively), protobuf Structs and header lists."""

    def get(self, carrier: Any, key: str) -> list[str] | None:
        if isinstance(carrier, Sequence) and not isinstance(carrier, (str, bytes)):
            values = [v for k, v in carrier if _text(k).lower() == key]
        else:  # a mapping, or anything indexable by key (a protobuf Struct: A2A metadata)
            value = carrier[key] if key in carrier else None
            if value is None:
                value = next((carrier[k] for k in carrier if _text(k).lower() == key), None)
            values = [] if value is None else [value]
        return [_text(v) for v in values] or None

    def keys(self, carrier: Any) -> list[str]:
        if isinstance(carrier, Sequence) and not isinstance(carrier, (str, bytes)):
            return [_text(k) for k, _ in carrier]
        return [_text(k) for k in carrier]


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, (bytes, bytearray)) else str(value)


def _holds_bytes(carrier: Carrier) -> bool:
    if isinstance(carrier, list):
        return True
    return any(isinstance(v, (bytes, bytearray)) for v in carrier.values())


def _sending_chain(agent: str) -> tuple[str, ...]:
    """The chain as it leaves this agent: what it received, ending with this agent."""
    chain = current_chain()
    if agent and (not chain or chain[-1] != agent):
        chain = (*chain, agent)
    return chain


def inject_handoff(
    carrier: Carrier,
    *,
    to_agent: str | None = None,
    scopes: Iterable[str] | None = None,
    as_bytes: bool | None = None,
    tracer_provider: trace.TracerProvider | None = None,
) -> Carrier:
    """Write the current work's context into ``carrier`` for the agent it goes to; returns it.

    Starts and ends a ``handoff`` span (kind PRODUCER) in the current trace, which the receiver
    links to. ``scopes``: hand over only these of the principal's scopes (never more than it
    holds: ``principal.narrow``). ``as_bytes``: write bytes values (default: when the carrier
    already holds bytes, or is a header list).
    """
    try:
        agent = current_agent()
        chain = _sending_chain(agent)
        run_id = _RUN.get() or uuid.uuid4().hex
        handoff_id = uuid.uuid4().hex
        attrs: dict[str, Any] = {AL.RUN_ID: run_id, AL.HANDOFF_ID: handoff_id}
        if chain:
            attrs[AL.DELEGATION_CHAIN] = list(chain)
        if to_agent:
            attrs[AL.HANDOFF_TO_AGENT] = to_agent
        tracer = trace.get_tracer(_SCOPE, tracer_provider=tracer_provider)
        name = f"handoff {to_agent}" if to_agent else "handoff"
        with tracer.start_as_current_span(name, kind=trace.SpanKind.PRODUCER, attributes=attrs):
            ctx = baggage.set_baggage(AL.RUN_ID, run_id)
            ctx = baggage.set_baggage(AL.HANDOFF_ID, handoff_id, context=ctx)
            if chain:
                ctx = baggage.set_baggage(
                    AL.DELEGATION_CHAIN, _CHAIN_SEPARATOR.join(chain), context=ctx
                )
            principal = current_principal()
            if principal is not None:  # acting_for put it in baggage already; make sure
                ctx = baggage.set_baggage(AL.PRINCIPAL_ID, principal.id, context=ctx)
                ctx = baggage.set_baggage(
                    AL.PRINCIPAL_CHAIN, _CHAIN_SEPARATOR.join(principal.chain), context=ctx
                )
                if principal.policy:
                    ctx = baggage.set_baggage(AL.POLICY_ID, principal.policy, context=ctx)
                handed = narrow(principal.scopes, scopes)
                if handed is not None:
                    ctx = baggage.set_baggage(
                        AL.PRINCIPAL_SCOPES, scopes_to_baggage(handed), context=ctx
                    )
                    trace.get_current_span().set_attribute(AL.PRINCIPAL_SCOPES, list(handed))
            setter = _CarrierSetter(_holds_bytes(carrier) if as_bytes is None else as_bytes)
            _PROPAGATOR.inject(carrier, context=ctx, setter=setter)
    except Exception:  # telemetry never breaks the agent
        log.exception("agentledger: could not write the handoff context")
    return carrier


@dataclass(frozen=True)
class Handoff:
    """What a receiving agent learned from the carrier."""

    agent: str
    from_agent: str
    chain: tuple[str, ...]
    principal: Principal | None
    run_id: str
    handoff_id: str
    link: trace.SpanContext | None = field(default=None, repr=False)
    broken: bool = False


def _read(carrier: Any, agent_name: str) -> tuple[context.Context, Handoff]:
    ctx = _PROPAGATOR.extract(carrier, getter=_CarrierGetter())
    sender = trace.get_current_span(ctx).get_span_context()
    entries = baggage.get_all(ctx)
    raw_chain = str(entries.get(AL.DELEGATION_CHAIN) or "")
    received = tuple(a for a in raw_chain.split(_CHAIN_SEPARATOR) if a)
    chain = (*received, agent_name)
    handoff = Handoff(
        agent=agent_name,
        from_agent=received[-1] if received else "",
        chain=chain,
        principal=principal_from_baggage(ctx),
        run_id=str(entries.get(AL.RUN_ID) or uuid.uuid4().hex),
        handoff_id=str(entries.get(AL.HANDOFF_ID) or ""),
        link=sender if sender.is_valid else None,
        broken=not sender.is_valid,
    )
    return ctx, handoff


def _unreadable(agent_name: str) -> tuple[context.Context, Handoff]:
    return context.Context(), Handoff(
        agent=agent_name,
        from_agent="",
        chain=(agent_name,),
        principal=None,
        run_id=uuid.uuid4().hex,
        handoff_id="",
        broken=True,
    )


@contextmanager
def receive_handoff(
    carrier: Any,
    *,
    agent_name: str,
    synchronous: bool = False,
    tracer_provider: trace.TracerProvider | None = None,
) -> Iterator[Handoff]:
    """Run the body as agent ``agent_name`` continuing the work the carrier hands over.

    Opens an ``invoke_agent`` span: asynchronous (default) in a new trace linked to the
    sender's handoff span, ``synchronous`` as its child. Inside, spans carry the sender's
    principal, the chain extended by ``agent_name`` and the run id; the body's exceptions are
    recorded on the span and re-raised unchanged.
    """
    if not agent_name:
        raise ValueError("receive_handoff needs the receiving agent's name")
    try:
        extracted, handoff = _read(carrier, agent_name)
    except Exception:  # a carrier we cannot read must not stop the work
        log.warning("agentledger: unreadable handoff carrier; starting a new chain", exc_info=True)
        extracted, handoff = _unreadable(agent_name)
    attrs: dict[str, Any] = {
        GenAI.OPERATION_NAME: "invoke_agent",
        GenAI.AGENT_NAME: agent_name,
        AL.DELEGATION_CHAIN: list(handoff.chain),
        AL.RUN_ID: handoff.run_id,
    }
    if handoff.from_agent:
        attrs[AL.HANDOFF_FROM_AGENT] = handoff.from_agent
    if handoff.handoff_id:
        attrs[AL.HANDOFF_ID] = handoff.handoff_id
    if handoff.broken:
        attrs[AL.HANDOFF_BROKEN] = True
    if synchronous or handoff.link is None:
        parent = extracted if synchronous else context.Context()
        links: list[trace.Link] = []
    else:  # a new trace; its baggage (principal, chain) still comes along
        parent = baggage.set_baggage(AL.RUN_ID, handoff.run_id, context=context.Context())
        for key, value in baggage.get_all(extracted).items():
            parent = baggage.set_baggage(key, value, context=parent)
        links = [trace.Link(handoff.link, {AL.HANDOFF_ID: handoff.handoff_id})]
    tokens = (
        _AGENT.set(agent_name),
        _CHAIN.set(handoff.chain),
        _RUN.set(handoff.run_id),
        _CURRENT.set(handoff.principal),  # None too: no principal came, none is assumed
    )
    broken = _BROKEN.set(handoff.broken)
    attached = context.attach(parent)
    tracer = trace.get_tracer(_SCOPE, tracer_provider=tracer_provider)
    try:
        with tracer.start_as_current_span(
            f"invoke_agent {agent_name}",
            kind=trace.SpanKind.CONSUMER if links else trace.SpanKind.SERVER,
            attributes=attrs,
            links=links,
        ):
            yield handoff
    finally:
        context.detach(attached)
        _BROKEN.reset(broken)
        _CURRENT.reset(tokens[3])
        _RUN.reset(tokens[2])
        _CHAIN.reset(tokens[1])
        _AGENT.reset(tokens[0])


def delegation_refusal(scope: str | None = None) -> str | None:
    """Why the current work may not run a governed tool needing ``scope``, or None.

    Authority flows down the delegation chain and only narrows: inside a received handoff the
    work needs a principal that came with it (a broken or anonymous handoff delegates nothing),
    and a tool's ``scope`` must be among the principal's scopes when those are restricted.
    """
    principal = current_principal()
    chain = current_chain()
    if chain and _BROKEN.get():
        return f"the handoff to {chain[-1]!r} carried no context, so no authority was delegated"
    if chain and principal is None:
        return f"no principal delegated the work that reached {chain[-1]!r} ({' -> '.join(chain)})"
    if scope and principal is not None and principal.scopes is not None:
        if scope not in principal.scopes:
            granted = ", ".join(principal.scopes) or "none"
            via = f" via {' -> '.join(chain)}" if chain else ""
            return f"scope {scope!r} was not granted by {principal.id!r}{via} (granted: {granted})"
    return None
