-- shard-by: cityHash64(site, country)
-- Per-minute rollup of RUM probe fetches (rum_cdn kind probe_*, human page
-- views only) per country, CDN, site, device and region, filled by
-- rum_cdn_1m_mv (0041), for the latency map over long windows
-- (query/latency_map_1m.sql). Read with countMerge(samples),
-- countIfMerge(errors) and quantilesTimingIfMerge(0.5, 0.75, 0.95)(qt) (q until 0080). A fetch
-- failed when it errored or answered 5xx; its latency is TTFB, else the
-- whole fetch; q holds the latencies of fetches that did not fail.
--
-- Replays: a materialized view sees inserts, not merges, so a fetch inserted
-- twice (same page view) counts twice here, while rum_cdn folds it on merge
-- and FINAL. Browsers send a beacon once; a duplicate insert happens only
-- when the collector retries its own insert from its journal after
-- ClickHouse's acknowledgement was lost, so it is rare and bounded. Exact
-- figures: `meridian query latency-map --raw` reads rum_cdn FINAL. On a
-- cluster the view runs on each node, from its rum_cdn_local into its
-- rum_cdn_1m_local, and rum_cdn_1m (Distributed) merges the states.
CREATE TABLE IF NOT EXISTS {{.Table "rum_cdn_1m"}} (
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
