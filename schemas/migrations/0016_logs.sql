-- 0016: OTLP log records (POST /v1/logs). OpenTelemetry's GenAI instrumentations send a model call's
-- prompts and completions as log events linked to its span by trace and span id; they are stored
-- here as they came and joined to the span when the call is read (agentledger/schemas/logs.py).
-- Large bodies and attribute values are stored once in `contents` and referenced by hash.
-- ReplacingMergeTree on (..., log_id): a re-sent record collapses onto its row.
-- Two distinct events of one span differ in log_id, so they are never merged.

CREATE TABLE IF NOT EXISTS logs
(
    tenant              LowCardinality(String) COMMENT 'Tenant, stamped by the collector from the API key.',
    time                DateTime64(9, 'UTC') COMMENT 'When the event happened; its observed time when unset.',
    observed_time       DateTime64(9, 'UTC') COMMENT 'When the SDK observed the record.',
    trace_id            String COMMENT 'Trace id, 32 lowercase hex digits; empty when none.',
    span_id             String COMMENT 'Span id, 16 lowercase hex digits; empty when none.',
    log_id              String COMMENT 'SHA-256 of the trace and span ids, the record and its position among the span''s records in the request.',
    seq                 UInt32 COMMENT 'Position of the record in the request it came in.',
    severity_number     UInt8 COMMENT 'OTLP SeverityNumber (0: unset).',
    severity_text       LowCardinality(String) COMMENT 'Severity as the source spelled it.',
    event_name          LowCardinality(String) COMMENT 'Event name (event_name or the event.name attribute).',
    body                String CODEC(ZSTD(3)) COMMENT 'The body as canonical JSON; empty when stored by hash or unset.',
    body_hash           String COMMENT 'Content hash of a large body (in contents); else empty.',
    attributes          Map(String, String) CODEC(ZSTD(3)) COMMENT 'Record attributes; large values by reference.',
    attribute_refs      Map(String, String) CODEC(ZSTD(3)) COMMENT 'Attribute key -> content hash of its value.',
    resource_attributes Map(String, String) CODEC(ZSTD(3)) COMMENT 'Attributes of the emitting resource.',
    scope_name          LowCardinality(String) COMMENT 'Instrumentation scope name.',
    service             LowCardinality(String) COMMENT 'service.name of the emitting resource.',
    flags               UInt32 COMMENT 'OTLP log record flags (trace flags).',
    ingest_time         DateTime64(3, 'UTC') COMMENT 'When the collector received the record.',
    source_topic        LowCardinality(String) COMMENT 'Kafka topic, or embedded.',
    source_partition    Int32 COMMENT 'Kafka partition (0 embedded).',
    source_offset       Int64 COMMENT 'Kafka offset, or the embedded request sequence.',
    sent_by             String COMMENT 'Name of the API key that sent the record.',
    INDEX idx_trace_id trace_id TYPE bloom_filter(0.001) GRANULARITY 1
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(time)
ORDER BY (tenant, toDate(time), trace_id, span_id, log_id)
SETTINGS non_replicated_deduplication_window = 10000;
