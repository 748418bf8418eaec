-- Agents and their hashed tokens. A row is never updated in place: a change
-- inserts a new row with a higher version, read back with FINAL.
-- shard-by: cityHash64(name)
CREATE TABLE IF NOT EXISTS {{.Table "agents"}} (
    name          String,
    region        String,
    token_sha256  String,
    created_at    DateTime,
    disabled      UInt8,
    version       UInt64
) ENGINE = {{.Engine "ReplacingMergeTree(version)"}}
ORDER BY name
