-- Feeds results_member_1h (0055) from every insert into results, as
-- 0056 did, with the latencies in qt, a timing histogram (0080): q, the
-- old exact-sample state, is filled empty (18.16 makes a view fill every
-- column of its target, and has no DROP COLUMN IF EXISTS to drop it on
-- each replica). Rows, member, failure and latency rules: see 0043.
CREATE MATERIALIZED VIEW IF NOT EXISTS {{.DB}}.results_member_1h_mv
TO {{.Table "results_member_1h"}}
AS SELECT
    toStartOfHour(ts) AS minute,
    agent,
    CAST(if(cdn_member != '', cdn_member, check_name) AS LowCardinality(String)) AS member,
    region,
    target,
    countState() AS samples,
    countIfState(toUInt8(ok = 0)) AS errors,
    quantilesIfState(0.5, 0.75, 0.95)(toFloat64(0), toUInt8(0)) AS q,
    quantilesTimingIfState(0.5, 0.75, 0.95)(ifNull(ttfb_ms, ifNull(total_ms, -1)),
        toUInt8(ok != 0 AND ifNull(ttfb_ms, ifNull(total_ms, -1)) >= 0)) AS qt
FROM {{.Table "results"}}
GROUP BY minute, agent, member, region, target
