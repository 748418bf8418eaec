-- As 0092, for the hour tier: the view is made again (0095) without
-- traceroute results.
DROP TABLE IF EXISTS {{.DB}}.results_member_1h_mv
