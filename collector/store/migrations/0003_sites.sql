-- RUM sites: the public site key a page's beacon carries, the origins its
-- beacons may come from, and the snippet's settings. A change inserts a row
-- with a higher version, read back with FINAL.
-- shard-by: cityHash64(name)
CREATE TABLE IF NOT EXISTS {{.Table "sites"}} (
    name          String,
    site_key      String,
    origins       Array(String),
    sample        Float64,
    respect_gpc   UInt8,
    cdns          String,
    created_at    DateTime,
    version       UInt64
) ENGINE = {{.Engine "ReplacingMergeTree(version)"}}
ORDER BY name
