-- The ISO 3166 country each agent measures from (`meridian agents add NAME
-- --country BR`), so its results count in that country's steering scope.
-- Apart from agents so that no ALTER is needed (18.16 has no ADD COLUMN IF
-- NOT EXISTS, and a cluster's Distributed table would need it twice); a
-- change inserts a row with a higher version, read back with FINAL.
-- shard-by: cityHash64(agent)
CREATE TABLE IF NOT EXISTS {{.Table "agent_countries"}} (
    agent       String,
    country     LowCardinality(String),
    version     UInt64
) ENGINE = {{.Engine "ReplacingMergeTree(version)"}}
ORDER BY agent
