-- qt: the latencies as a timing histogram, filled by rum_cdn_1h_mv from 0085 on;
-- rows stored before hold an empty qt (see query/latency_map_1m.sql).
ALTER TABLE {{.Alter "rum_cdn_1h"}} ADD COLUMN qt AggregateFunction(quantilesTimingIf(0.5, 0.75, 0.95), Float64, UInt8)
