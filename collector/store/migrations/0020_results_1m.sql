-- shard-by: cityHash64(region, check_name, target, kind)
-- Per-minute rollup of results for latency maps over long windows, filled
-- by results_1m_mv (0021). Read with countMerge, countIfMerge and
-- quantilesIfMerge(0.5, 0.9, 0.95, 0.99), grouping by minute or coarser
-- (query/latency_1m.sql). Latency states hold successful results with a
-- total time only.
--
-- Replays: a materialized view sees inserts, not merges, so a result
-- inserted twice (same id) is counted twice here, while the raw table folds
-- it (ReplacingMergeTree + FINAL). That is bounded: the collector
-- acknowledges each batch once and agents resend only results whose
-- acknowledgement was lost (and the spool drains a batch at most once per
-- failed insert), so duplicates are rare. Exact figures: `meridian query
-- latency` reads results FINAL; the rollup is for long windows. On a
-- cluster the view runs on each node, from its results_local into its
-- results_1m_local, and results_1m (Distributed) merges the states.
CREATE TABLE IF NOT EXISTS {{.Table "results_1m"}} (
    minute      DateTime,
    region      LowCardinality(String),
    check_name  LowCardinality(String),
    target      String,
    kind        LowCardinality(String),
    n           AggregateFunction(count),
    failed      AggregateFunction(countIf, UInt8),
    total_q     AggregateFunction(quantilesIf(0.5, 0.9, 0.95, 0.99), Float64, UInt8)
) ENGINE = {{.Engine "AggregatingMergeTree"}}
PARTITION BY toDate(minute)
ORDER BY (region, check_name, target, kind, minute)
