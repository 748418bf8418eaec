-- Feeds rum_cdn_1h (0053) from every insert into rum_cdn, by the hour, with
-- the same rows and expressions as rum_cdn_1m_mv (0041), which see.
CREATE MATERIALIZED VIEW IF NOT EXISTS {{.DB}}.rum_cdn_1h_mv
TO {{.Table "rum_cdn_1h"}}
AS SELECT
    toStartOfHour(ts) AS minute,
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
