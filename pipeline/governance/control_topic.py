"""``ControlTopic``: run controls shared by every collector replica through a compacted topic.

A Kafka-mode collector replica answers intents from its own ``ControlBook``. For a pause
sent to one replica to hold on all of them, each replica

* writes every pause and resume to the controls topic (``KafkaSettings.controls_topic``,
  ``cleanup.policy=compact``, keyed ``tenant/scope/target``), after the record it wraps
  (``stored``: the intents topic, or the store) made it durable, and
* follows that topic from its first record in a background thread (no consumer group: every
  replica reads every partition), merging each event into its book.

A pause recorded on any replica is therefore enforced by all of them once their follower
fetched it (a fetch waits at most 200 ms for new records, a poll 0.25 s), well within 2 s.
Compaction keeps the latest event of each key for good, so a replica started (or
restarted) later still learns every pause in force; until its follower read all there was
at start, the book refuses to answer (``wait_caught_up``) rather than let a paused run go.

The store keeps every event: the record goes to the intents topic (or the store) first,
and only that copy is stored (the pipeline does not read the controls topic), so a control
is stored once. If the controls topic does not take it, the caller gets
GovernanceUnavailable (and asks again, as for any 503); the record is on record but this
event is enforced nowhere, which is the safe side of a failure between the two writes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import orjson

from agentledger.pipeline.governance.base import (
    GovernanceRejected,
    GovernanceUnavailable,
    RecordLog,
)
from agentledger.pipeline.governance.kafka_log import encode_record
from agentledger.pipeline.governance.records import (
    ControlAction,
    ControlOut,
    ControlScope,
)
from agentledger.pipeline.transport.base import (
    Follower,
    IncomingRecord,
    OutgoingRecord,
    RecordTooLarge,
    Transport,
    TransportError,
)
from agentledger.pipeline.transport.records import record_headers
from agentledger.schemas.records import Record, RecordKind, from_rfc3339

__all__ = ["ControlTopic", "control_key", "decode_control"]

log = logging.getLogger(__name__)


def control_key(event: ControlOut) -> bytes:
    """The compaction key: the latest event of a (tenant, scope, target) is the one that counts."""
    return f"{event.tenant}/{event.scope.value}/{event.target}".encode()


def _ns(value: str | int) -> int:
    """A body time: RFC 3339 text (the record log's form), or Unix ns (records of before)."""
    return from_rfc3339(value) if isinstance(value, str) else int(value)


def control_out(record: Record) -> ControlOut:
    """The control event a control record holds (raises KeyError or ValueError otherwise)."""
    if record.kind is not RecordKind.CONTROL:
        raise ValueError(f"a {record.kind.value} record is not a control")
    f = record.fields()
    return ControlOut(
        control_id=f["control_id"],
        tenant=record.tenant,
        created_at_ns=_ns(f["created_at"]),
        action=ControlAction(f["action"]),
        scope=ControlScope(f["scope"]),
        target=f["target"],
        by=f["by"],
        reason=f["reason"],
        note=str(f.get("note", "")),
    )


def decode_control(incoming: IncomingRecord) -> ControlOut | None:
    """The event of one record of the controls topic; None (logged) when it holds none."""
    if incoming.value is None:  # a tombstone: nothing to merge
        return None
    try:
        return control_out(Record.from_json(orjson.loads(incoming.value)))
    except Exception as exc:
        log.warning(
            "skipping record %s/%s of the controls topic: %s: %s",
            incoming.partition,
            incoming.offset,
            type(exc).__name__,
            exc,
        )
        return None


class ControlTopic(RecordLog):
    """The record log of a ControlBook in Kafka mode: ``stored`` first, then the controls topic;
    and the follower of that topic (``follow``) that keeps the book up to date.

    ``create_topic``: create the controls topic (compacted) when it is missing. Raises
    GovernanceUnavailable when the producer cannot be made.
    """

    def __init__(
        self,
        transport: Transport,
        stored: RecordLog,
        *,
        create_topic: bool = True,
        poll_s: float = 0.25,
    ) -> None:
        self.transport = transport
        self.topic = transport.settings.controls_topic
        self.poll_s = poll_s
        self._stored = stored
        self._stop = threading.Event()
        self._caught_up = threading.Event()
        self._thread: threading.Thread | None = None
        try:
            if create_topic:
                with transport.admin() as admin:
                    admin.ensure_topics([self.topic], compacted=True)
            self._producer = transport.producer(linger_ms=0)
        except TransportError as exc:
            raise GovernanceUnavailable(f"Kafka unavailable: {exc}") from exc

    # -- writing -------------------------------------------------------------------------------

    def append(self, record: Record, key: str) -> None:
        """Make the control durable in ``stored``, then share it on the controls topic."""
        event = control_out(record)
        self._stored.append(record, key)
        outgoing = OutgoingRecord(
            self.topic,
            control_key(event),
            encode_record(record),
            record_headers(record.tenant, time.time_ns()),
        )
        settings = self.transport.settings
        try:
            self._producer.send([outgoing], timeout=settings.produce_timeout_s)
        except RecordTooLarge as exc:
            raise GovernanceRejected(f"control refused as too large: {exc}", status=413) from exc
        except TransportError as exc:
            raise GovernanceUnavailable(
                f"the controls topic did not acknowledge the control: {exc}", retry_after=2
            ) from exc

    # -- following -----------------------------------------------------------------------------

    def follow(self, merge: Callable[[list[ControlOut]], None]) -> None:
        """Start the background thread that reads the topic from the beginning into ``merge``."""
        if self._thread is not None:
            raise RuntimeError("already following")
        self._thread = threading.Thread(
            target=self._run, args=(merge,), name="agentledger-controls", daemon=True
        )
        self._thread.start()

    def wait_caught_up(self, timeout: float) -> bool:
        """True once the follower has read every event there was when it started."""
        return self._caught_up.wait(timeout)

    def _run(self, merge: Callable[[list[ControlOut]], None]) -> None:
        follower: Follower | None = None
        client_id = f"{self.transport.settings.client_id}-controls"
        try:
            while not self._stop.is_set():
                try:
                    if follower is None:
                        follower = self.transport.follow(self.topic, client_id=client_id)
                    events = [e for r in follower.poll(self.poll_s) if (e := decode_control(r))]
                    if events:
                        merge(events)
                    if not self._caught_up.is_set() and not any(follower.lag().values()):
                        self._caught_up.set()
                except TransportError as exc:
                    log.warning("following the controls topic: %s (retrying)", exc)
                    self._stop.wait(1.0)
                except Exception:  # never let the thread die: the book would go stale silently
                    log.exception("following the controls topic failed (retrying)")
                    self._stop.wait(1.0)
        finally:
            if follower is not None:
                follower.close()

    def close(self) -> None:
        """Stop following, close the producer (``stored`` is closed by its owner)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._producer.close()
