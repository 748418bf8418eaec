-- Feeds rum_cdn_1m (0040) from every insert into rum_cdn, as
-- 0041 did, with the latencies in qt, a timing histogram (0080): q, the
-- old exact-sample state, is filled empty (18.16 makes a view fill every
-- column of its target, and has no DROP COLUMN IF EXISTS to drop it on
-- each replica). Rows, failure and latency rules: see 0041.
CREATE MATERIALIZED VIEW IF NOT EXISTS {{.DB}}.rum_cdn_1m_mv
TO {{.Table "rum_cdn_1m"}}
AS SELECT
    toStartOfMinute(ts) AS minute,
    country,
    cdn,
    site,
    device,
    region,
    countState() AS samples,
    countIfState(toUInt8(error != 0 OR status >= 500)) AS errors,
    quantilesIfState(0.5, 0.75, 0.95)(toFloat64(0), toUInt8(0)) AS q,
    quantilesTimingIfState(0.5, 0.75, 0.95)(ifNull(ttfb_ms, ifNull(duration_ms, -1)),
        toUInt8(error = 0 AND status < 500 AND ifNull(ttfb_ms, ifNull(duration_ms, -1)) >= 0)) AS qt
FROM {{.Table "rum_cdn"}}
WHERE startsWith(kind, 'probe') AND is_bot = 0
GROUP BY minute, country, cdn, site, device, region
