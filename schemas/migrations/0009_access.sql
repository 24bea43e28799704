-- 0009: access control. API keys and the access log are records (kind api_key and access) in the
-- insert-only `records` table of 0008; these are their typed views. A key is stored as the SHA-256
-- of its secret, never the secret; creating and revoking a key each append a record, and the
-- latest record per key name is the key as it stands (api_keys_latest_v). Every read of content
-- appends an access record; each writer chains its entries by prev_sha256.

CREATE VIEW IF NOT EXISTS api_keys_v AS
SELECT
    tenant,
    recorded_at,
    record_id,
    actor,
    body,
    body_sha256,
    record_id AS name,
    JSONExtractString(body, 'role') AS role,
    JSONExtractString(body, 'agent') AS agent,
    JSONExtractString(body, 'key_sha256') AS key_sha256,
    JSONExtractString(body, 'status') AS status,
    parseDateTime64BestEffortOrZero(JSONExtractString(body, 'created_at'), 6, 'UTC') AS created_at,
    parseDateTime64BestEffortOrZero(JSONExtractString(body, 'changed_at'), 6, 'UTC') AS changed_at
FROM records
WHERE kind = 'api_key';

CREATE VIEW IF NOT EXISTS access_log_v AS
SELECT
    tenant,
    recorded_at,
    record_id,
    actor,
    body,
    body_sha256,
    record_id AS access_id,
    parseDateTime64BestEffortOrZero(JSONExtractString(body, 'accessed_at'), 6, 'UTC') AS accessed_at,
    JSONExtractString(body, 'key_name') AS key_name,
    JSONExtractString(body, 'role') AS role,
    JSONExtractString(body, 'method') AS method,
    JSONExtractString(body, 'route') AS route,
    JSONExtract(body, 'object_ids', 'Array(String)') AS object_ids,
    JSONExtract(body, 'rows', 'UInt64') AS rows,
    JSONExtractString(body, 'prev_sha256') AS prev_sha256,
    JSONExtractString(body, 'writer') AS writer
FROM records
WHERE kind = 'access';

-- A control's `by` is now the name of the key that recorded it; what the client said asked is
-- its `note` (empty in records made before). The view gains the column.
DROP VIEW IF EXISTS controls_v;

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
    JSONExtractString(body, 'reason') AS reason,
    JSONExtractString(body, 'note') AS note
FROM records
WHERE kind = 'control';
