-- throughput_bps: bits per second over an http body transfer only
-- (result.HTTP.ThroughputBps), NULL where not measured. Appended to
-- 0002_results.sql in the same order, so fresh replicas match altered ones.
ALTER TABLE {{.Alter "results"}} ADD COLUMN throughput_bps Nullable(Float64)
