-- replay: see 0050 and 0051.
ALTER TABLE {{.Alter "rum_pageviews"}} ADD COLUMN replay UInt8 DEFAULT 0
