-- tls: certificates per region × target: latest subject and issuer, fewest days left, share valid in every trust store, TLS versions
-- Results that saw a certificate (cert_subject set). certs counts distinct
-- certificates (by SHA-256); trusted_share is the share of results whose
-- chain verified in every trust store they were checked against.
SELECT {{.Group}}, n, certs, subject AS cert_subject, issuer AS cert_issuer, min_days_left, round(trusted / checked, 4) AS trusted_share, tls_versions
FROM
(
    SELECT
        {{.Dims}},
        count() AS n,
        uniqExact(cert_sha256) AS certs,
        argMax(cert_subject, ts) AS subject,
        argMax(cert_issuer, ts) AS issuer,
        min(cert_days_left) AS min_days_left,
        countIf(notEmpty(trust_valid) AND arrayAll(v -> v = 1, trust_valid)) AS trusted,
        countIf(notEmpty(trust_valid)) AS checked,
        arrayStringConcat(arraySort(groupUniqArray(CAST(tls_version AS String))), ' ') AS tls_versions
    FROM {{.Rows "results"}}
    WHERE cert_subject != ''{{.Where}}
    GROUP BY {{.Group}}
)
ORDER BY {{.Group}}
