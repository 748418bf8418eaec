-- shard-by: cityHash64(site, country)
-- Per-hour rollup of RUM probe fetches: rum_cdn_1m (0040) by the hour, for
-- the latency map over a day or more (query/rollup.go reads whole hours
-- here and the window's ragged ends from rum_cdn_1m). minute holds the
-- hour's start, so both tiers have the same columns. Filled by
-- rum_cdn_1h_mv (0054) from the raw table, as rum_cdn_1m is; replays
-- count again, as there.
CREATE TABLE IF NOT EXISTS {{.Table "rum_cdn_1h"}} (
    minute      DateTime,
    country     LowCardinality(String),
    cdn         LowCardinality(String),
    site        LowCardinality(String),
    device      LowCardinality(String),
    region      LowCardinality(String),
    samples     AggregateFunction(count),
    errors      AggregateFunction(countIf, UInt8),
    q           AggregateFunction(quantilesIf(0.5, 0.75, 0.95), Float64, UInt8),
    -- Added by a later migration (0081-0090) to tables made before it, last
    -- as ALTER ADD COLUMN puts it; q is no longer filled (see there).
    qt          AggregateFunction(quantilesTimingIf(0.5, 0.75, 0.95), Float64, UInt8)
) ENGINE = {{.Engine "AggregatingMergeTree"}}
PARTITION BY toDate(minute)
ORDER BY (site, country, cdn, device, region, minute)
