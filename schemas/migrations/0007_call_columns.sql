-- 0007: the canonical LLM call, computed once by the normalizer (agentledger.schemas.calls).
-- Audit, replay and datasets read these columns instead of decoding each convention's
-- attributes again. Rows stored before this migration read them empty: the row hash of
-- the ledger leaves them out while they are empty, so checkpoints taken before still verify.

ALTER TABLE spans
    ADD COLUMN IF NOT EXISTS request_params String CODEC(ZSTD(3)) COMMENT 'Request parameters as canonical JSON, canonical names (schemas.calls); empty if none.' AFTER system_prompt_hash,
    ADD COLUMN IF NOT EXISTS tools_hash String COMMENT 'Content hash of the canonical list of tools offered.' AFTER request_params,
    ADD COLUMN IF NOT EXISTS finish_reasons Array(String) COMMENT 'Why the model stopped, one per choice.' AFTER tools_hash,
    ADD COLUMN IF NOT EXISTS request_hash String COMMENT 'schemas.calls.request_hash of the call; empty if no input.' AFTER finish_reasons,
    ADD COLUMN IF NOT EXISTS raw_request_hash String COMMENT 'Content hash of the request as recorded verbatim.' AFTER request_hash;
