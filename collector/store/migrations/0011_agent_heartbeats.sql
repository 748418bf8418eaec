-- What each agent says about itself every 30s (POST /v1/agent/heartbeat).
-- ts is the collector's clock, not the agent's. Retention: drop old
-- partitions.
-- shard-by: cityHash64(agent)
CREATE TABLE IF NOT EXISTS {{.Table "agent_heartbeats"}} (
    agent           String,
    ts              DateTime,
    version         String,
    uptime_s        UInt64,
    spool_results   UInt64,
    spool_bytes     UInt64,
    last_error      String,
    config_version  UInt64,
    checks          UInt32
) ENGINE = {{.Engine "MergeTree"}}
PARTITION BY toDate(ts)
ORDER BY (agent, ts)
