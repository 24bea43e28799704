"""The collector side of governance: answer intents, record outcomes, keep run controls.

``agentledger.compose`` wires it from what the collector has:

* embedded (the sink writes into a store): intents, outcomes and controls are appended
  to that store's record log (``StoreLog``, or the journal in front of it) before the
  collector answers;
* Kafka (``KafkaSink``): intents and outcomes are produced to the intents topic with
  acks=all before the collector answers; the pipeline's ``IntentConsumer`` stores them.

Retries and reused ids are decided by ``idempotency`` (a ``KeyIndex`` of what this process
accepted, then the store): the same record again is answered as then, a conflicting one is
refused with 409.
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
from agentledger.pipeline.governance.idempotency import (
    DUPLICATE,
    Conflict,
    KeyIndex,
    Seen,
    derived_id,
    judge,
    stored,
    stored_ids,
)
from agentledger.pipeline.governance.records import (
    ControlAction,
    ControlIn,
    ControlOut,
    ControlScope,
    Decision,
    IntentAck,
    IntentIn,
    OutcomeIn,
    control_record,
    intent_record,
    outcome_record,
)
from agentledger.pipeline.governance.settings import GovernanceSettings
from agentledger.pipeline.store import Store, StoreError
from agentledger.pipeline.store.pair_filter import PairFilter
from agentledger.schemas.records import Actor, RecordKind, from_rfc3339

__all__ = ["GovernanceService"]

log = logging.getLogger(__name__)

_INTENT_KINDS = (RecordKind.INTENT, RecordKind.OUTCOME)


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
        authoritative: bool | None = None,
    ) -> None:
        self.actor = actor
        """Who records what a call does not name an actor for (``api``; ``cli`` for the CLI's)."""
        self.intents = intents
        self.controls = controls
        self.store = store
        self.settings = settings or GovernanceSettings()
        self.mode = mode
        self.authoritative = mode == "embedded" if authoritative is None else authoritative
        """This process makes every governance record of its store (the embedded server): a key
        it has not seen and the store does not hold is new, an outcome without a known intent is
        refused. Else (Kafka) only a conflict with what is known is refused (``idempotency``)."""
        self.keys = KeyIndex()
        self.stored_ids = self._stored_ids()
        """Authoritative only: which intent ids the store may hold, so a fresh intent costs no
        store lookup (``idempotency.stored_ids``)."""
        self._owned = owned

    # -- intents ---------------------------------------------------------------------------------

    def ask(self, tenant: str, intent: IntentIn, *, actor: str | None = None) -> IntentAck:
        """Store the intent (durably, before returning) with the decision for this ask.
        ``actor``: who asked (the API key's name or id), recorded on the record. An ask made
        before (same intent id, attempt and request) is answered as then; Conflict (409) when
        the id was asked with another request (see ``idempotency``)."""
        problem = intent.check_hash()
        if problem:
            raise GovernanceRejected(problem)
        key = (tenant, "intent", intent.intent_id)
        with self.keys.lock(key):
            known = self._known(key, _INTENT_KINDS)
            first = next((s for s in known if s.kind is RecordKind.INTENT), None)
            received = time.time_ns()
            control = self.controls.holding(tenant, intent)
            decision = Decision.PAUSED if control is not None else Decision.PROCEED
            control_id = control.control_id if control is not None else ""
            record = intent_record(
                tenant,
                intent,
                decision,
                control_id,
                received,
                actor=actor or self.actor,
                requested_at=first.fields["requested_at"] if first else None,
            )
            seen = Seen.record(record)
            verdict = judge(seen, intent.intent_id, known, authoritative=self.authoritative)
            if verdict == DUPLICATE:
                before = next(
                    s
                    for s in known
                    if s.kind is RecordKind.INTENT
                    and s.attempt == seen.attempt
                    and s.request_sha256 == seen.request_sha256
                )
                decision = Decision(before.fields["decision"])
                control_id = str(before.fields["control_id"])
            elif verdict is not None:
                raise Conflict(verdict)
            else:
                self.intents.append(record, intent.intent_id)
                self.keys.add(key, seen)
                if self.stored_ids is not None:
                    self.stored_ids.add([(tenant, intent.intent_id)])
        if decision is Decision.PAUSED:
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
        """Store what the governed tool returned or raised: once per intent. The same outcome
        again stores nothing; Conflict (409) for another outcome, or (where this collector sees
        every record) for an intent never asked."""
        if outcome.result is not None and outcome.result_sha256:
            actual = hashlib.sha256(outcome.result.encode("utf-8", "surrogatepass")).hexdigest()
            if actual != outcome.result_sha256:
                raise GovernanceRejected(
                    f"result_sha256 does not match the result sent (sha256 {actual})"
                )
        key = (tenant, "intent", intent_id)
        with self.keys.lock(key):
            known = self._known(key, _INTENT_KINDS)
            before = next((s for s in known if s.kind is RecordKind.OUTCOME), None)
            record = outcome_record(
                tenant,
                intent_id,
                outcome,
                time.time_ns(),
                actor=actor or self.actor,
                finished_at=before.fields["finished_at"] if before else None,
            )
            seen = Seen.record(record)
            verdict = judge(seen, intent_id, known, authoritative=self.authoritative)
            if verdict == DUPLICATE:
                return
            if verdict is not None:
                raise Conflict(verdict)
            self.intents.append(record, intent_id)
            self.keys.add(key, seen)
            if self.stored_ids is not None:
                self.stored_ids.add([(tenant, intent_id)])

    def intent(self, tenant: str, intent_id: str) -> dict[str, Any] | None:
        return queries.get_intent(self._reader(), tenant, intent_id)

    def list_intents(self, tenant: str, **filters: Any) -> list[dict[str, Any]]:
        return queries.list_intents(self._reader(), tenant, **filters)

    # -- controls --------------------------------------------------------------------------------

    def control(self, tenant: str, control: ControlIn, *, actor: str | None = None) -> ControlOut:
        """Record a pause or resume. With an idempotency key: the event recorded under it
        before, or Conflict (409) when that event says something else."""
        actor = actor or self.actor
        if control.idempotency_key is None:
            return self.controls.record(tenant, control, actor=actor)
        control_id = derived_id(RecordKind.CONTROL, tenant, control.idempotency_key)
        key = (tenant, "control", control_id)
        with self.keys.lock(key):
            known = self._known(key, (RecordKind.CONTROL,))
            asked = ControlOut(
                control_id=control_id,
                tenant=tenant,
                created_at_ns=0,
                action=control.action,
                scope=control.scope,
                target=control.target,
                by=actor,
                reason=control.reason,
                note=control.note(),
            )
            seen = Seen.record(control_record(asked, actor=actor))
            verdict = judge(seen, control_id, known, authoritative=self.authoritative)
            if verdict == DUPLICATE:
                before = next(s for s in known if s.request_sha256 == seen.request_sha256)
                return _control_out(tenant, before)
            if verdict is not None:
                raise Conflict(
                    f"idempotency key {control.idempotency_key!r} was used for another control"
                )
            event = self.controls.record(tenant, control, actor=actor, control_id=control_id)
            self.keys.add(key, Seen.record(control_record(event, actor=actor)))
            return event

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

    def _stored_ids(self) -> PairFilter | None:
        if not self.authoritative or self.store is None:
            return None
        try:
            return stored_ids(self.store, _INTENT_KINDS)
        except StoreError as exc:  # every new id is then looked up in the store
            log.warning("intent ids not loaded (each new intent is looked up instead): %s", exc)
            return None

    def _known(self, key: tuple[str, str, str], kinds: tuple[RecordKind, ...]) -> list[Seen]:
        """What is known under ``key``: this process's index, else the store's records (not
        asked when the filter of stored ids says the id is not there)."""
        found = self.keys.get(key)
        if found is not None:
            return found
        tenant, _, record_id = key
        found = []
        ids = self.stored_ids if kinds == _INTENT_KINDS else None
        if self.store is not None and (ids is None or ids.may_hold(tenant, record_id)):
            try:
                found = stored(self.store, tenant, kinds, [record_id]).get(record_id, [])
            except StoreError as exc:
                raise GovernanceUnavailable(f"cannot look up {record_id}: {exc}") from exc
        self.keys.put(key, found)
        return found

    def _reader(self) -> Store:
        if self.store is None:
            raise GovernanceUnavailable(
                "this collector has no store to read intents from; query the pipeline's store"
            )
        sync = getattr(self.intents, "sync", None)
        if sync is not None:
            sync()  # what was acknowledged is in what is read
        return self.store


def _control_out(tenant: str, seen: Seen) -> ControlOut:
    """The control event a record made under an idempotency key says."""
    f = seen.fields
    return ControlOut(
        control_id=str(f["control_id"]),
        tenant=tenant,
        created_at_ns=from_rfc3339(str(f["created_at"])),
        action=ControlAction(f["action"]),
        scope=ControlScope(f["scope"]),
        target=str(f["target"]),
        by=str(f["by"]),
        reason=str(f["reason"]),
        note=str(f.get("note", "")),
    )
