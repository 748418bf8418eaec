-- One row per beacon (rum-js/BEACON.md), enriched by the collector. The
-- client IP is never stored. Absent timings are NULL, never 0. ts is when the
-- collector received the beacon; a replay of the same page view (same pv)
-- folds into one row on merge, and queries read with FINAL. Bots are stored
-- with is_bot = 1 so nothing is lost; queries filter them out.
-- shard-by: cityHash64(pv)
CREATE TABLE IF NOT EXISTS {{.Table "rum_pageviews"}} (
    ts                  DateTime,
    ts_ms               UInt16,
    site                LowCardinality(String),
    pv                  String,
    url                 String,
    ref_host            String,

    country             LowCardinality(String),
    region              LowCardinality(String),
    city                String,
    asn                 UInt32,
    as_org              String,
    browser             LowCardinality(String),
    browser_version     LowCardinality(String),
    os                  LowCardinality(String),
    device              LowCardinality(String),
    is_bot              UInt8,
    webdriver           UInt8,
    sample              Float64,

    nav_type            LowCardinality(String),
    redirect_ms         Nullable(Float64),
    dns_ms              Nullable(Float64),
    connect_ms          Nullable(Float64),
    tls_ms              Nullable(Float64),
    ttfb_ms             Nullable(Float64),
    response_ms         Nullable(Float64),
    dom_interactive_ms  Nullable(Float64),
    dom_complete_ms     Nullable(Float64),
    load_ms             Nullable(Float64),
    protocol            LowCardinality(String),
    transfer_bytes      Nullable(Int64),
    delivery_type       LowCardinality(String),

    fcp_ms              Nullable(Float64),
    lcp_ms              Nullable(Float64),
    inp_ms              Nullable(Float64),
    cls                 Nullable(Float64),
    vitals_ttfb_ms      Nullable(Float64),

    effective_type      LowCardinality(String),
    rtt_ms              Nullable(Float64),

    server_timing_name  Array(String),
    server_timing_dur   Array(Float64),
    server_timing_has_dur Array(UInt8),
    server_timing_desc  Array(String),

    received_at         DateTime,
    -- Added by migration 0052 to databases made before it; last, as
    -- an ALTER ADD COLUMN puts it, so new replicas match older ones.
    replay              UInt8 DEFAULT 0
) ENGINE = {{.Engine "ReplacingMergeTree"}}
PARTITION BY toDate(ts)
ORDER BY (site, pv)
