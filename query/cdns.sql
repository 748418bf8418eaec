-- cdns: CDN comparison per country from agent results: POPs seen, cache-hit share, p75 TTFB, error rate
-- Results whose response a CDN served (cdn detected). hit_share is hits
-- among results that reported a cache status. .Rows (query/rows.go) counts a replayed result once.
SELECT {{.Group}}, samples, errors, round(errors / samples, 4) AS error_rate, pops, round(hits / cached, 4) AS hit_share, ttfb_p75_ms
FROM
(
    SELECT
        {{.Dims}},
        count() AS samples,
        countIf(ok = 0) AS errors,
        arrayStringConcat(arraySort(groupUniqArray(CAST(cdn_pop AS String))), ' ') AS pops,
        countIf(cdn_cache = 'hit') AS hits,
        countIf(cdn_cache != '') AS cached,
        quantileIf(0.75)(assumeNotNull(ttfb_ms), ok = 1 AND isNotNull(ttfb_ms)) AS ttfb_p75_ms
    FROM {{.Rows "results"}}
    WHERE cdn != ''{{.Where}}
    GROUP BY {{.Group}}
)
ORDER BY {{.Group}}
