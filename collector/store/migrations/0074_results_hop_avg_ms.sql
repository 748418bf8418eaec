-- hop_avg_ms: mean reply time; -1 where no reply came.
ALTER TABLE {{.Alter "results"}} ADD COLUMN hop_avg_ms Array(Float64)
