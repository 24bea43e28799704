-- 0010: span conflicts. History is insert-only (ARCHITECTURE.md, decision 9): a span re-sent with the
-- tenant, trace id and span id of a stored span but different content never replaces it. The
-- store writer (pipeline/store/span_history.py) looks the batch's ids up before it inserts: an
-- identical re-send is dropped (idempotent), a changed one lands here, in full, and the spans
-- table keeps the first version, which is what every read returns.
-- The columns are those of `spans` (schemas/spans.py, in table order: a migration that adds a
-- column to spans adds it here too; tests/pipeline/test_span_conflicts.py checks they match),
-- then the hash of the stored version it conflicts with and when the conflict was detected.
-- The second version's own hash is the ledger's row hash over these columns (ROW_HASH_SQL).
-- Plain MergeTree: nothing collapses or replaces a conflict; every changed arrival is a row. A
-- retried write is dropped by the insert's deduplication token (inside the window).

CREATE TABLE IF NOT EXISTS span_conflicts
(
    tenant              LowCardinality(String),
    trace_id            String,
    span_id             String,
    parent_span_id      String,
    start_time          DateTime64(9, 'UTC'),
    end_time            DateTime64(9, 'UTC'),
    duration_ms         Float64,
    name                String,
    kind                LowCardinality(String),
    status_code         LowCardinality(String),
    status_message      String CODEC(ZSTD(3)),
    service             LowCardinality(String),
    agent_name          LowCardinality(String),
    session_id          String,
    user_id             String,
    principal_id        String,
    principal_chain     Array(String),
    policy_id           String,
    provider            LowCardinality(String),
    operation           LowCardinality(String),
    request_model       LowCardinality(String),
    response_model      LowCardinality(String),
    system_fingerprint  String,
    input_tokens        UInt64,
    output_tokens       UInt64,
    cache_read_tokens   UInt64,
    cache_write_tokens  UInt64,
    reasoning_tokens    UInt64,
    cost_usd            Float64,
    cost_source         LowCardinality(String),
    tool_name           LowCardinality(String),
    tool_call_id        String,
    tool_calls          Array(Tuple(id String, name String, arguments_hash String)),
    input_hash          String,
    output_hash         String,
    system_prompt_hash  String,
    request_params      String CODEC(ZSTD(3)),
    tools_hash          String,
    finish_reasons      Array(String),
    request_hash        String,
    raw_request_hash    String,
    input_preview       String CODEC(ZSTD(3)),
    output_preview      String CODEC(ZSTD(3)),
    documents           Array(Tuple(id String, content_hash String, score Float64)),
    convention          LowCardinality(String),
    scope_name          LowCardinality(String),
    attributes          Map(String, String) CODEC(ZSTD(3)),
    attribute_refs      Map(String, String) CODEC(ZSTD(3)),
    resource_attributes Map(String, String) CODEC(ZSTD(3)),
    events              String CODEC(ZSTD(3)),
    ingest_time         DateTime64(3, 'UTC'),
    source_topic        LowCardinality(String),
    source_partition    Int32,
    source_offset       Int64,
    stored_hash         String COMMENT 'Row hash (ROW_HASH_SQL) of the stored span this version conflicts with.',
    detected_at         DateTime64(3, 'UTC') COMMENT 'When the store writer found the conflict.'
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(ingest_time)
ORDER BY (tenant, trace_id, span_id, ingest_time)
SETTINGS non_replicated_deduplication_window = 10000;
