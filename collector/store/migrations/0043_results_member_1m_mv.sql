-- Feeds results_member_1m (0042) from every insert into results. member =
-- cdn_member, else check_name; failed = ok = 0; ms = ttfb_ms, else
-- total_ms, else -1 (none); q takes ms of ok results that have one. The
-- expressions are repeated rather than named in a subquery: 18.16 and
-- current servers accept this form alike. member is CAST back to
-- LowCardinality(String): 18.16's if() returns String, and its view refuses
-- a column whose type differs from the target's. Replays are counted again
-- here: see 0042.
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
    quantilesIfState(0.5, 0.75, 0.95)(ifNull(ttfb_ms, ifNull(total_ms, -1)),
        toUInt8(ok != 0 AND ifNull(ttfb_ms, ifNull(total_ms, -1)) >= 0)) AS q
FROM {{.Table "results"}}
GROUP BY minute, agent, member, region, target
