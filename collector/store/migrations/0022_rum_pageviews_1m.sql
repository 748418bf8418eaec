-- shard-by: cityHash64(site, country)
-- Per-minute rollup of human page views (is_bot = 0) per site and country,
-- filled by rum_pageviews_1m_mv (0023): page views and Core Web Vitals
-- quantile states (p75 is the Web Vitals convention). Read with countMerge
-- and quantilesIfMerge(0.5, 0.75, 0.9, 0.95, 0.99). ttfb is the Navigation
-- Timing TTFB (rum_pageviews.ttfb_ms).
--
-- Replays: the view sees inserts, not merges, so a page view inserted twice
-- (same pv) counts twice here while rum_pageviews folds it on merge and
-- FINAL. Browsers send a beacon once; a duplicate insert happens only when
-- the collector's own insert is retried from its spool after an
-- acknowledgement from ClickHouse was lost, so it is rare and bounded.
CREATE TABLE IF NOT EXISTS {{.Table "rum_pageviews_1m"}} (
    minute      DateTime,
    site        LowCardinality(String),
    country     LowCardinality(String),
    pageviews   AggregateFunction(count),
    lcp_q       AggregateFunction(quantilesIf(0.5, 0.75, 0.9, 0.95, 0.99), Float64, UInt8),
    fcp_q       AggregateFunction(quantilesIf(0.5, 0.75, 0.9, 0.95, 0.99), Float64, UInt8),
    inp_q       AggregateFunction(quantilesIf(0.5, 0.75, 0.9, 0.95, 0.99), Float64, UInt8),
    ttfb_q      AggregateFunction(quantilesIf(0.5, 0.75, 0.9, 0.95, 0.99), Float64, UInt8)
) ENGINE = {{.Engine "AggregatingMergeTree"}}
PARTITION BY toDate(minute)
ORDER BY (site, country, minute)
