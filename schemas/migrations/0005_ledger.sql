-- 0005: the tamper-evident ledger. The pipeline appends one checkpoint per tenant and
-- source stream (Kafka topic/partition, or the embedded sequence) for every batch it
-- stores: the batch's row hashes (leaves), their Merkle root, and a hash chained to the
-- stream's previous checkpoint, optionally HMAC-signed. `agentledger verify` recomputes it.

CREATE TABLE IF NOT EXISTS ledger_checkpoints
(
    tenant          LowCardinality(String) COMMENT 'Tenant whose rows the checkpoint covers.',
    stream          LowCardinality(String) COMMENT 'Source stream: topic/partition, or embedded/0.',
    seq             UInt64 COMMENT 'Position in the stream chain, from 1.',
    first_offset    Int64 COMMENT 'First source offset covered.',
    last_offset     Int64 COMMENT 'Last source offset covered.',
    leaves          Array(String) CODEC(ZSTD(3)) COMMENT 'Sorted distinct row hashes of the covered rows.',
    leaf_spans      Array(String) CODEC(ZSTD(3)) COMMENT 'trace_id/span_id of each leaf, same order.',
    merkle_root     String COMMENT 'Merkle root over leaves (SHA-256, RFC 6962 style).',
    prev_hash       String COMMENT 'checkpoint_hash of the previous checkpoint of the stream.',
    checkpoint_hash String COMMENT 'SHA-256 over tenant, stream, seq, range, root and prev_hash.',
    signature       String COMMENT 'HMAC-SHA256 of checkpoint_hash with the ledger key, or empty.',
    key_id          String COMMENT 'Identifier of the signing key, or empty.',
    created_at      DateTime64(3, 'UTC') COMMENT 'When the checkpoint was appended.'
)
ENGINE = ReplacingMergeTree
ORDER BY (tenant, stream, seq)
SETTINGS non_replicated_deduplication_window = 10000;
