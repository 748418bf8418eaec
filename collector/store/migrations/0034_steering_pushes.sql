-- Every push of a steering decision to a router (collector/steering,
-- push.go): one row per pool, router and push, whether it worked, after how
-- many attempts, the error if not, and a summary of what was sent (HAProxy
-- runtime commands, PowerDNS rrsets), so that `meridian steering show` can
-- say what each router last got. push is the push's time in Unix
-- nanoseconds; decision is the pushed decision's (steering_history's
-- decision). Retention drops old days.
-- shard-by: cityHash64(pool)
CREATE TABLE IF NOT EXISTS {{.Table "steering_pushes"}} (
    pushed_at   DateTime,
    push        UInt64,
    decision    UInt64,
    pool        LowCardinality(String),
    router      LowCardinality(String),
    kind        LowCardinality(String),
    target      String,
    ok          UInt8,
    attempts    UInt8,
    error       String,
    sent        String
) ENGINE = {{.Engine "MergeTree"}}
PARTITION BY toDate(pushed_at)
ORDER BY (pool, router, push)
