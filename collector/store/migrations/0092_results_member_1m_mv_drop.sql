-- The latency map's synthetic side leaves out traceroute results: a trace's
-- total time is the time to walk the path, hop by hop, not a latency to
-- the target (query/latency_map.sql does the same on raw rows). The view
-- is made again (0093) with that filter; rows a view stored before stay.
DROP TABLE IF EXISTS {{.DB}}.results_member_1m_mv
