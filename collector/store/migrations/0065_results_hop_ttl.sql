-- hop_*: a traceroute's hops as parallel arrays, one element per TTL probed
-- (result.Traceroute.Hops), in TTL order. hop_ttl: the TTL of each.
ALTER TABLE {{.Alter "results"}} ADD COLUMN hop_ttl Array(UInt8)
