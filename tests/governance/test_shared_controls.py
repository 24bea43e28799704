"""Run controls shared by every collector replica through the compacted controls topic.

First the follow/merge logic over the in-memory transport (replicas as ControlBooks in one
process), then two real ``agentledger collector`` processes on the shared broker, no store:
a pause sent to one holds on the other within 2 s, and a resume sent to the other frees
the first.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from agentledger.pipeline.governance import GovernanceUnavailable
from agentledger.pipeline.governance.control_topic import ControlTopic
from agentledger.pipeline.governance.controls import ControlBook
from agentledger.pipeline.governance.kafka_log import KafkaLog
from agentledger.pipeline.governance.records import (
    ControlAction,
    ControlIn,
    ControlScope,
    IntentIn,
)
from agentledger.pipeline.settings import KafkaSettings
from agentledger.pipeline.transport import MemoryTransport, OutgoingRecord, TransportUnavailable
from agentledger.schemas.records import Record, RecordKind
from tests.kafka.conftest import free_port, kafka_bootstrap  # noqa: F401
from tests.kafka.conftest import kafka_settings as kafka_settings  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]


def _wait_for(predicate: Callable[[], Any], what: str, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def _control(action: ControlAction, target: str, reason: str = "why") -> ControlIn:
    return ControlIn(
        action=action, scope=ControlScope.AGENT, target=target, by="desk", reason=reason
    )


def _intent(agent: str) -> IntentIn:
    return IntentIn(
        intent_id=uuid.uuid4().hex, tool_name="settle", arguments_sha256="0" * 64, agent_name=agent
    )


# -- the follow/merge logic over the in-memory transport ------------------------------------------


@pytest.fixture
def memory() -> MemoryTransport:
    transport = MemoryTransport(
        KafkaSettings(
            bootstrap_servers=None,
            intents_topic="intents",
            controls_topic="controls",
            partitions=3,
            produce_timeout_s=1,
        )
    )
    with transport.admin() as admin:
        admin.ensure_topics()
    return transport


@pytest.fixture
def replicas(memory: MemoryTransport) -> Iterator[Callable[..., ControlBook]]:
    """Makes a collector replica's control book, as ``compose`` wires it (no store)."""
    made: list[ControlTopic] = []

    def replica(catch_up_s: float = 5.0) -> ControlBook:
        topic = ControlTopic(memory, KafkaLog(memory, create_topics=False), create_topic=False)
        made.append(topic)
        return ControlBook(topic, None, follower=topic, catch_up_s=catch_up_s)

    yield replica
    for topic in made:
        topic.close()


def test_a_control_recorded_on_one_replica_holds_on_every_other(
    memory: MemoryTransport, replicas: Callable[..., ControlBook]
) -> None:
    one, two = replicas(), replicas()
    assert one.shared and two.shared
    pause = one.record("acme", _control(ControlAction.PAUSE, "trader", "limit breach"))
    assert one.holding("acme", _intent("trader")) == pause  # here at once
    _wait_for(lambda: two.holding("acme", _intent("trader")) == pause, "the pause on replica two")
    assert two.holding("globex", _intent("trader")) is None  # another tenant's agent runs

    resume = two.record("acme", _control(ControlAction.RESUME, "trader", "cleared"))
    _wait_for(lambda: one.holding("acme", _intent("trader")) is None, "the resume on replica one")

    # each control is stored once: one record on the intents topic (the pipeline stores those)
    stored = [Record.from_json(orjson.loads(r.value or b"")) for r in memory.records("intents")]
    assert [(r.kind, r.fields()["control_id"]) for r in stored] == [
        (RecordKind.CONTROL, pause.control_id),
        (RecordKind.CONTROL, resume.control_id),
    ]
    # and shared once, keyed for compaction by tenant/scope/target
    assert {r.key for r in memory.records("controls")} == {b"acme/agent/trader"}
    assert memory.compacted == {"controls"}
    # every replica lists each event once, though it merges its own back from the topic: two
    # more pauses of the same key (same partition, in order) show what each has read so far
    again = one.record("acme", _control(ControlAction.PAUSE, "trader", "again"))
    _wait_for(lambda: two.holding("acme", _intent("trader")) == again, "the second pause")
    last = two.record("acme", _control(ControlAction.PAUSE, "trader", "last"))
    _wait_for(lambda: one.holding("acme", _intent("trader")) == last, "the last pause on one")
    events = [pause, resume, again, last]
    ids = [e.control_id for e in sorted(events, key=lambda e: e.created_at_ns, reverse=True)]
    assert [e.control_id for e in one.history("acme")] == ids  # read all, its own echoes too
    assert [e.control_id for e in two.history("acme")] == ids
    assert [e.control_id for e in one.active("acme")] == [last.control_id]


def test_a_replica_started_later_learns_the_pauses_in_force(
    memory: MemoryTransport, replicas: Callable[..., ControlBook]
) -> None:
    first = replicas()
    held = first.record("acme", _control(ControlAction.PAUSE, "a"))
    first.record("acme", _control(ControlAction.PAUSE, "b"))
    first.record("acme", _control(ControlAction.RESUME, "b"))
    # a record that is not a control does not stop the follower
    memory.producer().send([OutgoingRecord("controls", b"x", b"not json")], 1)
    late = replicas()
    # no waiting: an ask waits for the follower's first catch-up itself
    assert late.holding("acme", _intent("a")) == held
    assert late.holding("acme", _intent("b")) is None
    assert [e.control_id for e in late.active("acme")] == [held.control_id]
    after = first.record("acme", _control(ControlAction.PAUSE, "c"))
    _wait_for(lambda: late.holding("acme", _intent("c")) == after, "a pause after the junk")


def test_a_replica_that_cannot_read_the_topic_refuses_to_answer(
    memory: MemoryTransport, replicas: Callable[..., ControlBook]
) -> None:
    memory.available = False  # the follower cannot start: the book never caught up
    book = replicas(catch_up_s=0.2)
    with pytest.raises(GovernanceUnavailable, match="still being read"):
        book.holding("acme", _intent("a"))
    memory.available = True  # the follower retries and catches up

    def answers() -> bool:
        try:
            return book.holding("acme", _intent("a")) is None
        except GovernanceUnavailable:
            return False

    _wait_for(answers, "the follower caught up", 10)


def test_a_control_the_topic_refused_is_enforced_nowhere(
    memory: MemoryTransport, replicas: Callable[..., ControlBook]
) -> None:
    book = replicas()
    memory.fail_sends_with = TransportUnavailable("broker down")
    with pytest.raises(GovernanceUnavailable):
        book.record("acme", _control(ControlAction.PAUSE, "a"))
    memory.fail_sends_with = None
    assert book.holding("acme", _intent("a")) is None and memory.records("controls") == []


# -- two collector processes on one broker --------------------------------------------------------


KEY = "s3cret-shared-controls"


def _start_collector(kafka: KafkaSettings, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("AGENTLEDGER_") or k == "AGENTLEDGER_KAFKA_BOOTSTRAP_SERVERS"
    }
    env.update(
        {
            "AGENTLEDGER_KAFKA_BOOTSTRAP_SERVERS": str(kafka.bootstrap_servers),
            "AGENTLEDGER_KAFKA_SPANS_TOPIC": kafka.spans_topic,
            "AGENTLEDGER_KAFKA_DEAD_LETTER_TOPIC": kafka.dead_letter_topic,
            "AGENTLEDGER_KAFKA_FEEDBACK_TOPIC": kafka.feedback_topic,
            "AGENTLEDGER_KAFKA_INTENTS_TOPIC": kafka.intents_topic,
            "AGENTLEDGER_KAFKA_CONTROLS_TOPIC": kafka.controls_topic,
            "AGENTLEDGER_KAFKA_PARTITIONS": "3",
            "AGENTLEDGER_API_KEYS": f"acme={KEY}",
            "AGENTLEDGER_HOST": "127.0.0.1",
            "AGENTLEDGER_PORT": str(port),
        }
    )
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "agentledger.cli", "collector", "--log-level", "warning"],
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


@pytest.fixture
def two_collectors(kafka_settings: KafkaSettings, tmp_path: Path) -> Iterator[list[str]]:
    kafka = kafka_settings
    procs: list[tuple[subprocess.Popen[bytes], Path]] = []
    urls = []
    try:
        for i in range(2):
            port = free_port()
            log = tmp_path / f"collector-{i}.log"
            procs.append((_start_collector(kafka, port, log), log))
            urls.append(f"http://127.0.0.1:{port}")
        for (proc, log), url in zip(procs, urls, strict=True):

            def ready(
                proc: subprocess.Popen[bytes] = proc, log: Path = log, url: str = url
            ) -> bool:
                if proc.poll() is not None:
                    pytest.fail(f"the collector exited {proc.returncode}:\n{log.read_text()}")
                try:
                    return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
                except httpx.HTTPError:
                    return False

            _wait_for(ready, f"collector {url} ready", timeout=60)
        yield urls
    finally:
        for proc, _ in procs:
            proc.terminate()
        for proc, _ in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def _ask(url: str, agent: str) -> str:
    intent = _intent(agent).model_dump(exclude_none=True)
    answer = httpx.post(
        f"{url}/v1/intents", json=intent, headers={"Authorization": f"Bearer {KEY}"}, timeout=10
    )
    assert answer.status_code == 200, answer.text
    decision: str = answer.json()["decision"]
    return decision


def _control_http(url: str, action: str, agent: str) -> None:
    answer = httpx.post(
        f"{url}/v1/controls",
        json={"action": action, "scope": "agent", "target": agent, "by": "desk", "reason": "t"},
        headers={"X-API-Key": KEY},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text


def _topic_config(kafka: KafkaSettings, topic: str) -> dict[str, str]:
    from kafka import KafkaAdminClient
    from kafka.admin import ConfigResource, ConfigResourceType

    admin = KafkaAdminClient(bootstrap_servers=kafka.bootstrap_servers)
    try:
        found = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    finally:
        admin.close()
    return {k: v["value"] for k, v in found["topic"][topic].items()}


def test_a_pause_sent_to_one_collector_holds_on_the_other_within_2_s(
    two_collectors: list[str], kafka_settings: KafkaSettings
) -> None:
    one, two = two_collectors
    # the collectors created the controls topic compacted (the latest event per key is kept)
    config = _topic_config(kafka_settings, kafka_settings.controls_topic)
    assert config["cleanup.policy"] == "compact" and "retention.ms" not in config
    agent = f"agent-{uuid.uuid4().hex[:8]}"
    assert _ask(two, agent) == "proceed"

    _control_http(one, "pause", agent)
    paused_at = time.monotonic()
    _wait_for(lambda: _ask(two, agent) == "paused", "the pause on collector two", timeout=10)
    assert time.monotonic() - paused_at < 2.0
    listed = httpx.get(f"{two}/v1/controls", headers={"X-API-Key": KEY}, timeout=10).json()
    assert listed["shared"] is True
    assert [c["target"] for c in listed["controls"]] == [agent]

    _control_http(two, "resume", agent)
    resumed_at = time.monotonic()
    _wait_for(lambda: _ask(one, agent) == "proceed", "the resume on collector one", timeout=10)
    assert time.monotonic() - resumed_at < 2.0
