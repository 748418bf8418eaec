-- qt: the latencies as a timing histogram, filled by results_member_1h_mv from 0091 on;
-- rows stored before hold an empty qt (see query/latency_map_1m.sql).
ALTER TABLE {{.Alter "results_member_1h"}} ADD COLUMN qt AggregateFunction(quantilesTimingIf(0.5, 0.75, 0.95), Float64, UInt8)
