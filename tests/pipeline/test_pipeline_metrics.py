"""The pipeline's Prometheus text, rendered from a consumer's counters and a group's lag (the
in-memory transport: committed offsets and ends as a broker keeps them). The values against a
real broker and a running pipeline: tests/kafka/test_metrics_kafka.py."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from agentledger.pipeline.consumers.lag import GroupLag
from agentledger.pipeline.consumers.metrics import consumer_status, prometheus_text
from agentledger.pipeline.consumers.spans import ConsumerStats
from agentledger.pipeline.settings import KafkaSettings
from agentledger.pipeline.transport import MemoryTransport, OutgoingRecord, TopicPartition


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_batch_durations_render_as_a_cumulative_histogram() -> None:
    stats = ConsumerStats()
    for seconds in (0.004, 0.009, 0.2, 3.0, 120.0):
        stats.batch_seconds.observe(seconds)
    samples = _samples(prometheus_text(consumer_status(stats)))

    def bucket(le: str) -> float:
        return samples[("agentledger_pipeline_batch_seconds_bucket", (("le", le),))]

    assert (bucket("0.01"), bucket("0.25"), bucket("5.0"), bucket("30.0")) == (2, 3, 4, 4)
    assert bucket("+Inf") == samples[("agentledger_pipeline_batch_seconds_count", ())] == 5
    assert samples[("agentledger_pipeline_batch_seconds_sum", ())] == 123.213


def test_lag_per_partition_is_the_group_s_committed_offset_against_the_end() -> None:
    settings = KafkaSettings(partitions=2)
    transport = MemoryTransport(settings)
    topic, group = settings.spans_topic, settings.group_id
    with transport.admin() as admin:
        admin.ensure_topics()
    producer = transport.producer()
    producer.send([OutgoingRecord(topic, f"k{i}".encode(), b"v") for i in range(10)], timeout=1)
    subscription = transport.subscribe(topic, group_id=group, client_id="c")
    subscription.commit({TopicPartition(topic, 0): 1})
    lag = GroupLag(transport, [(group, topic)])
    assert "agentledger_pipeline_lag_age_seconds" not in prometheus_text(
        consumer_status(ConsumerStats(), lag)
    )  # never read: no age to show
    with transport.admin() as admin:
        lag.refresh(admin)
    samples = _samples(prometheus_text(consumer_status(ConsumerStats(), lag)))
    ends = transport.admin().group_lag(group, topic)
    for p in ends:
        labels = (("group", group), ("partition", str(p.partition)), ("topic", topic))
        assert samples[("agentledger_pipeline_end_offset", labels)] == p.end
        committed = 1 if p.partition == 0 else 0
        assert samples[("agentledger_pipeline_committed_offset", labels)] == committed
        assert samples[("agentledger_pipeline_lag_records", labels)] == p.end - committed
    assert sum(p.end for p in ends) == 10
    assert samples[("agentledger_pipeline_lag_age_seconds", ())] >= 0
