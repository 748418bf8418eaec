-- hop_max_ms: slowest reply; -1 where no reply came.
ALTER TABLE {{.Alter "results"}} ADD COLUMN hop_max_ms Array(Float64)
