-- 0013: every span names the API key that sent it. The collector stamps the key's name on each row
-- after normalization (never from the request); like the ingest time it is delivery bookkeeping,
-- not content: it is left out of the ledger's row hash and of the insert-only re-send check, so a
-- span re-sent by another key is still the same span. Spans stored before hold ''.

ALTER TABLE spans ADD COLUMN IF NOT EXISTS sent_by LowCardinality(String) DEFAULT '' COMMENT 'Name of the API key that sent the span (api without keys).';

ALTER TABLE span_conflicts ADD COLUMN IF NOT EXISTS sent_by LowCardinality(String) DEFAULT '' COMMENT 'Name of the API key that sent the conflicting version.';
