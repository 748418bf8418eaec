-- hop_sent: probes sent with each hop's TTL.
ALTER TABLE {{.Alter "results"}} ADD COLUMN hop_sent Array(UInt16)
