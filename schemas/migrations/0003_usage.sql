-- 0003: usage rollup and anomalies (pipeline/jobs).
--
-- usage_hourly is NOT fed by a materialized view: a view sees every inserted
-- block, so a span redelivered under a new insert token (Kafka replay past
-- the deduplication window, the same span in two requests) would count twice.
-- Instead an incremental job (pipeline/jobs/usage.py) recomputes whole hours
-- from `spans FINAL` whenever an hour's raw fingerprint changed, and writes
-- them here with a newer version: reading `usage_hourly FINAL` is exact under
-- duplicates. Groups that vanished from a recomputed hour get zero rows.
-- Latency is a log-bucket histogram (5% buckets) merged with sumMap: quantiles
-- within 2.5%, and merging 500 k rows costs a fraction of merging t-digests.
-- usage_hourly_state records the fingerprint each hour was computed from.
-- anomalies is keyed by a deterministic id (type, metric, dimensions,
-- window), so re-running detection replaces rows instead of adding them.

CREATE TABLE IF NOT EXISTS usage_hourly
(
    tenant            LowCardinality(String) COMMENT 'Tenant of the spans.',
    hour              DateTime('UTC') COMMENT 'Start of the hour (span start_time).',
    principal_id      String COMMENT 'Principal the agent acted for.',
    agent_name        LowCardinality(String) COMMENT 'Agent that produced the spans.',
    provider          LowCardinality(String) COMMENT 'Model provider.',
    model             LowCardinality(String) COMMENT 'Answered model, else the requested one.',
    kind              LowCardinality(String) COMMENT 'SpanKind value.',
    tool_name         LowCardinality(String) COMMENT 'Tool a TOOL span executed.',
    calls             UInt64 COMMENT 'Spans (distinct span ids).',
    errors            UInt64 COMMENT 'Spans with status ERROR.',
    input_tokens      UInt64 COMMENT 'Input tokens.',
    output_tokens     UInt64 COMMENT 'Output tokens.',
    cache_read_tokens UInt64 COMMENT 'Input tokens read from the prompt cache.',
    reasoning_tokens  UInt64 COMMENT 'Output tokens spent on reasoning.',
    cost_usd          Float64 COMMENT 'Cost in US dollars.',
    duration_ms_sum   Float64 COMMENT 'Sum of span durations in milliseconds.',
    duration_ms_max   Float64 COMMENT 'Longest span duration in milliseconds.',
    latency_ms_hist   Map(Int16, UInt64) COMMENT 'Duration histogram: bucket k holds spans of 1.05^k <= ms < 1.05^(k+1).',
    computed_at       DateTime64(6, 'UTC') COMMENT 'Version: when the hour was recomputed.'
)
ENGINE = ReplacingMergeTree(computed_at)
PARTITION BY toYYYYMM(hour)
ORDER BY (tenant, hour, principal_id, agent_name, provider, model, kind, tool_name);

CREATE TABLE IF NOT EXISTS usage_hourly_state
(
    tenant      LowCardinality(String) COMMENT 'Tenant of the spans.',
    hour        DateTime('UTC') COMMENT 'Start of the hour.',
    span_rows   UInt64 COMMENT 'Raw span rows (duplicates included) the hour was computed from.',
    fingerprint UInt64 COMMENT 'Sum of cityHash64(start_time, duration_ms) over those raw rows.',
    computed_at DateTime64(6, 'UTC') COMMENT 'Version: when the hour was recomputed.'
)
ENGINE = ReplacingMergeTree(computed_at)
ORDER BY (tenant, hour);

CREATE TABLE IF NOT EXISTS anomalies
(
    tenant            LowCardinality(String) COMMENT 'Tenant the anomaly was found in.',
    window_start      DateTime('UTC') COMMENT 'Start of the window the anomaly covers.',
    window_end        DateTime('UTC') COMMENT 'End of that window (exclusive).',
    type              LowCardinality(String) COMMENT 'AnomalyType value.',
    anomaly_id        String COMMENT 'Deterministic id: hash of type, metric, dimensions, window_start.',
    metric            LowCardinality(String) COMMENT 'What was measured (cost_usd, latency_p50_ms, errors...).',
    dimensions        Map(String, String) COMMENT 'Dimension values (principal_id, model, tool_name...).',
    score             Float64 COMMENT 'Strength: robust z-score, -log10 p-value, or a count.',
    expected          Float64 COMMENT 'Baseline value of the metric.',
    observed          Float64 COMMENT 'Observed value of the metric.',
    example_trace_ids Array(String) COMMENT 'Some traces that show it.',
    detail            String CODEC(ZSTD(3)) COMMENT 'One line for people.',
    first_detected    DateTime64(3, 'UTC') COMMENT 'When detection first reported it.',
    detected_at       DateTime64(3, 'UTC') COMMENT 'Version: the latest detection pass that reported it.'
)
ENGINE = ReplacingMergeTree(detected_at)
PARTITION BY toYYYYMM(window_start)
ORDER BY (tenant, window_start, type, anomaly_id);
