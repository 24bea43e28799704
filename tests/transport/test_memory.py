"""The in-memory double keeps the promises of the transport interface."""

from __future__ import annotations

import pytest

from agentledger.pipeline.transport import (
    MemoryTransport,
    OutgoingRecord,
    RecordTooLarge,
    TopicPartition,
    TransportUnavailable,
)


def test_a_key_keeps_its_partition_and_its_order(transport: MemoryTransport) -> None:
    producer = transport.producer()
    producer.send(
        [OutgoingRecord("spans", b"k%d" % (i % 4), b"%d" % i, [("h", b"v")]) for i in range(40)],
        timeout=1,
    )
    records = transport.records("spans")
    assert len(records) == 40 and transport.sent[0] == OutgoingRecord(
        "spans", b"k0", b"0", [("h", b"v")]
    )
    by_key: dict[bytes | None, set[int]] = {}
    for r in records:
        by_key.setdefault(r.key, set()).add(r.partition)
        assert r.headers == [("h", b"v")] and r.timestamp_ms > 0
    assert all(len(parts) == 1 for parts in by_key.values())
    for key in by_key:
        values = [int(r.value or b"") for r in records if r.key == key]
        assert values == sorted(values)


def test_a_group_resumes_from_its_committed_offsets(transport: MemoryTransport) -> None:
    transport.producer().send([OutgoingRecord("spans", None, b"%d" % i) for i in range(9)], 1)
    first = transport.subscribe("spans", group_id="g", client_id="c", max_poll_records=4)
    got = first.poll(0.1)
    assert len(got) == 4
    first.commit({TopicPartition(r.topic, r.partition): r.offset + 1 for r in got})
    first.close()
    again = transport.subscribe("spans", group_id="g", client_id="c", max_poll_records=100)
    rest = again.poll(0.1)
    assert sorted(r.value or b"" for r in got + rest) == sorted(b"%d" % i for i in range(9))
    assert transport.subscribe("spans", group_id="other", client_id="c").lag() == {
        TopicPartition("spans", p): 3 for p in range(3)
    }
    lag = transport.admin().group_lag("g", "spans")
    assert sum(p.lag for p in lag) == 5 and sum(p.end for p in lag) == 9


def test_a_paused_subscription_gets_nothing_until_resumed(transport: MemoryTransport) -> None:
    sub = transport.subscribe("spans", group_id="g", client_id="c")
    transport.producer().send([OutgoingRecord("spans", b"k", b"v")], 1)
    sub.pause()
    assert sub.poll(0.05) == []
    sub.resume()
    assert [r.value for r in sub.poll(0.05)] == [b"v"]


def test_sends_fail_when_told_and_refuse_what_is_too_large(transport: MemoryTransport) -> None:
    producer = transport.producer()
    transport.fail_sends_with = TransportUnavailable("broker down")
    with pytest.raises(TransportUnavailable):
        producer.send([OutgoingRecord("spans", b"k", b"v")], 1)
    transport.fail_sends_with = None
    with pytest.raises(RecordTooLarge):
        producer.send([OutgoingRecord("spans", b"k", b"x" * (200 * 1024))], 1)
    assert transport.sent == [] and transport.records("spans") == []
    assert transport.admin().ensure_topics() == [
        "spans",
        "logs",
        "spans.dlq",
        "feedback",
        "intents",
        "controls",
    ]
    assert transport.admin().ensure_topics() == []
    assert transport.compacted == {"controls"}


def test_every_follower_reads_every_partition_from_the_beginning(
    transport: MemoryTransport,
) -> None:
    producer = transport.producer()
    producer.send([OutgoingRecord("controls", b"k%d" % i, b"%d" % i) for i in range(6)], 1)
    first = transport.follow("controls", client_id="a")
    second = transport.follow("controls", client_id="b")
    assert sum(first.lag().values()) == 6
    got = first.poll(0.1)
    assert sorted(r.value or b"" for r in got) == [b"%d" % i for i in range(6)]
    assert not any(first.lag().values())
    producer.send([OutgoingRecord("controls", b"k0", b"later")], 1)
    assert [r.value for r in first.poll(1)] == [b"later"]  # it keeps following
    assert len(second.poll(0.1)) == 7  # no group: the other follower reads it all too
    assert transport.commits == []
    transport.available = False
    with pytest.raises(TransportUnavailable):
        transport.follow("controls", client_id="c")
