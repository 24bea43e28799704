-- 0018: per-tenant retention and legal holds (issue 16, item 6). Both are insert-only: a change
-- is a new row, the current state is the latest row per key (a tenant's retention; a hold id),
-- and who changed what stays on record. The retention job (agentledger/pipeline/derive/retention.py)
-- prunes a tenant's spans ingested before now - days, except those of a trace, session or
-- principal under an active hold, and records each pass as a retention_expiry record (0017).
-- No ClickHouse TTL on spans or contents: a TTL deletes in background merges, where it can neither
-- skip held rows nor leave the record that keeps `ledger verify` OK; see docs in retention.py.

CREATE TABLE IF NOT EXISTS retention_policies
(
    tenant    LowCardinality(String) COMMENT 'Tenant the retention applies to.',
    days      UInt32 COMMENT 'Spans ingested more than this many days ago are pruned; 0 = keep forever.',
    set_at    DateTime64(6, 'UTC') COMMENT 'When it was set; the latest row of a tenant is in force.',
    actor     String COMMENT 'Name of the API key (or cli) that set it.'
)
ENGINE = MergeTree
ORDER BY (tenant, set_at)
SETTINGS non_replicated_deduplication_window = 10000;

CREATE TABLE IF NOT EXISTS legal_holds
(
    tenant    LowCardinality(String) COMMENT 'Tenant of the held data.',
    hold_id   String COMMENT 'Hold id, 32 hex digits; a release is a later row of the same id.',
    scope     LowCardinality(String) COMMENT 'trace, session or principal.',
    target    String COMMENT 'Trace id, session id or principal id held.',
    active    Bool COMMENT 'true: placed; false: released. The latest row of a hold id is in force.',
    reason    String COMMENT 'Why (a case, a matter number).',
    at        DateTime64(6, 'UTC') COMMENT 'When it was placed or released.',
    actor     String COMMENT 'Name of the API key (or cli) that placed or released it.'
)
ENGINE = MergeTree
ORDER BY (tenant, hold_id, at)
SETTINGS non_replicated_deduplication_window = 10000;
