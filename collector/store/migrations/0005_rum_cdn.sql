-- Per-host and per-CDN timings from beacons, one row per hosts[] entry
-- (kind 'host': count, median duration, bytes, tao) and per active probe
-- fetch (kind 'probe_cold' / 'probe_warm': phases, duration, bytes or an
-- error). The page view's enrichment is copied so that steering can group
-- by country and ASN without a join. Same dedupe rule as rum_pageviews.
-- shard-by: cityHash64(pv)
CREATE TABLE IF NOT EXISTS {{.Table "rum_cdn"}} (
    ts              DateTime,
    site            LowCardinality(String),
    pv              String,
    country         LowCardinality(String),
    region          LowCardinality(String),
    asn             UInt32,
    browser         LowCardinality(String),
    device          LowCardinality(String),
    is_bot          UInt8,
    sample          Float64,

    kind            LowCardinality(String),
    cdn             LowCardinality(String),
    host            String,
    url             String,
    count           UInt32,
    duration_ms     Nullable(Float64),
    dns_ms          Nullable(Float64),
    connect_ms      Nullable(Float64),
    tls_ms          Nullable(Float64),
    ttfb_ms         Nullable(Float64),
    bytes           Nullable(Int64),
    tao             Nullable(UInt8),
    error           UInt8,
    status          UInt16,
    -- Added by migration 0051 to databases made before it; last, as an
    -- ALTER ADD COLUMN puts it, so new replicas match older ones.
    replay          UInt8 DEFAULT 0
) ENGINE = {{.Engine "ReplacingMergeTree"}}
PARTITION BY toDate(ts)
ORDER BY (site, pv, kind, cdn, host)
