-- 0002: governed tool calls and run controls.
-- intents: one row per governed tool call, stored before the tool body runs. A call
-- parked by a pause re-asks with the same intent id and a higher attempt; the row
-- with the highest attempt is kept (ReplacingMergeTree(attempt), read with FINAL).
-- intent_outcomes: what the tool returned or raised, recorded against the intent.
-- controls: pause and resume events (who, why); the latest event per scope and
-- target decides whether runs there are paused.
-- intents and intent_outcomes keep no insert-deduplication window (set to 0 explicitly):
-- each ask is a one-row insert on the agent's critical path (the window's bookkeeping
-- costs about a third of it embedded), and a redelivered row has the same sorting key,
-- so it collapses on merge and FINAL reads it once.

CREATE TABLE IF NOT EXISTS intents
(
    tenant             LowCardinality(String) COMMENT 'Tenant, stamped by the collector from the API key.',
    requested_at       DateTime64(6, 'UTC') COMMENT 'When the agent first asked to run the tool (same for every re-ask).',
    intent_id          String COMMENT 'Intent id chosen by the agent, 32 lowercase hex digits.',
    attempt            UInt32 COMMENT 'Ask number, 0 first; a parked call re-asks with attempt + 1.',
    received_at        DateTime64(6, 'UTC') COMMENT 'When the collector acknowledged this ask.',
    decision           LowCardinality(String) COMMENT 'proceed or paused, as answered to this ask.',
    control_id         String COMMENT 'Pause control that held the call; empty when none.',
    tool_name          LowCardinality(String) COMMENT 'Name of the governed tool.',
    tool_call_id       String COMMENT 'Tool call id the model chose, when known.',
    arguments          String CODEC(ZSTD(3)) COMMENT 'Canonical JSON of the arguments as sent (redacted if arguments_redacted).',
    arguments_sha256   String COMMENT 'SHA-256 of the canonical JSON of the arguments the tool received.',
    arguments_redacted Bool COMMENT 'True when arguments were redacted or not captured before leaving the agent.',
    trace_id           String COMMENT 'Trace id of the run, 32 lowercase hex digits.',
    span_id            String COMMENT 'Span id of the governed tool span.',
    parent_span_id     String COMMENT 'Span that chose the call (the LLM span when known, else the span current at the call).',
    principal_id       String COMMENT 'Named principal the agent acted for; empty if unattributed.',
    principal_name     String COMMENT 'Display name of the principal.',
    principal_role     String COMMENT 'Role of the principal.',
    principal_chain    Array(String) COMMENT 'Delegation chain, outermost first.',
    policy_id          String COMMENT 'Policy the call ran under.',
    agent_name         LowCardinality(String) COMMENT 'Agent that asked.',
    session_id         String COMMENT 'Session or conversation id.',
    user_id            String COMMENT 'End-user id.',
    INDEX idx_intent_id intent_id TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_trace_id trace_id TYPE bloom_filter(0.001) GRANULARITY 1
)
ENGINE = ReplacingMergeTree(attempt)
PARTITION BY toYYYYMM(requested_at)
ORDER BY (tenant, toDate(requested_at), intent_id)
SETTINGS non_replicated_deduplication_window = 0;

CREATE TABLE IF NOT EXISTS intent_outcomes
(
    tenant        LowCardinality(String) COMMENT 'Tenant, stamped by the collector from the API key.',
    finished_at   DateTime64(6, 'UTC') COMMENT 'When the tool finished (or gave up waiting).',
    intent_id     String COMMENT 'Intent the outcome belongs to.',
    status        LowCardinality(String) COMMENT 'ok, error or not_run (paused past its limit, cancelled).',
    result        String CODEC(ZSTD(3)) COMMENT 'Canonical JSON of the result; empty when not captured.',
    result_sha256 String COMMENT 'SHA-256 of the canonical JSON of the result.',
    error_type    String COMMENT 'Exception class, when the tool raised or did not run.',
    error_message String CODEC(ZSTD(3)) COMMENT 'Exception message.',
    duration_ms   Float64 COMMENT 'Time the tool body ran, milliseconds.',
    paused_ms     Float64 COMMENT 'Time the call waited parked before it ran, milliseconds.',
    received_at   DateTime64(6, 'UTC') COMMENT 'When the collector received the outcome.',
    INDEX idx_intent_id intent_id TYPE bloom_filter(0.001) GRANULARITY 1
)
ENGINE = ReplacingMergeTree(received_at)
PARTITION BY toYYYYMM(finished_at)
ORDER BY (tenant, toDate(finished_at), intent_id)
SETTINGS non_replicated_deduplication_window = 0;

CREATE TABLE IF NOT EXISTS controls
(
    tenant     LowCardinality(String) COMMENT 'Tenant the control applies to (from the API key).',
    created_at DateTime64(6, 'UTC') COMMENT 'When the collector recorded the control.',
    control_id String COMMENT 'Control id, 32 lowercase hex digits.',
    action     LowCardinality(String) COMMENT 'pause or resume.',
    scope      LowCardinality(String) COMMENT 'trace, session, agent or principal.',
    target     String COMMENT 'Trace id, session id, agent name or principal id.',
    by         String COMMENT 'Who asked for it.',
    reason     String CODEC(ZSTD(3)) COMMENT 'Why.'
)
ENGINE = ReplacingMergeTree
ORDER BY (tenant, created_at, control_id)
SETTINGS non_replicated_deduplication_window = 10000;
