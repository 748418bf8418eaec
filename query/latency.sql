-- latency: total-time quantiles (p50/p95/p99) and failures of agent results per group
-- Successful results with a total time are in the quantiles; n counts every
-- result. .Rows (query/rows.go) counts a replayed result (same id) once.
-- Grouping expressions are whitelisted (query/registry.go); values are bound.
SELECT {{.Group}}, n, failed, q[1] AS p50_ms, q[2] AS p95_ms, q[3] AS p99_ms
FROM
(
    SELECT
        {{.Dims}},
        count() AS n,
        countIf(ok = 0) AS failed,
        quantilesIf(0.5, 0.95, 0.99)(assumeNotNull(total_ms), ok = 1 AND isNotNull(total_ms)) AS q
    FROM {{.Rows "results"}}
    WHERE 1{{.Where}}
    GROUP BY {{.Group}}
)
ORDER BY {{.Group}}
