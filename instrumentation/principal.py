"""Named principals: who an agent acts for, carried in context.

``acting_for`` puts a principal (and its delegation chain and policy) into the
current context, and into W3C baggage so downstream services see it too.
Every span started inside is stamped with it by AgentLedger's span processor;
a span started with no principal is marked unattributed, never guessed.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from opentelemetry import baggage, context

from agentledger.schemas.attributes import AgentLedger as AL

__all__ = ["Principal", "acting_for", "current_principal", "narrow", "principal_from_baggage"]

F = TypeVar("F", bound=Callable[..., Any])

_CURRENT: contextvars.ContextVar[Principal | None] = contextvars.ContextVar(
    "agentledger_principal", default=None
)


@dataclass(frozen=True)
class Principal:
    """A named human (or system) principal and the chain of delegation that led to the agent."""

    id: str
    name: str = ""
    role: str = ""
    policy: str = ""
    chain: tuple[str, ...] = field(default_factory=tuple)
    """Delegation chain, outermost first, ending with ``id``."""
    scopes: tuple[str, ...] | None = None
    """What the principal lets the agent do (``governed_tool(scope=...)``); None: not restricted.
    Only ever narrowed on the way down (``narrow``)."""

    def attributes(self) -> dict[str, Any]:
        """Span attributes that record this principal."""
        attrs: dict[str, Any] = {AL.PRINCIPAL_ID: self.id, AL.PRINCIPAL_CHAIN: list(self.chain)}
        if self.scopes is not None:
            attrs[AL.PRINCIPAL_SCOPES] = list(self.scopes)
        if self.name:
            attrs[AL.PRINCIPAL_NAME] = self.name
        if self.role:
            attrs[AL.PRINCIPAL_ROLE] = self.role
        if self.policy:
            attrs[AL.POLICY_ID] = self.policy
        return attrs

    @functools.cached_property
    def span_attributes(self) -> Mapping[str, Any]:
        """``attributes()`` in the SDK's stored form (chain as a tuple), built once per principal.

        The span processor stamps these on every span; do not mutate.
        """
        attrs = self.attributes()
        attrs[AL.PRINCIPAL_CHAIN] = tuple(self.chain)
        if self.scopes is not None:
            attrs[AL.PRINCIPAL_SCOPES] = tuple(self.scopes)
        return attrs


def narrow(granted: tuple[str, ...] | None, asked: Iterable[str] | None) -> tuple[str, ...] | None:
    """The scopes passed on: what was ``asked`` for, within what was ``granted``; never more.

    ``None`` means not restricted: asking for nothing keeps what was granted, and an unrestricted
    grant gives exactly what is asked for.
    """
    if asked is None:
        return granted
    wanted = tuple(dict.fromkeys(str(a) for a in asked))
    if granted is None:
        return wanted
    return tuple(a for a in wanted if a in granted)


def scopes_to_baggage(scopes: tuple[str, ...] | None) -> str | None:
    return None if scopes is None else ",".join(scopes)


def _scopes_from_baggage(raw: object) -> tuple[str, ...] | None:
    if raw is None:
        return None
    return tuple(s for s in str(raw).split(",") if s)


def principal_from_baggage(ctx: context.Context | None = None) -> Principal | None:
    """The principal an upstream service put into W3C baggage, or None.

    A downstream service has no ``acting_for`` of its own: the principal id,
    chain and policy arrive as baggage with the incoming request.
    """
    entries = baggage.get_all(ctx)
    if not entries:
        return None
    pid = entries.get(AL.PRINCIPAL_ID)
    if not pid:
        return None
    chain_raw = entries.get(AL.PRINCIPAL_CHAIN)
    chain = tuple(c for c in str(chain_raw).split(",") if c) if chain_raw else (str(pid),)
    policy = entries.get(AL.POLICY_ID) or ""
    scopes = _scopes_from_baggage(entries.get(AL.PRINCIPAL_SCOPES))
    return Principal(str(pid), policy=str(policy), chain=chain, scopes=scopes)


def current_principal() -> Principal | None:
    """The principal the current code acts for, or None."""
    return _CURRENT.get()


class acting_for:
    """Context manager and decorator: run the body on behalf of ``principal_id``.

    ``on_behalf_of`` names the principal who delegated (its chain is extended);
    when omitted inside another ``acting_for``, the outer principal delegated. ``scopes``
    restricts what governed tools may run (``governed_tool(scope=...)``); inside an outer
    principal with scopes, only those of them asked for again are kept (authority narrows).
    """

    def __init__(
        self,
        principal_id: str,
        *,
        name: str = "",
        role: str = "",
        on_behalf_of: str | None = None,
        policy: str = "",
        scopes: Iterable[str] | None = None,
    ) -> None:
        if not principal_id:
            raise ValueError("acting_for needs a principal id")
        self.scopes = None if scopes is None else tuple(scopes)
        self.principal_id = principal_id
        self.name = name
        self.role = role
        self.on_behalf_of = on_behalf_of
        self.policy = policy
        self._tokens: list[tuple[contextvars.Token[Principal | None], object]] = []

    def _principal(self) -> Principal:
        outer = current_principal()
        if self.on_behalf_of is not None:
            base = (
                outer.chain
                if outer is not None and outer.id == self.on_behalf_of
                else (self.on_behalf_of,)
            )
        else:
            base = outer.chain if outer is not None else ()
        chain = tuple(base) + (self.principal_id,)
        policy = self.policy or (outer.policy if outer is not None else "")
        scopes = narrow(outer.scopes if outer is not None else None, self.scopes)
        return Principal(self.principal_id, self.name, self.role, policy, chain, scopes)

    def __enter__(self) -> Principal:
        principal = self._principal()
        ctx = baggage.set_baggage(AL.PRINCIPAL_ID, principal.id)
        ctx = baggage.set_baggage(AL.PRINCIPAL_CHAIN, ",".join(principal.chain), context=ctx)
        if principal.policy:
            ctx = baggage.set_baggage(AL.POLICY_ID, principal.policy, context=ctx)
        if principal.scopes is not None:
            ctx = baggage.set_baggage(
                AL.PRINCIPAL_SCOPES, scopes_to_baggage(principal.scopes), context=ctx
            )
        self._tokens.append((_CURRENT.set(principal), context.attach(ctx)))
        return principal

    def __exit__(self, *exc: object) -> None:
        var_token, ctx_token = self._tokens.pop()
        context.detach(ctx_token)  # type: ignore[arg-type]
        _CURRENT.reset(var_token)

    def __call__(self, fn: F) -> F:
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                with acting_for(
                    self.principal_id,
                    name=self.name,
                    role=self.role,
                    on_behalf_of=self.on_behalf_of,
                    policy=self.policy,
                    scopes=self.scopes,
                ):
                    return await fn(*args, **kwargs)

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with acting_for(
                self.principal_id,
                name=self.name,
                role=self.role,
                on_behalf_of=self.on_behalf_of,
                policy=self.policy,
                scopes=self.scopes,
            ):
                return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]


@contextmanager
def _no_principal() -> Iterator[None]:  # for tests of unattributed spans
    token = _CURRENT.set(None)
    try:
        yield
    finally:
        _CURRENT.reset(token)
