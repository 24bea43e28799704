"""The collector side of governance: answer intents, record outcomes, keep run controls.

``agentledger.compose`` wires it from what the collector has:

* embedded (the sink writes into a store): intents, outcomes and controls are appended
  to that store's record log (``StoreLog``, or the journal in front of it) before the
  collector answers;
* Kafka (``KafkaSink``): intents and outcomes are produced to the intents topic with
  acks=all before the collector answers; the pipeline's ``IntentConsumer`` stores them.
  Controls go to the store when the collector has one, else to the topic and this
  replica's memory (see ``controls``).
"""

from __future__ import annotations

import hashlib
import logging
import time
from typing import Any

from agentledger.pipeline.governance import queries
from agentledger.pipeline.governance.base import (
    GovernanceRejected,
    GovernanceUnavailable,
    RecordLog,
)
from agentledger.pipeline.governance.controls import ControlBook
from agentledger.pipeline.governance.records import (
    ControlIn,
    ControlOut,
    Decision,
    IntentAck,
    IntentIn,
    OutcomeIn,
    intent_record,
    outcome_record,
)
from agentledger.pipeline.governance.settings import GovernanceSettings
from agentledger.pipeline.store import Store, StoreError
from agentledger.schemas.records import Actor

__all__ = ["GovernanceService"]

log = logging.getLogger(__name__)


class GovernanceService:
    """Answers intents (stored before the answer), records outcomes and controls."""

    def __init__(
        self,
        intents: RecordLog,
        controls: ControlBook,
        store: Store | None = None,
        settings: GovernanceSettings | None = None,
        *,
        owned: tuple[RecordLog, ...] = (),
        mode: str = "custom",
        actor: str = Actor.API,
    ) -> None:
        self.actor = actor
        """Who records what a call does not name an actor for (``api``; ``cli`` for the CLI's)."""
        self.intents = intents
        self.controls = controls
        self.store = store
        self.settings = settings or GovernanceSettings()
        self.mode = mode
        self._owned = owned

    # -- intents ---------------------------------------------------------------------------------

    def ask(self, tenant: str, intent: IntentIn, *, actor: str | None = None) -> IntentAck:
        """Store the intent (durably, before returning) with the decision for this ask.
        ``actor``: who asked (the API key's name or id), recorded on the record."""
        problem = intent.check_hash()
        if problem:
            raise GovernanceRejected(problem)
        received = time.time_ns()
        control = self.controls.holding(tenant, intent)
        decision = Decision.PAUSED if control is not None else Decision.PROCEED
        control_id = control.control_id if control is not None else ""
        self.intents.append(
            intent_record(
                tenant, intent, decision, control_id, received, actor=actor or self.actor
            ),
            intent.intent_id,
        )
        if control is not None:
            return IntentAck(
                intent_id=intent.intent_id,
                attempt=intent.attempt,
                decision=decision,
                control_id=control_id,
                retry_after_s=self.settings.pause_retry_after_s,
            )
        return IntentAck(intent_id=intent.intent_id, attempt=intent.attempt, decision=decision)

    def outcome(
        self, tenant: str, intent_id: str, outcome: OutcomeIn, *, actor: str | None = None
    ) -> None:
        """Store what the governed tool returned or raised."""
        if outcome.result is not None and outcome.result_sha256:
            actual = hashlib.sha256(outcome.result.encode("utf-8", "surrogatepass")).hexdigest()
            if actual != outcome.result_sha256:
                raise GovernanceRejected(
                    f"result_sha256 does not match the result sent (sha256 {actual})"
                )
        self.intents.append(
            outcome_record(tenant, intent_id, outcome, time.time_ns(), actor=actor or self.actor),
            intent_id,
        )

    def intent(self, tenant: str, intent_id: str) -> dict[str, Any] | None:
        return queries.get_intent(self._reader(), tenant, intent_id)

    def list_intents(self, tenant: str, **filters: Any) -> list[dict[str, Any]]:
        return queries.list_intents(self._reader(), tenant, **filters)

    # -- controls --------------------------------------------------------------------------------

    def control(self, tenant: str, control: ControlIn, *, actor: str | None = None) -> ControlOut:
        return self.controls.record(tenant, control, actor=actor or self.actor)

    def list_controls(
        self, tenant: str, *, everything: bool = False, limit: int = 100
    ) -> list[ControlOut]:
        try:
            if everything:
                return self.controls.history(tenant, limit)
            return self.controls.active(tenant)[:limit]
        except StoreError as exc:
            raise GovernanceUnavailable(f"cannot read controls: {exc}") from exc

    def close(self) -> None:
        for owned in self._owned:
            owned.close()

    def _reader(self) -> Store:
        if self.store is None:
            raise GovernanceUnavailable(
                "this collector has no store to read intents from; query the pipeline's store"
            )
        sync = getattr(self.intents, "sync", None)
        if sync is not None:
            sync()  # what was acknowledged is in what is read
        return self.store
