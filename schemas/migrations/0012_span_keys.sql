-- 0012: the keys of the stored spans, for the insert-only check of every batch (0010). The store
-- writer asks which of a batch's (tenant, trace_id, span_id) are taken before it inserts; on
-- `spans` (sorted by tenant, date, trace, span) that question costs a skip-index scan that grows
-- with the table, here it is a primary-key lookup. The writer inserts a batch's new keys before
-- its spans (a key without its span, left by a crash between the two, counts as free). The keys
-- of the spans stored before are copied in by the migration's data step.

CREATE TABLE IF NOT EXISTS span_keys
(
    tenant   LowCardinality(String) COMMENT 'Tenant of the span.',
    trace_id String COMMENT 'Trace id, 32 hex digits.',
    span_id  String COMMENT 'Span id, 16 hex digits.'
)
ENGINE = ReplacingMergeTree
ORDER BY (tenant, trace_id, span_id)
SETTINGS non_replicated_deduplication_window = 10000;
