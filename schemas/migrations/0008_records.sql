-- 0008: the record log. Intents, outcomes, controls, feedback, dataset manifests and drift reports
-- are appended to one insert-only table, `records` (kind, record_id, tenant, recorded_at, actor,
-- the body as RFC 8785 canonical JSON, its SHA-256); see agentledger/schemas/records.py.
-- Plain MergeTree: nothing replaces or collapses a record, and a change is a new record. A re-sent
-- record is dropped by the insert's deduplication token (inside the window); readers count what
-- is left once by (record_id, body_sha256) and compute the current state of anything as the latest
-- record per key. Nothing runs ALTER ... UPDATE or DELETE on it.
-- The typed views extract each kind's body fields: one row per stored record. feedback_latest_v
-- is feedback as it stands (the latest version of each feedback id on its trace, span and name).
-- The per-kind tables of 0002, 0004 and 0006 (intents, intent_outcomes, controls, feedback,
-- datasets, replay_runs, replays) are left as they were; when this migration is applied, their
-- rows are copied into `records` (pipeline/store/carry_over.py) and nothing writes them again.
-- dataset_members stays: it is the lineage detail of a dataset record (one row per span).

CREATE TABLE IF NOT EXISTS records
(
    tenant      LowCardinality(String) COMMENT 'Tenant, stamped by the collector from the API key.',
    kind        LowCardinality(String) COMMENT 'intent, outcome, control, feedback, dataset or drift_report.',
    recorded_at DateTime64(6, 'UTC') COMMENT 'When the server recorded the record.',
    record_id   String COMMENT 'Id of what the record is about, within its kind (intent, control, feedback, dataset, run id).',
    actor       String COMMENT 'Who recorded it: the API key''s name or id (key:...), api, cli, pipeline or migration.',
    body        String CODEC(ZSTD(3)) COMMENT 'The record''s fields as RFC 8785 canonical JSON.',
    body_sha256 String COMMENT 'SHA-256 of the body''s UTF-8 bytes, 64 lowercase hex digits.',
    INDEX idx_record_id record_id TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_trace_id JSONExtractString(body, 'trace_id') TYPE bloom_filter(0.001) GRANULARITY 1
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(recorded_at)
ORDER BY (tenant, kind, recorded_at, record_id)
SETTINGS non_replicated_deduplication_window = 10000;

CREATE VIEW IF NOT EXISTS intents_v AS
SELECT
    tenant,
    recorded_at,
    record_id,
    actor,
    body,
    body_sha256,
    record_id AS intent_id,
    JSONExtract(body, 'attempt', 'UInt32') AS attempt,
    parseDateTime64BestEffortOrZero(JSONExtractString(body, 'requested_at'), 6, 'UTC') AS requested_at,
    parseDateTime64BestEffortOrZero(JSONExtractString(body, 'received_at'), 6, 'UTC') AS received_at,
    JSONExtractString(body, 'decision') AS decision,
    JSONExtractString(body, 'control_id') AS control_id,
    JSONExtractString(body, 'tool_name') AS tool_name,
    JSONExtractString(body, 'tool_call_id') AS tool_call_id,
    JSONExtractString(body, 'arguments') AS arguments,
    JSONExtractString(body, 'arguments_sha256') AS arguments_sha256,
    JSONExtract(body, 'arguments_redacted', 'Bool') AS arguments_redacted,
    JSONExtractString(body, 'trace_id') AS trace_id,
    JSONExtractString(body, 'span_id') AS span_id,
    JSONExtractString(body, 'parent_span_id') AS parent_span_id,
    JSONExtractString(body, 'principal_id') AS principal_id,
    JSONExtractString(body, 'principal_name') AS principal_name,
    JSONExtractString(body, 'principal_role') AS principal_role,
    JSONExtract(body, 'principal_chain', 'Array(String)') AS principal_chain,
    JSONExtractString(body, 'policy_id') AS policy_id,
    JSONExtractString(body, 'agent_name') AS agent_name,
    JSONExtractString(body, 'session_id') AS session_id,
    JSONExtractString(body, 'user_id') AS user_id
FROM records
WHERE kind = 'intent';

CREATE VIEW IF NOT EXISTS intent_outcomes_v AS
SELECT
    tenant,
    recorded_at,
    record_id,
    actor,
    body,
    body_sha256,
    record_id AS intent_id,
    parseDateTime64BestEffortOrZero(JSONExtractString(body, 'finished_at'), 6, 'UTC') AS finished_at,
    parseDateTime64BestEffortOrZero(JSONExtractString(body, 'received_at'), 6, 'UTC') AS received_at,
    JSONExtractString(body, 'status') AS status,
    JSONExtractString(body, 'result') AS result,
    JSONExtractString(body, 'result_sha256') AS result_sha256,
    JSONExtractString(body, 'error_type') AS error_type,
    JSONExtractString(body, 'error_message') AS error_message,
    ifNull(JSONExtract(body, 'duration_ms', 'Nullable(Float64)'), nan) AS duration_ms,
    ifNull(JSONExtract(body, 'paused_ms', 'Nullable(Float64)'), nan) AS paused_ms
FROM records
WHERE kind = 'outcome';

CREATE VIEW IF NOT EXISTS controls_v AS
SELECT
    tenant,
    recorded_at,
    record_id,
    actor,
    body,
    body_sha256,
    record_id AS control_id,
    parseDateTime64BestEffortOrZero(JSONExtractString(body, 'created_at'), 6, 'UTC') AS created_at,
    JSONExtractString(body, 'action') AS action,
    JSONExtractString(body, 'scope') AS scope,
    JSONExtractString(body, 'target') AS target,
    JSONExtractString(body, 'by') AS by,
    JSONExtractString(body, 'reason') AS reason
FROM records
WHERE kind = 'control';

CREATE VIEW IF NOT EXISTS feedback_v AS
SELECT
    tenant,
    recorded_at,
    record_id,
    actor,
    body,
    body_sha256,
    record_id AS feedback_id,
    JSONExtractString(body, 'trace_id') AS trace_id,
    JSONExtractString(body, 'span_id') AS span_id,
    JSONExtractString(body, 'name') AS name,
    JSONExtract(body, 'score', 'Nullable(Float64)') AS score,
    JSONExtractString(body, 'label') AS label,
    JSONExtractString(body, 'comment') AS comment,
    JSONExtractString(body, 'correction') AS correction,
    JSONExtractString(body, 'annotator') AS annotator,
    JSONExtractString(body, 'annotator_kind') AS annotator_kind,
    JSONExtractString(body, 'source') AS source,
    JSONExtract(body, 'metadata', 'Map(String, String)') AS metadata,
    parseDateTime64BestEffortOrZero(JSONExtractString(body, 'created_at'), 3, 'UTC') AS created_at
FROM records
WHERE kind = 'feedback';

CREATE VIEW IF NOT EXISTS datasets_v AS
SELECT
    tenant,
    recorded_at,
    record_id,
    actor,
    body,
    body_sha256,
    record_id AS dataset_id,
    JSONExtractString(body, 'name') AS name,
    JSONExtractString(body, 'format') AS format,
    parseDateTime64BestEffortOrZero(JSONExtractString(body, 'created_at'), 3, 'UTC') AS created_at,
    JSONExtractString(body, 'creator') AS creator,
    JSONExtractString(body, 'path') AS path,
    JSONExtract(body, 'examples', 'UInt64') AS examples,
    JSONExtract(body, 'train_examples', 'UInt64') AS train_examples,
    JSONExtract(body, 'validation_examples', 'UInt64') AS validation_examples,
    JSONExtract(body, 'source_spans', 'UInt64') AS source_spans,
    JSONExtractString(body, 'content_digest') AS content_digest,
    JSONExtractString(body, 'redaction_policy') AS redaction_policy,
    JSONExtractRaw(body, 'filters') AS filters,
    JSONExtractRaw(body, 'manifest') AS manifest
FROM records
WHERE kind = 'dataset';

CREATE VIEW IF NOT EXISTS drift_reports_v AS
SELECT
    tenant,
    recorded_at,
    record_id,
    actor,
    body,
    body_sha256,
    record_id AS run_id,
    parseDateTime64BestEffortOrZero(JSONExtractString(body, 'created_at'), 3, 'UTC') AS created_at,
    JSONExtractString(body, 'candidate_model') AS candidate_model,
    JSONExtractString(body, 'base_url') AS base_url,
    JSONExtractRaw(body, 'filter') AS filter,
    JSONExtract(body, 'replayed', 'UInt32') AS replayed,
    JSONExtract(body, 'errors', 'UInt32') AS errors,
    JSONExtract(body, 'drifted', 'UInt32') AS drifted,
    ifNull(JSONExtract(body, 'tool_agreement', 'Nullable(Float64)'), nan) AS tool_agreement,
    ifNull(JSONExtract(body, 'argument_agreement', 'Nullable(Float64)'), nan) AS argument_agreement,
    ifNull(JSONExtract(body, 'text_similarity_mean', 'Nullable(Float64)'), nan) AS text_similarity_mean,
    ifNull(JSONExtract(body, 'text_similarity_p10', 'Nullable(Float64)'), nan) AS text_similarity_p10,
    ifNull(JSONExtract(body, 'text_similarity_p50', 'Nullable(Float64)'), nan) AS text_similarity_p50,
    ifNull(JSONExtract(body, 'text_similarity_min', 'Nullable(Float64)'), nan) AS text_similarity_min,
    JSONExtractRaw(body, 'summary') AS summary,
    JSONExtractRaw(body, 'calls') AS calls
FROM records
WHERE kind = 'drift_report';

CREATE VIEW IF NOT EXISTS feedback_latest_v AS
SELECT
    tenant,
    tupleElement(latest, 1) AS recorded_at,
    feedback_id AS record_id,
    tupleElement(latest, 2) AS actor,
    tupleElement(latest, 3) AS body,
    tupleElement(latest, 4) AS body_sha256,
    feedback_id,
    trace_id,
    span_id,
    name,
    JSONExtract(body, 'score', 'Nullable(Float64)') AS score,
    JSONExtractString(body, 'label') AS label,
    JSONExtractString(body, 'comment') AS comment,
    JSONExtractString(body, 'correction') AS correction,
    JSONExtractString(body, 'annotator') AS annotator,
    JSONExtractString(body, 'annotator_kind') AS annotator_kind,
    JSONExtractString(body, 'source') AS source,
    JSONExtract(body, 'metadata', 'Map(String, String)') AS metadata,
    parseDateTime64BestEffortOrZero(JSONExtractString(body, 'created_at'), 3, 'UTC') AS created_at
FROM
(
    SELECT
        tenant, trace_id, span_id, name, feedback_id,
        argMax(tuple(recorded_at, actor, body, body_sha256), tuple(created_at, recorded_at, body_sha256)) AS latest
    FROM feedback_v
    GROUP BY tenant, trace_id, span_id, name, feedback_id
);
