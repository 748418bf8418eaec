-- hop_asn: each hop's AS number from the collector's ASN database
-- (--asn-db), never from the agent; 0 where unknown.
ALTER TABLE {{.Alter "results"}} ADD COLUMN hop_asn Array(UInt32)
