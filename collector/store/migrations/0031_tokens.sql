-- Tokens that are not agents': `meridian tokens add NAME --role R`, for
-- readers of the steering feed (role steering-reader). Stored as SHA-256
-- hashes like agents' tokens; a change inserts a row with a higher version,
-- read back with FINAL.
-- shard-by: cityHash64(name)
CREATE TABLE IF NOT EXISTS {{.Table "tokens"}} (
    name          String,
    role          LowCardinality(String),
    token_sha256  String,
    created_at    DateTime,
    disabled      UInt8,
    version       UInt64
) ENGINE = {{.Engine "ReplacingMergeTree(version)"}}
ORDER BY name
