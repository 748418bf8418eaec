-- Feeds results_1m (0020) from every insert into results. total_ms is
-- Nullable: assumeNotNull with the If combinator keeps absent times out of
-- the quantiles (18.16 and current servers accept the same form). Replays
-- are counted again here: see 0020.
CREATE MATERIALIZED VIEW IF NOT EXISTS {{.DB}}.results_1m_mv
TO {{.Table "results_1m"}}
AS SELECT
    toStartOfMinute(ts) AS minute,
    region,
    check_name,
    target,
    kind,
    countState() AS n,
    countIfState(ok = 0) AS failed,
    quantilesIfState(0.5, 0.9, 0.95, 0.99)(assumeNotNull(total_ms), ok = 1 AND isNotNull(total_ms)) AS total_q
FROM {{.Table "results"}}
GROUP BY minute, region, check_name, target, kind
