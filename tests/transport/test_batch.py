"""The poll -> store -> commit loop over the in-memory transport: what is committed is stored,
poison goes to the dead-letter topic, a store outage commits nothing."""

from __future__ import annotations

import threading

from agentledger.pipeline.store import StoreUnavailable
from agentledger.pipeline.transport import (
    CommitFailed,
    IncomingRecord,
    MemoryTransport,
    OutgoingRecord,
    TopicPartition,
    TransportUnavailable,
    header_map,
)
from agentledger.pipeline.transport.batch import BatchConsumer, BatchStats
from agentledger.schemas.topics import Headers
from tests.transport.conftest import Running, wait_for


class ListStore:
    """Keeps inserted items with their deduplication token; ``down`` makes inserts unavailable."""

    def __init__(self) -> None:
        self.rows: list[int] = []
        self.tokens: list[str] = []
        self.attempts = 0
        self.down = False
        self._lock = threading.Lock()

    def insert(self, items: list[int], token: str) -> None:
        with self._lock:
            self.attempts += 1
            if self.down:
                raise StoreUnavailable("connection refused")
            if token not in self.tokens:  # a deduplicating table
                self.rows.extend(items)
                self.tokens.append(token)


class NumberConsumer(BatchConsumer[int]):
    """Records hold decimal numbers; anything else is poison."""

    def __init__(self, transport: MemoryTransport, store: ListStore, group_id: str = "g") -> None:
        self.store = store
        super().__init__(
            transport,
            topic="spans",
            group_id=group_id,
            client_id="test",
            stats=BatchStats(),
            batch_max=50,
            batch_seconds=0.05,
            retry_max_seconds=0.05,
            max_poll_records=20,
        )

    def decode(self, record: IncomingRecord) -> int | None:
        try:
            return int(record.value or b"")
        except ValueError as exc:
            self.dead_letter(record, f"not a number: {exc}", type(exc).__name__)
            return None

    def handle(self, items: list[int], token: str) -> None:
        self.retry_unavailable(lambda: self.store.insert(items, token))


def produce(transport: MemoryTransport, *values: bytes) -> None:
    transport.producer().send(
        [OutgoingRecord("spans", b"k%d" % i, v, [("h", b"x")]) for i, v in enumerate(values)], 1
    )


def ends(transport: MemoryTransport) -> dict[TopicPartition, int]:
    out: dict[TopicPartition, int] = {}
    for r in transport.records("spans"):
        out[TopicPartition(r.topic, r.partition)] = r.offset + 1
    return out


def test_stores_then_commits_every_record(transport: MemoryTransport) -> None:
    store = ListStore()
    produce(transport, *(b"%d" % i for i in range(120)))
    with Running(NumberConsumer(transport, store)) as consumer:
        wait_for(lambda: transport.committed("g") == ends(transport), "all committed")
    assert sorted(store.rows) == list(range(120))
    assert consumer.stats.records == 120 and consumer.stats.batches >= 2  # batch_max 50
    assert all(token.startswith("spans:") for token in store.tokens)
    assert consumer.stats.dead_letters == 0 and transport.records("spans.dlq") == []
    # every partition's position is known, the lag is zero
    assert consumer.stats.lag and set(consumer.stats.lag.values()) == {0}


def test_a_poison_record_goes_to_the_dead_letters_and_the_loop_goes_on(
    transport: MemoryTransport,
) -> None:
    store = ListStore()
    produce(transport, b"1", b"2", b"oops", b"4")
    with Running(NumberConsumer(transport, store)) as consumer:
        wait_for(lambda: transport.committed("g") == ends(transport), "all committed")
        produce(transport, b"5")
        wait_for(lambda: 5 in store.rows, "a record after the poison")
    assert sorted(store.rows) == [1, 2, 4, 5]
    (dead,) = transport.records("spans.dlq")
    (poison,) = [r for r in transport.records("spans") if r.value == b"oops"]
    assert dead.value == b"oops" and dead.key == poison.key
    headers = header_map(dead.headers)
    assert headers["h"] == "x"  # the record's own headers kept
    assert headers[Headers.ERROR].startswith("not a number")
    assert headers[Headers.ERROR_CLASS] == "ValueError"
    assert headers[Headers.SOURCE] == f"spans/{poison.partition}/{poison.offset}"
    assert consumer.stats.dead_letters == 1


def test_a_store_outage_pauses_retries_and_commits_nothing_until_it_recovers(
    transport: MemoryTransport,
) -> None:
    store = ListStore()
    produce(transport, b"1", b"2", b"3")
    consumer = NumberConsumer(transport, store)
    with Running(consumer):
        wait_for(lambda: len(store.rows) == 3, "first part stored")
        wait_for(lambda: transport.committed("g") == ends(transport), "first part committed")
        commits = len(transport.commits)
        store.down = True
        produce(transport, b"10", b"11", b"12")
        wait_for(lambda: consumer.stats.store_retries >= 3, "retries while the store is down")
        assert consumer.stats.store_available is False
        assert consumer._subscription.paused
        polls = consumer._subscription.polls
        wait_for(lambda: consumer._subscription.polls > polls + 2, "membership kept alive")
        assert len(transport.commits) == commits, "nothing committed during the outage"
        store.down = False
        wait_for(lambda: transport.committed("g") == ends(transport), "all committed")
    assert sorted(store.rows) == [1, 2, 3, 10, 11, 12]
    assert consumer.stats.store_available is True and not consumer._subscription.paused
    assert consumer.stats.dead_letters == 0


def test_stop_during_an_outage_leaves_the_batch_uncommitted(transport: MemoryTransport) -> None:
    store = ListStore()
    store.down = True
    produce(transport, b"7", b"8", b"oops")
    consumer = NumberConsumer(transport, store)
    with Running(consumer):
        wait_for(lambda: consumer.stats.store_retries >= 2, "retries")
    assert transport.commits == [] and store.rows == []
    assert transport.records("spans.dlq") == [], "its dead letters are sent with the batch only"
    # the next run reads the same batch again and stores it with the same token
    attempted = consumer.stats.records
    store.down = False
    with Running(NumberConsumer(transport, store)) as again:
        wait_for(lambda: transport.committed("g") == ends(transport), "committed on the rerun")
    assert sorted(store.rows) == [7, 8] and again.stats.records == attempted
    assert len(transport.records("spans.dlq")) == 1


def test_dead_letters_are_acknowledged_before_the_offsets_are_committed(
    transport: MemoryTransport,
) -> None:
    store = ListStore()
    produce(transport, b"oops")
    consumer = NumberConsumer(transport, store)
    transport.fail_sends_with = TransportUnavailable("dead-letter topic unreachable")
    with Running(consumer):
        wait_for(lambda: consumer._subscription.paused, "paused while dead letters wait")
        wait_for(lambda: consumer._subscription.polls > 3, "membership kept alive")
        assert transport.commits == []
        transport.fail_sends_with = None
        wait_for(lambda: transport.committed("g") == ends(transport), "committed after the send")
    assert [r.value for r in transport.records("spans.dlq")] == [b"oops"]


def test_a_failed_commit_is_counted_and_the_loop_goes_on(transport: MemoryTransport) -> None:
    store = ListStore()
    transport.fail_commits_with = CommitFailed("rebalanced")
    produce(transport, b"1")
    with Running(NumberConsumer(transport, store)) as consumer:
        wait_for(lambda: consumer.stats.commit_failures >= 1, "a commit failure")
        transport.fail_commits_with = None
        produce(transport, b"2")
        wait_for(lambda: transport.committed("g") == ends(transport), "a later commit")
    assert sorted(store.rows) == [1, 2]
