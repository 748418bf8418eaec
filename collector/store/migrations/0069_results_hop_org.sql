-- hop_org: each hop's AS organisation, as hop_asn; '' where unknown.
ALTER TABLE {{.Alter "results"}} ADD COLUMN hop_org Array(String)
