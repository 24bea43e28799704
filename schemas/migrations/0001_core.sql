-- 0001: the canonical span table and the content-addressed store.
-- Deduplicating engines: delivery is at-least-once, results exactly-once.
-- Identical re-deliveries are dropped at insert by the deduplication token
-- (window set explicitly: embedded ClickHouse defaults it to 0) and any that
-- slip through collapse on merge; shipped queries read with FINAL.

CREATE TABLE IF NOT EXISTS spans
(
    tenant              LowCardinality(String) COMMENT 'Tenant, stamped by the collector from the API key.',
    trace_id            String COMMENT 'Trace id, 32 lowercase hex digits.',
    span_id             String COMMENT 'Span id, 16 lowercase hex digits.',
    parent_span_id      String COMMENT 'Parent span id, empty for a root span.',
    start_time          DateTime64(9, 'UTC') COMMENT 'Span start.',
    end_time            DateTime64(9, 'UTC') COMMENT 'Span end.',
    duration_ms         Float64 COMMENT 'end_time - start_time in milliseconds.',
    name                String COMMENT 'Span name.',
    kind                LowCardinality(String) COMMENT 'SpanKind value.',
    status_code         LowCardinality(String) COMMENT 'UNSET, OK or ERROR.',
    status_message      String CODEC(ZSTD(3)) COMMENT 'Status description (error message).',
    service             LowCardinality(String) COMMENT 'service.name of the emitting resource.',
    agent_name          LowCardinality(String) COMMENT 'Agent that produced the span.',
    session_id          String COMMENT 'Session or conversation id.',
    user_id             String COMMENT 'End-user id.',
    principal_id        String COMMENT 'Named principal the agent acted for; empty if unattributed.',
    principal_chain     Array(String) COMMENT 'Delegation chain, outermost first.',
    policy_id           String COMMENT 'Policy the action ran under.',
    provider            LowCardinality(String) COMMENT 'Model provider (openai, anthropic...).',
    operation           LowCardinality(String) COMMENT 'Operation (chat, embeddings, execute_tool...).',
    request_model       LowCardinality(String) COMMENT 'Model the caller requested.',
    response_model      LowCardinality(String) COMMENT 'Model the provider answered with.',
    system_fingerprint  String COMMENT 'Providers system fingerprint, where given.',
    input_tokens        UInt64 COMMENT 'Input (prompt) tokens.',
    output_tokens       UInt64 COMMENT 'Output (completion) tokens.',
    cache_read_tokens   UInt64 COMMENT 'Input tokens read from the prompt cache.',
    cache_write_tokens  UInt64 COMMENT 'Input tokens written to the prompt cache.',
    reasoning_tokens    UInt64 COMMENT 'Output tokens spent on reasoning.',
    cost_usd            Float64 COMMENT 'Cost in US dollars.',
    cost_source         LowCardinality(String) COMMENT 'CostSource value.',
    tool_name           LowCardinality(String) COMMENT 'Tool a TOOL span executed.',
    tool_call_id        String COMMENT 'Tool call id a TOOL span executed.',
    tool_calls          Array(Tuple(id String, name String, arguments_hash String)) COMMENT 'Tool calls an LLM span chose, in order.',
    input_hash          String COMMENT 'Content hash of the input (messages or value).',
    output_hash         String COMMENT 'Content hash of the output.',
    system_prompt_hash  String COMMENT 'Content hash of the system prompt.',
    input_preview       String CODEC(ZSTD(3)) COMMENT 'First characters of the input, for listings.',
    output_preview      String CODEC(ZSTD(3)) COMMENT 'First characters of the output, for listings.',
    documents           Array(Tuple(id String, content_hash String, score Float64)) COMMENT 'Retrieved documents in rank order; score is NaN if absent.',
    convention          LowCardinality(String) COMMENT 'Convention value the span came in.',
    scope_name          LowCardinality(String) COMMENT 'Instrumentation scope name.',
    attributes          Map(String, String) CODEC(ZSTD(3)) COMMENT 'All span attributes; large values by reference.',
    attribute_refs      Map(String, String) CODEC(ZSTD(3)) COMMENT 'Attribute key -> content hash of its value.',
    resource_attributes Map(String, String) CODEC(ZSTD(3)) COMMENT 'All resource attributes.',
    events              String CODEC(ZSTD(3)) COMMENT 'Span events as JSON (exceptions, legacy GenAI events).',
    ingest_time         DateTime64(3, 'UTC') COMMENT 'When the collector received the span.',
    source_topic        LowCardinality(String) COMMENT 'Kafka topic, or embedded.',
    source_partition    Int32 COMMENT 'Kafka partition (0 embedded).',
    source_offset       Int64 COMMENT 'Kafka offset, or the embedded request sequence.',
    INDEX idx_trace_id trace_id TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_span_id span_id TYPE bloom_filter(0.001) GRANULARITY 1
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(start_time)
ORDER BY (tenant, toDate(start_time), trace_id, span_id)
SETTINGS non_replicated_deduplication_window = 10000;

CREATE TABLE IF NOT EXISTS contents
(
    tenant     LowCardinality(String) COMMENT 'Tenant that stored the content.',
    hash       String COMMENT 'SHA-256 of the canonical form, 64 lowercase hex digits.',
    kind       LowCardinality(String) COMMENT 'ContentKind value.',
    content    String CODEC(ZSTD(3)) COMMENT 'The canonical form itself.',
    size       UInt64 COMMENT 'Length of the canonical form in bytes.',
    first_seen DateTime64(3, 'UTC') COMMENT 'Ingest time of the first span that carried it.'
)
ENGINE = ReplacingMergeTree(first_seen)
ORDER BY (tenant, hash)
SETTINGS non_replicated_deduplication_window = 10000;
