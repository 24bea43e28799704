-- 0006: replays of recorded model decisions (agentledger replay) and their drift reports.
-- replay_runs: one row per batch replay against a candidate model: the drift report's summary
-- (agreement on tool choice and arguments, text-similarity distribution, worst cases as JSON).
-- replays: one row per replayed LLM call, linked to its source span (trace_id, span_id and
-- source_start_time, which locate it in spans' sorting key), with the request's hashes and
-- the difference between the recorded and the new answer.
-- A report is inserted with its run id as the deduplication token, so storing it twice is harmless.

CREATE TABLE IF NOT EXISTS replay_runs
(
    tenant               LowCardinality(String) COMMENT 'Tenant whose recorded calls were replayed.',
    created_at           DateTime64(3, 'UTC') COMMENT 'When the replay ran.',
    run_id               String COMMENT 'Replay run id, 32 lowercase hex digits.',
    candidate_model      String COMMENT 'Model the calls were replayed against; empty = the recorded ones.',
    base_url             String COMMENT 'Provider base URL used; empty = the SDK default.',
    filter               String COMMENT 'JSON of the filters that chose the recorded calls.',
    replayed             UInt32 COMMENT 'Calls replayed and answered.',
    errors               UInt32 COMMENT 'Calls whose replay failed (provider error).',
    drifted              UInt32 COMMENT 'Answered calls whose answer differs from the recorded one.',
    tool_agreement       Float64 COMMENT 'Share of answered calls choosing the same tools; NaN when none answered.',
    argument_agreement   Float64 COMMENT 'Share choosing the same tools with equal arguments.',
    text_similarity_mean Float64 COMMENT 'Mean text similarity (difflib ratio) of the answers.',
    text_similarity_p10  Float64 COMMENT '10th percentile of the text similarity.',
    text_similarity_p50  Float64 COMMENT 'Median text similarity.',
    text_similarity_min  Float64 COMMENT 'Lowest text similarity.',
    report               String CODEC(ZSTD(3)) COMMENT 'JSON of the full summary, worst cases included.'
)
ENGINE = ReplacingMergeTree
ORDER BY (tenant, created_at, run_id)
SETTINGS non_replicated_deduplication_window = 10000;

CREATE TABLE IF NOT EXISTS replays
(
    tenant                  LowCardinality(String) COMMENT 'Tenant of the source span.',
    created_at              DateTime64(3, 'UTC') COMMENT 'When the replay ran (same for the whole run).',
    run_id                  String COMMENT 'Replay run (replay_runs.run_id).',
    trace_id                String COMMENT 'Trace of the source span.',
    span_id                 String COMMENT 'The recorded LLM span replayed.',
    source_start_time       DateTime64(9, 'UTC') COMMENT 'Start of the source span (locates it in spans).',
    agent_name              LowCardinality(String) COMMENT 'Agent of the source span.',
    api                     LowCardinality(String) COMMENT 'Wire API the request was sent in: openai or anthropic.',
    recorded_model          LowCardinality(String) COMMENT 'Model the recorded call requested.',
    recorded_answered_model LowCardinality(String) COMMENT 'Model that answered the recorded call.',
    replay_model            LowCardinality(String) COMMENT 'Model the replay requested.',
    replay_answered_model   LowCardinality(String) COMMENT 'Model that answered the replay.',
    request_source          LowCardinality(String) COMMENT 'recorded (the request as captured) or reconstructed.',
    request_sha256          String COMMENT 'SHA-256 of the canonical JSON of the rebuilt request.',
    input_hash              String COMMENT 'input_hash of the source span (canonical messages).',
    messages_match          Bool COMMENT 'The rebuilt request''s messages hash to input_hash.',
    status                  LowCardinality(String) COMMENT 'ok or error.',
    error                   String CODEC(ZSTD(3)) COMMENT 'Provider error of a failed replay.',
    same_tools              Bool COMMENT 'Same tools chosen, in the same order.',
    same_arguments          Bool COMMENT 'Same tools with equal arguments.',
    text_similarity         Float64 COMMENT 'difflib ratio of recorded and replayed text; NaN on error.',
    token_jaccard           Float64 COMMENT 'Jaccard index of the two texts'' word sets; NaN on error.',
    drift                   Bool COMMENT 'The replayed answer differs (or the replay failed).',
    recorded_tools          Array(String) COMMENT 'Tools the recorded answer chose, in order.',
    replayed_tools          Array(String) COMMENT 'Tools the replayed answer chose, in order.',
    recorded_output_hash    String COMMENT 'output_hash of the source span (the recorded answer).',
    replayed_answer         String CODEC(ZSTD(3)) COMMENT 'JSON of the replayed answer (text, tool calls, model).',
    INDEX idx_span_id span_id TYPE bloom_filter(0.001) GRANULARITY 1
)
ENGINE = ReplacingMergeTree
ORDER BY (tenant, toDate(created_at), run_id, span_id)
SETTINGS non_replicated_deduplication_window = 10000;
