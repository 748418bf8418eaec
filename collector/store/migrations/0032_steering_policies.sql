-- The steering policy (collector/steering): the YAML document `meridian
-- steering policy set --file` validated and stored. A change inserts a new
-- row with a higher version; the engine reads the latest.
-- shard-by: version
CREATE TABLE IF NOT EXISTS {{.Table "steering_policies"}} (
    version     UInt64,
    yaml        String,
    updated_at  DateTime
) ENGINE = {{.Engine "ReplacingMergeTree"}}
ORDER BY version
