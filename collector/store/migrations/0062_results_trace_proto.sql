-- trace_proto: a traceroute's protocol (icmp, udp, tcp; result.Traceroute).
-- 0062 to 0076 add a traceroute's path, one column per file, appended to
-- 0002_results.sql in the same order so fresh replicas match altered ones.
ALTER TABLE {{.Alter "results"}} ADD COLUMN trace_proto LowCardinality(String)
