-- The latency map's rollups move from q (quantilesIf: a reservoir of up to
-- 8192 raw samples per state, slow to merge over a day: ~1 s for 24 h of
-- 10 million rows) to qt (quantilesTimingIf: a histogram of whole
-- milliseconds, exact below 1,024 ms, 16 ms steps up to 30 s, 30 s and
-- above counted as 30 s; deterministic, merged several times faster).
-- The view is dropped first, so no insert meets a target whose columns
-- its view does not fill; inserts during the migration miss the rollup.
DROP TABLE IF EXISTS {{.DB}}.results_member_1m_mv
