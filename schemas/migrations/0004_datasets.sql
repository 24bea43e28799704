-- 0004: feedback on traces and spans, exported datasets, and their lineage.
-- Deduplicating engines: feedback arrives at least once (HTTP retries, Kafka
-- redelivery), so its sorting key is its identity and a repeat collapses.
-- The identity deliberately leaves time out: a retried feedback carries a new
-- receive time but is the same feedback. Readers use FINAL.

CREATE TABLE IF NOT EXISTS feedback
(
    tenant          LowCardinality(String) COMMENT 'Tenant, stamped by the collector from the API key.',
    trace_id        String COMMENT 'Trace the feedback is about; empty when only the span was named and not resolvable.',
    span_id         String COMMENT 'Span the feedback is about; empty for feedback on the whole trace.',
    name            LowCardinality(String) COMMENT 'What was judged (helpfulness, correctness, thumbs...).',
    feedback_id     String COMMENT 'Idempotency key: given by the client, else SHA-256 of the feedback itself.',
    score           Nullable(Float64) COMMENT 'Numeric value, if any.',
    label           String COMMENT 'Categorical value, if any.',
    comment         String CODEC(ZSTD(3)) COMMENT 'Free text.',
    correction      String CODEC(ZSTD(3)) COMMENT 'Corrected output the annotator supplied (a preferred answer).',
    annotator       String COMMENT 'Who gave it: a person, a model or a program.',
    annotator_kind  LowCardinality(String) COMMENT 'HUMAN, LLM or CODE.',
    source          LowCardinality(String) COMMENT 'api, cli, span_attribute or span_event.',
    metadata        Map(String, String) CODEC(ZSTD(3)) COMMENT 'Extra key/values.',
    created_at      DateTime64(3, 'UTC') COMMENT 'When it was given; the latest version of an id wins.',
    INDEX idx_span_id span_id TYPE bloom_filter(0.001) GRANULARITY 1
)
ENGINE = ReplacingMergeTree(created_at)
ORDER BY (tenant, trace_id, span_id, name, feedback_id)
SETTINGS non_replicated_deduplication_window = 10000;

-- One row per export; the manifest is the JSON written next to the files.
-- Keyed by id alone (not time) so that a repeated record of one export collapses.
CREATE TABLE IF NOT EXISTS datasets
(
    tenant              LowCardinality(String) COMMENT 'Tenant whose spans the dataset was built from.',
    dataset_id          String COMMENT 'Dataset id (ds-<UTC time>-<random>).',
    name                String COMMENT 'Human name given at export.',
    format              LowCardinality(String) COMMENT 'chat, preference, openai-dpo, parquet or trajectory.',
    created_at          DateTime64(3, 'UTC') COMMENT 'When the export finished.',
    creator             String COMMENT 'Who ran the export.',
    path                String COMMENT 'Directory the files were written to.',
    examples            UInt64 COMMENT 'Examples written, all splits.',
    train_examples      UInt64 COMMENT 'Examples in the train split.',
    validation_examples UInt64 COMMENT 'Examples in the validation split.',
    source_spans        UInt64 COMMENT 'Production spans the examples were built from.',
    content_digest      String COMMENT 'SHA-256 over the example content hashes, in file order.',
    redaction_policy    String COMMENT 'Redaction policy applied (name/version and presets).',
    filters             String CODEC(ZSTD(3)) COMMENT 'Export filters as JSON.',
    manifest            String CODEC(ZSTD(3)) COMMENT 'The manifest JSON as written next to the files.'
)
ENGINE = ReplacingMergeTree(created_at)
ORDER BY (tenant, dataset_id)
SETTINGS non_replicated_deduplication_window = 10000;

-- Lineage in both directions: which spans are in a dataset (by dataset_id, the key
-- prefix) and which datasets contain a span (bloom-filter index on span_id).
CREATE TABLE IF NOT EXISTS dataset_members
(
    tenant       LowCardinality(String) COMMENT 'Tenant of the dataset and the span.',
    dataset_id   String COMMENT 'Dataset the span contributed to.',
    span_id      String COMMENT 'Production span.',
    trace_id     String COMMENT 'Trace of the span.',
    example_hash String COMMENT 'SHA-256 of the example the span contributed to.',
    split        LowCardinality(String) COMMENT 'train or validation.',
    role         LowCardinality(String) COMMENT 'example, chosen, rejected or step.',
    created_at   DateTime64(3, 'UTC') COMMENT 'When the export finished.',
    INDEX idx_span_id span_id TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_trace_id trace_id TYPE bloom_filter(0.001) GRANULARITY 1
)
ENGINE = ReplacingMergeTree
ORDER BY (tenant, dataset_id, span_id, example_hash, role)
SETTINGS non_replicated_deduplication_window = 10000;
