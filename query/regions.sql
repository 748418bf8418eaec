-- regions: phase medians (dns/connect/tls/ttfb/total p50, throughput) of agent results per region × target
-- Each phase's median is over the successful results that measured it
-- (absent phases are NULL, never 0); throughput_p50_bps over http results
-- of objects past the check's throughput_min_bytes (body transfer only). .Rows (query/rows.go) counts a replayed result once.
SELECT {{.Group}}, n, failed, dns_p50_ms, connect_p50_ms, tls_p50_ms, ttfb_p50_ms, total_p50_ms, throughput_p50_bps
FROM
(
    SELECT
        {{.Dims}},
        count() AS n,
        countIf(ok = 0) AS failed,
        quantileIf(0.5)(assumeNotNull(dns_ms), ok = 1 AND isNotNull(dns_ms)) AS dns_p50_ms,
        quantileIf(0.5)(assumeNotNull(connect_ms), ok = 1 AND isNotNull(connect_ms)) AS connect_p50_ms,
        quantileIf(0.5)(assumeNotNull(tls_ms), ok = 1 AND isNotNull(tls_ms)) AS tls_p50_ms,
        quantileIf(0.5)(assumeNotNull(ttfb_ms), ok = 1 AND isNotNull(ttfb_ms)) AS ttfb_p50_ms,
        quantileIf(0.5)(assumeNotNull(total_ms), ok = 1 AND isNotNull(total_ms)) AS total_p50_ms,
        quantileIf(0.5)(assumeNotNull(throughput_bps), ok = 1 AND isNotNull(throughput_bps)) AS throughput_p50_bps
    FROM {{.Rows "results"}}
    WHERE 1{{.Where}}
    GROUP BY {{.Group}}
)
ORDER BY {{.Group}}
