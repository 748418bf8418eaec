-- hop_received: replies to them.
ALTER TABLE {{.Alter "results"}} ADD COLUMN hop_received Array(UInt16)
