-- shard-by: cityHash64(member, agent)
-- Per-minute rollup of results per agent and member (cdn_member, else the
-- check name: how steering names a pool member), region and target, filled
-- by results_member_1m_mv (0043), for the latency map over long windows
-- (query/latency_map_1m.sql; the agent's country is looked up at query
-- time, so a changed country applies to the past too, as in the raw form).
-- Read with countMerge(samples), countIfMerge(errors) and
-- quantilesTimingIfMerge(0.5, 0.75, 0.95)(qt) (q until 0080). A result failed when not ok; its
-- latency is TTFB, else the total; q holds the latencies of ok results.
--
-- Replays: a materialized view sees inserts, not merges, so a result
-- inserted twice (same id) is counted twice here, while the raw table folds
-- it (ReplacingMergeTree + FINAL). That is bounded: the collector
-- acknowledges each batch once and agents resend only results whose
-- acknowledgement was lost, so duplicates are rare. Exact figures: `meridian
-- query latency-map --raw` reads results FINAL. On a cluster the view runs
-- on each node, from its results_local into its results_member_1m_local,
-- and results_member_1m (Distributed) merges the states.
CREATE TABLE IF NOT EXISTS {{.Table "results_member_1m"}} (
    minute      DateTime,
    agent       LowCardinality(String),
    member      LowCardinality(String),
    region      LowCardinality(String),
    target      String,
    samples     AggregateFunction(count),
    errors      AggregateFunction(countIf, UInt8),
    q           AggregateFunction(quantilesIf(0.5, 0.75, 0.95), Float64, UInt8),
    -- Added by a later migration (0081-0090) to tables made before it, last
    -- as ALTER ADD COLUMN puts it; q is no longer filled (see there).
    qt          AggregateFunction(quantilesTimingIf(0.5, 0.75, 0.95), Float64, UInt8)
) ENGINE = {{.Engine "AggregatingMergeTree"}}
PARTITION BY toDate(minute)
ORDER BY (member, agent, region, target, minute)
