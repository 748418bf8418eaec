-- hop_stddev_ms: standard deviation of reply times; -1 where no reply came.
ALTER TABLE {{.Alter "results"}} ADD COLUMN hop_stddev_ms Array(Float64)
