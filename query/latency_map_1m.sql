-- latency-map rollup: the latency map over the rollups of rum_cdn and results per member (per minute, and per hour for whole hours)
-- (collector/store/migrations/0040-0043, 0053-0056; query/rollup.go), for long windows: cheap, but the
-- window is whole minutes and a replayed row (same page view or result id)
-- counts again (the rollups' materialized views see inserts, not merges);
-- latency_map.sql reads the raw tables, each row once, and is exact. Same columns and
-- rules as the raw form: the agent's country by transform() over bound
-- arrays, member = cdn_member else check name, quantiles p50/p75/p95 from
-- timing histograms (migration 0080: the nearest whole millisecond below
-- 1,024 ms, 16 ms steps above, capped at 30 s; rows stored before 0080 have
-- none, so read windows before an upgrade with --raw). The
-- states of both sides are the same types, so they are merged after the
-- UNION ALL; columns are CAST to String as in the raw form (18.16).
SELECT {{.Group}}, n_samples AS samples, n_errors AS errors, round(n_errors / n_samples, 4) AS error_rate, toFloat64(lat[1]) AS p50_ms, toFloat64(lat[2]) AS p75_ms, toFloat64(lat[3]) AS p95_ms
FROM
(
    SELECT
        {{.Dims}},
        countMerge(samples) AS n_samples,
        countIfMerge(errors) AS n_errors,
        quantilesTimingIfMerge(0.5, 0.75, 0.95)(qt) AS lat
    FROM
    (
        SELECT
            minute,
            'rum' AS x_source,
            CAST(country AS String) AS x_country,
            CAST(cdn AS String) AS x_member,
            CAST(site AS String) AS x_site,
            CAST(device AS String) AS x_device,
            '' AS x_target,
            CAST(region AS String) AS x_region,
            samples, errors, qt
        FROM {{.Tiered "rum_cdn"}}
        UNION ALL
        SELECT
            minute,
            'synthetic' AS x_source,
            {{.Country}} AS x_country,
            CAST(member AS String) AS x_member,
            '' AS x_site,
            '' AS x_device,
            target AS x_target,
            CAST(region AS String) AS x_region,
            samples, errors, qt
        FROM {{.Tiered "results_member"}}
    )
    WHERE 1{{.Where}}
    GROUP BY {{.Group}}
)
ORDER BY {{.Group}}
