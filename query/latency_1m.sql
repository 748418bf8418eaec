-- latency_1m: the latency query over the per-minute rollup results_1m
-- (collector/store/migrations/0020, 0021), for long windows: cheap, but the
-- window is whole minutes and a replayed result (same id) counts again (the
-- rollup's materialized view sees inserts, not merges); latency.sql reads
-- the raw table FINAL and is exact. {{.By}} is a list of whitelisted
-- columns (RollupDimensions in query.go); every value is a bound parameter.
SELECT
    {{.By}},
    countMerge(n) AS n_all,
    countIfMerge(failed) AS n_failed,
    quantilesIfMerge(0.5, 0.9, 0.95, 0.99)(total_q) AS q
FROM results_1m
WHERE minute >= toDateTime(?) AND minute <= toDateTime(?)
{{- if .Kind}} AND kind = ?{{end}}
GROUP BY {{.By}}
ORDER BY {{.By}}
