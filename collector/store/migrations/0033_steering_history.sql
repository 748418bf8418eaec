-- Every published steering decision, one row per pool, scope and member,
-- with the figures behind the weight and the engine's memory of the member
-- (engine_state: steering.MemberState as JSON: smoothed score, streaks),
-- so that `meridian steering
-- show|explain` and GET /v1/steering read the last decision, and an engine
-- that restarts (or moves to another machine) continues from it without a
-- jump. decision is the decision's time in Unix nanoseconds: all rows of
-- one decision share it. Retention drops old days (group steering).
-- shard-by: cityHash64(pool)
CREATE TABLE IF NOT EXISTS {{.Table "steering_history"}} (
    computed_at        DateTime,
    decision           UInt64,
    pool               LowCardinality(String),
    dns_name           String,
    ttl                UInt32,
    policy_version     UInt64,
    scope              String,
    fallback           Array(String),
    figures_from       String,
    rule               LowCardinality(String),
    changed            UInt8,
    scope_changed_at   DateTime,
    member_index       UInt16,
    member             LowCardinality(String),
    weight             UInt8,
    state              LowCardinality(String),
    score_ms           Nullable(Float64),
    raw_ms             Nullable(Float64),
    q_ms               Nullable(Float64),
    error_rate         Float64,
    samples            UInt64,
    rum_samples        UInt64,
    synthetic_samples  UInt64,
    reason             String,
    engine_state       String
) ENGINE = {{.Engine "MergeTree"}}
PARTITION BY toDate(computed_at)
ORDER BY (pool, decision, scope, member)
