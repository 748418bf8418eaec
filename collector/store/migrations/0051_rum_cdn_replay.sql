-- replay: see 0050. Browsers send a beacon once; the collector marks the
-- rows it inserts again.
ALTER TABLE {{.Alter "rum_cdn"}} ADD COLUMN replay UInt8 DEFAULT 0
