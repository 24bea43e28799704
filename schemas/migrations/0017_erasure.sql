-- 0017: erasure and retention expiry in the record log (issue 16, items 6 and 7). An erasure
-- (GDPR art. 17) physically deletes a subject's content records and every copy of their text, then
-- appends a record of kind erasure to the insert-only `records` table of 0008: who (the key's
-- name), when, why, the SHA-256 of the subject's value and the hashes it erased. The retention job
-- appends a record of kind retention_expiry for each pass that pruned spans past a tenant's
-- retention. Both are ledger leaves, so `agentledger ledger verify` tells a content or span that
-- was erased or pruned on record from one deleted behind the ledger's back. These are their
-- typed views (agentledger/schemas/records.py, BODY_FIELDS).

CREATE VIEW IF NOT EXISTS erasures_v AS
SELECT
    tenant,
    recorded_at,
    record_id,
    actor,
    body,
    body_sha256,
    record_id AS erasure_id,
    JSONExtractString(body, 'subject_attribute') AS subject_attribute,
    JSONExtractString(body, 'subject_sha256') AS subject_sha256,
    JSONExtractString(body, 'reason') AS reason,
    JSONExtract(body, 'contents', 'UInt64') AS contents,
    JSONExtract(body, 'content_sha256', 'Array(String)') AS content_sha256
FROM records
WHERE kind = 'erasure';

CREATE VIEW IF NOT EXISTS retention_expiries_v AS
SELECT
    tenant,
    recorded_at,
    record_id,
    actor,
    body,
    body_sha256,
    record_id AS expiry_id,
    JSONExtract(body, 'retention_days', 'UInt32') AS retention_days,
    parseDateTime64BestEffortOrZero(JSONExtractString(body, 'cutoff'), 6, 'UTC') AS cutoff,
    JSONExtract(body, 'spans', 'UInt64') AS spans,
    JSONExtract(body, 'contents', 'UInt64') AS contents
FROM records
WHERE kind = 'retention_expiry';
