"""Model pinning: which model each agent must be answered by, and what happens when it is not.

Providers resolve floating aliases (``gpt-4o``) to dated models
(``gpt-4o-2024-08-06``) and change them without notice; an audit needs to know
which model decided, and a regulated agent may be approved for one model only.
A pin names the model an agent's calls must be *answered* by. On a mismatch,
``"flag"`` stamps the span (``agentledger.model.pin_mismatch``) and logs a
warning; ``"raise"`` also fails the call with :class:`ModelPinMismatch` where
AgentLedger wraps the call itself (its OpenAI wrapper and ``llm_call``).
Calls recorded by other instrumentors are flagged at export time.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Literal

from agentledger.schemas.attributes import AgentLedger as AL

__all__ = ["ModelPinMismatch", "ModelPins", "OnMismatch"]

logger = logging.getLogger(__name__)

OnMismatch = Literal["raise", "flag"]

ANY_AGENT = "*"
"""Pin key that applies to every agent without a pin of its own."""


class ModelPinMismatch(RuntimeError):
    """The provider answered with a model other than the one the agent is pinned to."""

    def __init__(self, agent: str, pinned: str, answered: str) -> None:
        self.agent = agent
        self.pinned = pinned
        self.answered = answered
        who = f"agent {agent!r}" if agent else "this agent"
        super().__init__(
            f"{who} is pinned to model {pinned!r} but the provider answered with {answered!r}"
        )


class ModelPins:
    """Pins per agent name (``"*"`` for any agent) and the mismatch policy."""

    def __init__(
        self, pins: Mapping[str, str] | None = None, on_mismatch: OnMismatch = "flag"
    ) -> None:
        if on_mismatch not in ("raise", "flag"):
            raise ValueError(f"on_pin_mismatch must be 'raise' or 'flag', not {on_mismatch!r}")
        self.pins = dict(pins or {})
        self.on_mismatch: OnMismatch = on_mismatch

    @property
    def raises(self) -> bool:
        return self.on_mismatch == "raise"

    def __bool__(self) -> bool:
        return bool(self.pins)

    def pin_for(self, agent: str) -> str | None:
        if not self.pins:
            return None
        return self.pins.get(agent) or self.pins.get(ANY_AGENT)

    def check(
        self, agent: str, answered: str | None, attrs: dict[str, Any] | None, *, log: bool = True
    ) -> ModelPinMismatch | None:
        """Stamp ``attrs`` with the pin and the verdict; the error to raise, if the policy raises.

        With ``log`` (the default) a mismatch is logged as a warning.
        """
        pin = self.pin_for(agent)
        if pin is None or not answered:
            return None
        mismatch = answered != pin
        if attrs is not None:
            attrs[AL.MODEL_PIN] = pin
            attrs[AL.MODEL_PIN_MISMATCH] = mismatch
        if not mismatch:
            return None
        if log:
            logger.warning(
                "model pin mismatch: agent %r is pinned to %r, provider answered %r",
                agent,
                pin,
                answered,
            )
        return ModelPinMismatch(agent, pin, answered) if self.raises else None
