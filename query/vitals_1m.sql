-- vitals rollup: vitals over the per-minute rollup rum_pageviews_1m (by site
-- and country only), for long windows: whole minutes, a replayed beacon
-- counts again, and the rollup keeps no CLS and no "good" counts, so those
-- columns are empty (NULL). quantiles: p50/p75/p90/p95/p99.
SELECT
    {{.Group}}, pv_n AS pageviews,
    lcp[2] AS lcp_p75_ms, inp[2] AS inp_p75_ms, CAST(NULL AS Nullable(Float64)) AS cls_p75,
    fcp[2] AS fcp_p75_ms, ttfb[2] AS ttfb_p75_ms,
    CAST(NULL AS Nullable(Float64)) AS lcp_good_share,
    CAST(NULL AS Nullable(Float64)) AS inp_good_share,
    CAST(NULL AS Nullable(Float64)) AS cls_good_share
FROM
(
    SELECT
        {{.Dims}},
        countMerge(pageviews) AS pv_n,
        quantilesIfMerge(0.5, 0.75, 0.9, 0.95, 0.99)(lcp_q) AS lcp,
        quantilesIfMerge(0.5, 0.75, 0.9, 0.95, 0.99)(inp_q) AS inp,
        quantilesIfMerge(0.5, 0.75, 0.9, 0.95, 0.99)(fcp_q) AS fcp,
        quantilesIfMerge(0.5, 0.75, 0.9, 0.95, 0.99)(ttfb_q) AS ttfb
    FROM rum_pageviews_1m
    WHERE minute >= {{.From}} AND minute <= {{.To}}{{.Where}}
    GROUP BY {{.Group}}
)
ORDER BY {{.Group}}
