-- 0019: a random key per tenant for the subject hash an erasure record keeps (issue 16, item 7).
-- An erasure leaf must not let an outsider holding a proof confirm a guess of who was erased: a
-- user id is short, so its plain SHA-256 would. The record keeps HMAC-SHA256(key, value) instead;
-- the key stays in the store (an admin can still ask "was u-42 erased?"), never in a leaf or proof.
-- Insert-only: the first row of a tenant (earliest created_at, then key) is its key for good.

CREATE TABLE IF NOT EXISTS erasure_keys
(
    tenant     LowCardinality(String) COMMENT 'Tenant the key belongs to.',
    key_hex    String COMMENT '32 random bytes, hex; the first row of a tenant is the one in use.',
    created_at DateTime64(6, 'UTC') COMMENT 'When it was made.'
)
ENGINE = MergeTree
ORDER BY (tenant, created_at, key_hex)
SETTINGS non_replicated_deduplication_window = 10000;
