-- Feeds rum_pageviews_1m (0022) from every insert into rum_pageviews, bots
-- left out. Absent timings (NULL) stay out of the quantiles through the If
-- combinator. Replays are counted again here: see 0022.
CREATE MATERIALIZED VIEW IF NOT EXISTS {{.DB}}.rum_pageviews_1m_mv
TO {{.Table "rum_pageviews_1m"}}
AS SELECT
    toStartOfMinute(ts) AS minute,
    site,
    country,
    countState() AS pageviews,
    quantilesIfState(0.5, 0.75, 0.9, 0.95, 0.99)(assumeNotNull(lcp_ms), isNotNull(lcp_ms)) AS lcp_q,
    quantilesIfState(0.5, 0.75, 0.9, 0.95, 0.99)(assumeNotNull(fcp_ms), isNotNull(fcp_ms)) AS fcp_q,
    quantilesIfState(0.5, 0.75, 0.9, 0.95, 0.99)(assumeNotNull(inp_ms), isNotNull(inp_ms)) AS inp_q,
    quantilesIfState(0.5, 0.75, 0.9, 0.95, 0.99)(assumeNotNull(ttfb_ms), isNotNull(ttfb_ms)) AS ttfb_q
FROM {{.Table "rum_pageviews"}}
WHERE is_bot = 0
GROUP BY minute, site, country
