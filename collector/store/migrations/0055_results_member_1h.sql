-- shard-by: cityHash64(member, agent)
-- Per-hour rollup of results per agent and member: results_member_1m (0042)
-- by the hour, for the latency map over a day or more (query/rollup.go).
-- minute holds the hour's start. Filled by results_member_1h_mv (0056)
-- from the raw table; replays count again, as in results_member_1m.
CREATE TABLE IF NOT EXISTS {{.Table "results_member_1h"}} (
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
