-- Feeds results_member_1h (0055) from every insert into results, by the
-- hour, with the same rows and expressions as results_member_1m_mv (0043),
-- which see.
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
    quantilesIfState(0.5, 0.75, 0.95)(ifNull(ttfb_ms, ifNull(total_ms, -1)),
        toUInt8(ok != 0 AND ifNull(ttfb_ms, ifNull(total_ms, -1)) >= 0)) AS q
FROM {{.Table "results"}}
GROUP BY minute, agent, member, region, target
