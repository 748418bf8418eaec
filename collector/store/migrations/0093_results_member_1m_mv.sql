-- Feeds results_member_1m (0042) from every insert into results, as 0088
-- did, leaving out traceroute results (see 0092). Rows, member, failure and
-- latency rules: see 0043; the latencies in qt: see 0080.
CREATE MATERIALIZED VIEW IF NOT EXISTS {{.DB}}.results_member_1m_mv
TO {{.Table "results_member_1m"}}
AS SELECT
    toStartOfMinute(ts) AS minute,
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
WHERE kind != 'traceroute'
GROUP BY minute, agent, member, region, target
