-- 0015: the verifiable ledger's log (ARCHITECTURE decision 8, issue 16). One append-only RFC 9162
-- Merkle log per tenant: `ledger_leaves` holds each leaf's hash at its index (the leaf's record is
-- recomputed from the stored span or record, agentledger/schemas/ledger.py); `ledger_tree_checkpoints`
-- holds the signed C2SP checkpoints (the note text; the private key is never stored here). One
-- appender per tenant (pipeline/derive/tlog_job.py) writes both, leaves first.
-- Plain MergeTree: nothing collapses a leaf, so two leaves at one index (a fork by a second
-- appender) stay visible to `agentledger ledger verify` instead of being merged away. A retried
-- append carries the same deduplication token (tenant/first index/hash of the batch) and is dropped.

CREATE TABLE IF NOT EXISTS ledger_leaves
(
    tenant      LowCardinality(String) COMMENT 'Tenant whose log holds the leaf.',
    leaf_index  UInt64 COMMENT 'Position in the tenant''s log, from 0, consecutive.',
    kind        LowCardinality(String) COMMENT 'Leaf kind (schemas.ledger.LeafKind): span, intent, access...',
    record_id   String COMMENT 'The leaf''s id: span id, or the record''s record_id.',
    record_key  String COMMENT 'What else locates the stored row: the trace id of a span, the body_sha256 of a record.',
    source_time DateTime64(6, 'UTC') COMMENT 'Ingest time of the span, recorded_at of the record: the append order.',
    leaf_hash   String COMMENT 'SHA-256(0x00 || canonical record), 64 lowercase hex digits.',
    batch       String COMMENT 'The append''s deduplication token: tenant/first index/hash of its leaves.',
    appended_at DateTime64(6, 'UTC') COMMENT 'When the leaf was appended.',
    INDEX idx_record_id record_id TYPE bloom_filter(0.001) GRANULARITY 1
)
ENGINE = MergeTree
ORDER BY (tenant, leaf_index)
SETTINGS non_replicated_deduplication_window = 10000;

CREATE TABLE IF NOT EXISTS ledger_tree_checkpoints
(
    tenant        LowCardinality(String) COMMENT 'Tenant whose log the checkpoint signs.',
    tree_size     UInt64 COMMENT 'Leaves covered: indices 0 .. tree_size - 1.',
    root_hash     String COMMENT 'RFC 9162 root of those leaves, 64 lowercase hex digits.',
    compact_range Array(String) COMMENT 'Roots of the perfect subtrees of the tree (hex, largest first): the next append resumes from them.',
    note          String COMMENT 'The C2SP signed note (tlog-checkpoint text and signature lines).',
    key_name      String COMMENT 'Name of the signing key.',
    key_id        String COMMENT 'Key id of the signing key, 8 hex digits.',
    signed_at     DateTime64(6, 'UTC') COMMENT 'When the checkpoint was signed.'
)
ENGINE = MergeTree
ORDER BY (tenant, tree_size, signed_at)
SETTINGS non_replicated_deduplication_window = 10000;
