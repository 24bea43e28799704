-- 0011: operators' actions on anomalies. Acknowledging, muting, unmuting and labelling an anomaly
-- (true or false alarm) each append a record of kind anomaly_label to the insert-only `records`
-- table of 0008; this is its typed view. The state of an anomaly is computed from the log: acked
-- once acked, its label the latest label, and a mute (keyed by the anomaly's type and dimensions,
-- so that later anomalies of the same signature are muted too) the latest mute or unmute of its
-- key, until its end. See agentledger/pipeline/derive/labels.py.

CREATE VIEW IF NOT EXISTS anomaly_labels_v AS
SELECT
    tenant,
    recorded_at,
    record_id,
    actor,
    body,
    body_sha256,
    record_id AS action_id,
    JSONExtractString(body, 'anomaly_id') AS anomaly_id,
    JSONExtractString(body, 'action') AS action,
    JSONExtractString(body, 'label') AS label,
    JSONExtractString(body, 'mute_key') AS mute_key,
    parseDateTime64BestEffortOrZero(JSONExtractString(body, 'until'), 6, 'UTC') AS until,
    JSONExtractString(body, 'note') AS note,
    parseDateTime64BestEffortOrZero(JSONExtractString(body, 'created_at'), 6, 'UTC') AS created_at
FROM records
WHERE kind = 'anomaly_label';
