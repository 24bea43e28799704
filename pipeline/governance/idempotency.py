"""Idempotency of the record log: the server decides record ids; a client's key makes a retry safe.

A client that sends a record again (a lost answer, a restarted agent) must get the record it
made, not a second one; a client that reuses a key for something else must be refused, not
allowed to overwrite (the record log is insert-only and readers take the latest per id, so a
reused id would be an overwrite). The rules:

* intent: keyed by (intent id, attempt). The agent's intent id stays the record id, because
  the tool span carries it (``agentledger.intent.id``) and the audit joins spans to intents by
  it; a server-assigned id would break that link for every agent already deployed. Its
  idempotency key is the id plus the attempt, so a parked call's re-ask (attempt + 1) is a new
  ask, not a conflict. Same key and same request: the first answer again (nothing stored).
  Same key and another request, or a re-ask whose request differs from the first ask's
  (another tool, other arguments...): 409.
* outcome: one per intent. Identical again: 200, nothing stored. Another outcome: 409.
  No intent asked with that id: 409.
* control, feedback: the client's key (``idempotency_key``, feedback's ``id``) never is the
  record id; the server derives the id from it (``derived_id``: tenant and key, hashed), so
  a client cannot pick another record's id, and a retry lands on the same id everywhere
  (also through Kafka, where nothing can be looked up). Same key and same request: the
  record made then; another request: 409. Without a key, a control gets a fresh ``new_id``.

"The same request" is compared by ``request_sha256``: the body without what the server fills
in (``SERVER_FIELDS``). A time the client left out (an intent's ``requested_at``, an outcome's
``finished_at``, a feedback's ``created_at``) is taken from the record already made.

Where it is decided (``KeyIndex``, then the store):

* authoritative (the embedded server: this process makes every record of its store): a key
  this process has not seen and the store does not hold is new. The index holds what the
  journal has not stored yet (its capacity is the journal's ``max_pending``).
* on evidence only (a Kafka collector): another replica may have taken the key a moment ago
  and its record may still be on the topic. A conflict with what this replica accepted or the
  store holds is refused; otherwise the record is produced, and the pipeline's
  ``IntentConsumer`` drops a duplicate and dead-letters a conflict or an outcome without an
  intent (``screen``).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from agentledger.pipeline.governance.base import GovernanceRejected
from agentledger.pipeline.store import Store
from agentledger.pipeline.store.pair_filter import PairFilter
from agentledger.schemas.canonical import canonical_json, loads
from agentledger.schemas.records import RECORDS_TABLE, Record, RecordKind

__all__ = [
    "SERVER_FIELDS",
    "Conflict",
    "KeyIndex",
    "Seen",
    "DUPLICATE",
    "derived_id",
    "judge",
    "request_sha256",
    "screen",
    "stored",
]

SERVER_FIELDS: Final[Mapping[RecordKind, frozenset[str]]] = {
    RecordKind.INTENT: frozenset({"received_at", "decision", "control_id", "attempt"}),
    RecordKind.OUTCOME: frozenset({"received_at"}),
    RecordKind.CONTROL: frozenset({"control_id", "created_at"}),
    RecordKind.FEEDBACK: frozenset(),
}
"""Body fields not compared between a record and its retry: those the server fills in (and an
intent's attempt, which is part of its key)."""

_KEPT: Final[Mapping[RecordKind, tuple[str, ...]]] = {
    RecordKind.INTENT: ("requested_at", "decision", "control_id"),
    RecordKind.OUTCOME: ("finished_at",),
    RecordKind.CONTROL: ("control_id", "created_at", "action", "scope", "target", "by", "reason"),
}


def request_sha256(kind: RecordKind, fields: Mapping[str, Any]) -> str:
    """SHA-256 of what the client asked for: the body without ``SERVER_FIELDS[kind]``."""
    skip = SERVER_FIELDS.get(kind, frozenset())
    return hashlib.sha256(
        canonical_json({k: v for k, v in fields.items() if k not in skip}).encode()
    ).hexdigest()


def derived_id(kind: RecordKind, tenant: str, key: str) -> str:
    """The record id the server gives the record a client sent with idempotency key ``key``."""
    text = f"agentledger-idempotency\x1f{kind.value}\x1f{tenant}\x1f{key}"
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


class Conflict(GovernanceRejected):
    """The key was used for another record (HTTP 409)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, status=409)


@dataclass(frozen=True, slots=True)
class Seen:
    """What a key needs of a record it made: its request's hash and the fields it answers with."""

    kind: RecordKind
    attempt: int
    request_sha256: str
    fields: Mapping[str, Any]

    @classmethod
    def of(cls, kind: RecordKind, fields: Mapping[str, Any]) -> Seen:
        return cls(
            kind,
            int(fields.get("attempt", 0)) if kind is RecordKind.INTENT else 0,
            request_sha256(kind, fields),
            {k: fields[k] for k in _KEPT.get(kind, ()) if k in fields},
        )

    @classmethod
    def record(cls, record: Record) -> Seen:
        return cls.of(record.kind, record.fields())


_Key = tuple[str, str, str]  # tenant, intent or control, record id


class KeyIndex:
    """What this process accepted, per (tenant, group, record id): bounded, oldest forgotten
    first. An entry is complete for its key: it is created from the store (or as empty where the
    store is not consulted) and every record made under the key is added to it.

    ``lock(key)`` serializes the check and the append of one key (striped: keys that share a
    stripe wait for each other, others do not)."""

    def __init__(self, capacity: int = 100_000, stripes: int = 1024) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[_Key, list[Seen]] = OrderedDict()
        self._lock = threading.Lock()
        self._stripes = [threading.Lock() for _ in range(stripes)]

    def lock(self, key: _Key) -> threading.Lock:
        return self._stripes[hash(key) % len(self._stripes)]

    def get(self, key: _Key) -> list[Seen] | None:
        with self._lock:
            found = self._entries.get(key)
            return None if found is None else list(found)

    def put(self, key: _Key, seen: Iterable[Seen]) -> None:
        with self._lock:
            self._entries[key] = list(seen)
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)

    def add(self, key: _Key, seen: Seen) -> None:
        with self._lock:
            entry = self._entries.setdefault(key, [])
            entry.append(seen)
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)


def stored_ids(store: Store, kinds: Iterable[RecordKind]) -> PairFilter:
    """Which (tenant, record id) pairs of ``kinds`` the store may hold, for an authoritative
    process (every record of its store after the load is made by it, and noted with ``add``): a
    new id, the common case of an agent's fresh intent, then needs no store lookup, and an id
    that left the bounded ``KeyIndex`` is still known."""
    return PairFilter.load(
        store,
        f"SELECT DISTINCT tenant, record_id FROM {RECORDS_TABLE} WHERE kind IN {{kinds:Array(String)}}",
        {"kinds": sorted(k.value for k in kinds)},
    )


def stored(
    store: Store, tenant: str, kinds: Iterable[RecordKind], record_ids: Iterable[str]
) -> dict[str, list[Seen]]:
    """The records of ``kinds`` the store holds under ``record_ids``, per record id (each
    stored copy once)."""
    ids = sorted(set(record_ids))
    if not ids:
        return {}
    rows = store.query_rows(
        f"SELECT kind, record_id, any(body) AS body FROM {RECORDS_TABLE} "
        "WHERE tenant = {tenant:String} AND kind IN {kinds:Array(String)} "
        "AND record_id IN {ids:Array(String)} GROUP BY kind, record_id, body_sha256",
        {"tenant": tenant, "kinds": sorted(k.value for k in kinds), "ids": ids},
    )
    found: dict[str, list[Seen]] = {}
    for row in rows:
        found.setdefault(row["record_id"], []).append(
            Seen.of(RecordKind(row["kind"]), loads(row["body"]))
        )
    return found


DUPLICATE: Final = "duplicate"
"""``judge``'s verdict on a record made before: answer as then, store nothing."""


def judge(new: Seen, record_id: str, known: list[Seen], *, authoritative: bool) -> str | None:
    """None when ``new`` is a new record under its key, ``DUPLICATE`` when it was made before,
    else why it conflicts with ``known`` (the records of the same tenant and record id).
    ``authoritative``: ``known`` is all there is (else an outcome without a known intent passes:
    its intent may be on its way)."""
    same_kind = [s for s in known if s.kind is new.kind]
    if new.kind is RecordKind.INTENT:
        same_kind_attempt = [s for s in same_kind if s.attempt == new.attempt]
        if same_kind_attempt:
            if any(s.request_sha256 == new.request_sha256 for s in same_kind_attempt):
                return DUPLICATE
            return (
                f"intent {record_id} attempt {new.attempt} was already asked with another "
                "request; a new call needs a new intent id"
            )
        if any(s.request_sha256 != new.request_sha256 for s in same_kind):
            return (
                f"intent {record_id} was asked before with another request (tool, arguments, "
                "trace or principal); a re-ask must repeat the first ask"
            )
        return None
    if same_kind:
        if any(s.request_sha256 == new.request_sha256 for s in same_kind):
            return DUPLICATE
        if new.kind is RecordKind.OUTCOME:
            return f"intent {record_id} already has another outcome"
        return f"idempotency key already used for another {new.kind.value} ({record_id})"
    if new.kind is RecordKind.OUTCOME and authoritative:
        if not any(s.kind is RecordKind.INTENT for s in known):
            return f"no intent {record_id} was asked; an outcome needs its intent first"
    return None


_SCREENED: Final = frozenset({RecordKind.INTENT, RecordKind.OUTCOME, RecordKind.CONTROL})


def screen(store: Store, records: list[Record]) -> list[str | None]:
    """``judge`` each record (in order) against the store and the records before it: the
    intents topic's consumer stores those judged None. Authoritative: a record's own partition
    (keyed by intent id) brought its intent before its outcome."""
    by_tenant: dict[str, set[str]] = {}
    for r in records:
        if r.kind in _SCREENED:
            by_tenant.setdefault(r.tenant, set()).add(r.record_id)
    known: dict[tuple[str, str], list[Seen]] = {}
    for tenant, ids in by_tenant.items():
        for record_id, found in stored(store, tenant, _SCREENED, ids).items():
            known[(tenant, record_id)] = found
    verdicts: list[str | None] = []
    for r in records:
        if r.kind not in _SCREENED:
            verdicts.append(None)
            continue
        seen = Seen.record(r)
        entry = known.setdefault((r.tenant, r.record_id), [])
        verdict = judge(seen, r.record_id, entry, authoritative=True)
        if verdict is None:
            entry.append(seen)
        verdicts.append(verdict)
    return verdicts
