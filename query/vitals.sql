-- vitals: Core Web Vitals of human page views: LCP/INP/CLS/FCP/TTFB p75 and the share of "good" LCP, INP, CLS
-- Good: LCP ≤ 2500 ms, INP ≤ 200 ms, CLS ≤ 0.1, each among the page views
-- that measured it. ttfb is Navigation Timing's (ttfb_ms), as in the
-- rollup. .Rows (query/rows.go) counts a replayed beacon once.
SELECT
    {{.Group}}, pageviews,
    lcp_p75_ms, inp_p75_ms, cls_p75, fcp_p75_ms, ttfb_p75_ms,
    round(lcp_good / lcp_n, 4) AS lcp_good_share,
    round(inp_good / inp_n, 4) AS inp_good_share,
    round(cls_good / cls_n, 4) AS cls_good_share
FROM
(
    SELECT
        {{.Dims}},
        count() AS pageviews,
        quantileIf(0.75)(assumeNotNull(lcp_ms), isNotNull(lcp_ms)) AS lcp_p75_ms,
        quantileIf(0.75)(assumeNotNull(inp_ms), isNotNull(inp_ms)) AS inp_p75_ms,
        quantileIf(0.75)(assumeNotNull(cls), isNotNull(cls)) AS cls_p75,
        quantileIf(0.75)(assumeNotNull(fcp_ms), isNotNull(fcp_ms)) AS fcp_p75_ms,
        quantileIf(0.75)(assumeNotNull(ttfb_ms), isNotNull(ttfb_ms)) AS ttfb_p75_ms,
        countIf(isNotNull(lcp_ms)) AS lcp_n,
        countIf(isNotNull(lcp_ms) AND assumeNotNull(lcp_ms) <= 2500) AS lcp_good,
        countIf(isNotNull(inp_ms)) AS inp_n,
        countIf(isNotNull(inp_ms) AND assumeNotNull(inp_ms) <= 200) AS inp_good,
        countIf(isNotNull(cls)) AS cls_n,
        countIf(isNotNull(cls) AND assumeNotNull(cls) <= 0.1) AS cls_good
    FROM {{.Rows "rum_pageviews"}}
    WHERE is_bot = 0{{.Where}}
    GROUP BY {{.Group}}
)
ORDER BY {{.Group}}
