-- 0014: spans lost in the agent, per agent and hour. Agents report the spans they had to drop as
-- `agentledger.spans_lost` spans (instrumentation/losses.py); the usage rollup sums their
-- `agentledger.spans_lost.count` into spans_lost instead of counting them as calls. Hours rolled up
-- before this migration counted any such report as a call: the migration's data step replaces their
-- state row by one that matches no fingerprint, so the next rollup pass recomputes those hours.

ALTER TABLE usage_hourly ADD COLUMN IF NOT EXISTS spans_lost UInt64 DEFAULT 0 COMMENT 'Spans the agents reported lost before they reached the collector (not calls).' AFTER latency_ms_hist;
