-- latency-map: latency per country × CDN/member from RUM probe fetches and agent results: p50/p75/p95, samples, error rate
-- RUM: rum_cdn probe fetches (kind probe_*) of human page views (is_bot = 0),
-- member = cdn, failed when the fetch errored or answered 5xx. Synthetic:
-- agent results, member = cdn_member else check name, the agent's country
-- from agent_countries (bound arrays, as collector/steering/stats.sql),
-- failed when not ok; traceroute results are left out (a trace's total is
-- the time to walk the path, not a latency to the target). The latency is
-- TTFB, else the whole fetch (total).
-- Both tables are read through .Rows (query/rows.go): a replayed batch
-- counts once. Columns are CAST to String: 18.16 finds no common type for
-- LowCardinality(String) and String across UNION ALL.
SELECT {{.Group}}, samples, errors, round(errors / samples, 4) AS error_rate, q[1] AS p50_ms, q[2] AS p75_ms, q[3] AS p95_ms
FROM
(
    SELECT
        {{.Dims}},
        count() AS samples,
        countIf(failed = 1) AS errors,
        quantilesIf(0.5, 0.75, 0.95)(ms, failed = 0 AND ms >= 0) AS q
    FROM
    (
        SELECT
            ts,
            'rum' AS x_source,
            CAST(country AS String) AS x_country,
            CAST(cdn AS String) AS x_member,
            CAST(site AS String) AS x_site,
            CAST(device AS String) AS x_device,
            '' AS x_target,
            CAST(region AS String) AS x_region,
            toUInt8(error != 0 OR status >= 500) AS failed,
            ifNull(ttfb_ms, ifNull(duration_ms, -1)) AS ms
        FROM {{.Rows "rum_cdn"}}
        WHERE startsWith(kind, 'probe') AND is_bot = 0
        UNION ALL
        SELECT
            ts,
            'synthetic' AS x_source,
            {{.Country}} AS x_country,
            CAST(if(cdn_member != '', cdn_member, check_name) AS String) AS x_member,
            '' AS x_site,
            '' AS x_device,
            target AS x_target,
            CAST(region AS String) AS x_region,
            toUInt8(ok = 0) AS failed,
            ifNull(ttfb_ms, ifNull(total_ms, -1)) AS ms
        FROM {{.Rows "results"}}
        WHERE kind != 'traceroute'
    )
    WHERE 1{{.Where}}
    GROUP BY {{.Group}}
)
ORDER BY {{.Group}}
