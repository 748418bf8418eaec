-- hop_loss_pct: each hop's loss, percent.
ALTER TABLE {{.Alter "results"}} ADD COLUMN hop_loss_pct Array(Float64)
