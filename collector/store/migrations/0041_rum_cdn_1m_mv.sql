-- Feeds rum_cdn_1m (0040) from every insert into rum_cdn: probe fetches
-- (kind probe_*) of human page views (is_bot = 0). failed = error != 0 OR
-- status >= 500; ms = ttfb_ms, else duration_ms, else -1 (none); q takes
-- ms of fetches that did not fail and have one. The expressions are
-- repeated rather than named in a subquery: 18.16 and current servers
-- accept this form alike. Replays are counted again here: see 0040.
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
    quantilesIfState(0.5, 0.75, 0.95)(ifNull(ttfb_ms, ifNull(duration_ms, -1)),
        toUInt8(error = 0 AND status < 500 AND ifNull(ttfb_ms, ifNull(duration_ms, -1)) >= 0)) AS q
FROM {{.Table "rum_cdn"}}
WHERE startsWith(kind, 'probe') AND is_bot = 0
GROUP BY minute, country, cdn, site, device, region
