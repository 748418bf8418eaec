-- trace_reached: 1 when the traceroute's destination answered.
ALTER TABLE {{.Alter "results"}} ADD COLUMN trace_reached UInt8
