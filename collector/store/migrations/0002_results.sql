-- One row per probe result (internal/result.Result). Absent phases are NULL,
-- never 0. Retries carry the same id; ReplacingMergeTree folds them on merge,
-- and a copy stored again is marked replay = 1 (0050), so queries count
-- each result once (query/rows.go).
-- shard-by: cityHash64(id)
CREATE TABLE IF NOT EXISTS {{.Table "results"}} (
    ts              DateTime,
    ts_ms           UInt16,
    id              String,
    agent           LowCardinality(String),
    region          LowCardinality(String),
    check_name      LowCardinality(String),
    kind            LowCardinality(String),
    target          String,
    ok              UInt8,
    error           LowCardinality(String),
    error_message   String,

    dns_ms          Nullable(Float64),
    connect_ms      Nullable(Float64),
    tls_ms          Nullable(Float64),
    ttfb_ms         Nullable(Float64),
    transfer_ms     Nullable(Float64),
    total_ms        Nullable(Float64),

    url             String,
    http_status     UInt16,
    http_proto      LowCardinality(String),
    http_bytes      Nullable(Int64),
    remote_ip       String,
    conn_reused     Nullable(UInt8),
    dns_source      LowCardinality(String),
    redirect_hop    UInt8,
    location        String,
    cdn             LowCardinality(String),
    cdn_member      LowCardinality(String),
    cdn_pop         LowCardinality(String),
    cdn_cache       LowCardinality(String),

    tls_version     LowCardinality(String),
    tls_cipher      LowCardinality(String),
    tls_alpn        LowCardinality(String),
    tls_sni         String,
    cert_subject    String,
    cert_issuer     String,
    cert_sans       Array(String),
    cert_not_after  Nullable(DateTime),
    cert_days_left  Nullable(Float64),
    cert_sha256     String,
    ocsp_stapled    Nullable(UInt8),
    trust_store     Array(String),
    trust_valid     Array(UInt8),
    trust_error     Array(String),

    resolver        String,
    qtype           LowCardinality(String),
    rcode           LowCardinality(String),
    answers         Array(String),
    ttl             Nullable(UInt32),
    dns_transport   LowCardinality(String),

    ping_sent       UInt16,
    ping_received   UInt16,
    ping_dups       UInt16,
    ping_loss_pct   Nullable(Float64),
    ping_min_ms     Nullable(Float64),
    ping_avg_ms     Nullable(Float64),
    ping_max_ms     Nullable(Float64),
    ping_stddev_ms  Nullable(Float64),

    fcp_ms          Nullable(Float64),
    lcp_ms          Nullable(Float64),
    cls             Nullable(Float64),
    tbt_ms          Nullable(Float64),
    dom_content_loaded_ms Nullable(Float64),
    load_ms         Nullable(Float64),
    resources       UInt32,
    page_bytes      UInt64,
    console_errors  UInt32,
    -- Per-host breakdown of a browser load (result.Browser.Hosts): parallel
    -- arrays, one element per host, most bytes first; the last may be
    -- "(other)". Arrays cannot hold Nullable: bh_max_ms is -1 where the
    -- slowest request's time is absent.
    bh_host         Array(String),
    bh_cdn          Array(String),
    bh_cdn_pop      Array(String),
    bh_requests     Array(UInt32),
    bh_failed       Array(UInt32),
    bh_cache_hits   Array(UInt32),
    bh_bytes        Array(UInt64),
    bh_max_ms       Array(Float64),

    cpu_steal_pct   Nullable(Float64),
    clock_synced    Nullable(UInt8),
    clock_offset_ms Nullable(Float64),

    received_at     DateTime,
    -- Added by migration 0050 to databases made before it; last, as
    -- an ALTER ADD COLUMN puts it, so new replicas match older ones.
    replay          UInt8 DEFAULT 0,
    -- Added by migrations 0060 onwards, in their order (see 0050's note).
    throughput_bps  Nullable(Float64),
    alt_svc         String,
    -- A traceroute's path (0062-0076): hop_* are parallel arrays, one
    -- element per TTL; -1 in hop_*_ms where no reply came.
    trace_proto     LowCardinality(String),
    trace_port      UInt16,
    trace_reached   UInt8,
    hop_ttl         Array(UInt8),
    hop_addr        Array(String),
    hop_name        Array(String),
    hop_asn         Array(UInt32),
    hop_org         Array(String),
    hop_sent        Array(UInt16),
    hop_received    Array(UInt16),
    hop_loss_pct    Array(Float64),
    hop_min_ms      Array(Float64),
    hop_avg_ms      Array(Float64),
    hop_max_ms      Array(Float64),
    hop_stddev_ms   Array(Float64)
) ENGINE = {{.Engine "ReplacingMergeTree"}}
PARTITION BY toDate(ts)
ORDER BY (check_name, agent, ts, id)
