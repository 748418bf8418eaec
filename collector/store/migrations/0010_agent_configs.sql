-- Remote checks per agent: the YAML document GET /v1/agent/config serves
-- (a mapping with one key, checks:). A change inserts a new row with a
-- higher version, read back with FINAL; an empty yaml means "no remote
-- config" (`meridian agents config rm`).
-- shard-by: cityHash64(agent)
CREATE TABLE IF NOT EXISTS {{.Table "agent_configs"}} (
    agent       String,
    yaml        String,
    version     UInt64,
    updated_at  DateTime
) ENGINE = {{.Engine "ReplacingMergeTree(version)"}}
ORDER BY agent
