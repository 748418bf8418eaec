-- trace_port: a udp or tcp traceroute's destination port (0 for icmp).
ALTER TABLE {{.Alter "results"}} ADD COLUMN trace_port UInt16
