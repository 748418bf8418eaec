-- latency rollup: the latency query over the per-minute rollup results_1m
-- (collector/store/migrations/0020, 0021), for long windows: cheap, but the
-- window is whole minutes and a replayed result (same id) counts again (the
-- rollup's materialized view sees inserts, not merges); latency.sql reads
-- the raw table, each row once, and is exact. The rollup keeps p50/p90/p95/p99.
SELECT {{.Group}}, n_all AS n, n_failed AS failed, q[1] AS p50_ms, q[3] AS p95_ms, q[4] AS p99_ms
FROM
(
    SELECT
        {{.Dims}},
        countMerge(n) AS n_all,
        countIfMerge(failed) AS n_failed,
        quantilesIfMerge(0.5, 0.9, 0.95, 0.99)(total_q) AS q
    FROM results_1m
    WHERE minute >= {{.From}} AND minute <= {{.To}}{{.Where}}
    GROUP BY {{.Group}}
)
ORDER BY {{.Group}}
