-- hop_name: each hop's reverse DNS name, when the check asked for it.
ALTER TABLE {{.Alter "results"}} ADD COLUMN hop_name Array(String)
