-- latency: total time quantiles of successful results, and failure counts,
-- per group over the last --since. {{.By}} is a list of whitelisted columns
-- (see Dimensions in query.go); every value is a bound parameter.
-- FINAL folds replayed results (same id) so they count once.
SELECT
    {{.By}},
    count() AS n,
    countIf(ok = 0) AS failed,
    quantilesIf(0.5, 0.95, 0.99)(assumeNotNull(total_ms), ok = 1 AND isNotNull(total_ms)) AS q
FROM results FINAL
WHERE ts >= toDateTime(?) AND ts <= toDateTime(?)
{{- if .Kind}} AND kind = ?{{end}}
GROUP BY {{.By}}
ORDER BY {{.By}}
