-- hop_min_ms: each hop's fastest reply; -1 where no reply came (arrays
-- cannot hold Nullable, as bh_max_ms).
ALTER TABLE {{.Alter "results"}} ADD COLUMN hop_min_ms Array(Float64)
