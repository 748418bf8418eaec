-- stats: one pool's figures over the window, per member and source, at every
-- scope level at once: GROUP BY … WITH ROLLUP over region > country > ASN
-- gives (region, country, asn), (region, country), (region) and global rows
-- in one pass (18.16 and current servers fill rolled-up keys with ''). Keys
-- carry a prefix ('r', 'c', 'a') so that a rolled-up key ('') differs from a
-- real empty value ('c' for an unknown country, 'a' for no ASN).
--
-- RUM: rum_cdn probe fetches (kind probe_*) of real browsers through each
-- CDN, human page views only; failed when the fetch errored or answered 5xx.
-- Synthetic: agent results, the agent's country from agent_countries (bound
-- as two arrays), no ASN. The latency is TTFB (else the whole fetch) or the
-- total, per the policy's metric. Raw tables are read without FINAL: a rare
-- replayed batch counts twice in one window, which moves a quantile of
-- hundreds of samples by little, and FINAL over today's partition is costly.
-- Columns are CAST to String: 18.16 finds no common type for a
-- LowCardinality(String) and a String across UNION ALL.
-- Every value is a bound parameter; {{.Q}} is the quantile, a number the
-- code formats.
SELECT
    member,
    source,
    substring(rk, 2) AS region,
    substring(ck, 2) AS country,
    substring(ak, 2) AS asn,
    rk != '' AS has_region,
    ck != '' AS has_country,
    ak != '' AS has_asn,
    samples,
    errors,
    q
FROM
(
SELECT
    member,
    source,
    rk,
    ck,
    ak,
    count() AS samples,
    countIf(failed = 1) AS errors,
    quantileIf({{.Q}})(ms, failed = 0 AND ms >= 0) AS q
FROM
(
    SELECT
        transform(CAST(cdn AS String), ?, ?, '') AS member,
        'rum' AS source,
        concat('r', transform(CAST(country AS String), ?, ?, '')) AS rk,
        concat('c', CAST(country AS String)) AS ck,
        concat('a', toString(asn)) AS ak,
        toUInt8(error != 0 OR status >= 500) AS failed,
        {{if .Total}}ifNull(duration_ms, -1){{else}}ifNull(ttfb_ms, ifNull(duration_ms, -1)){{end}} AS ms
    FROM rum_cdn
    WHERE ts >= toDateTime(?) AND ts < toDateTime(?)
        AND startsWith(kind, 'probe') AND is_bot = 0 AND has(?, cdn)
    UNION ALL
    SELECT
        transform(CAST(if(cdn_member != '', cdn_member, check_name) AS String), ?, ?, '') AS member,
        'synthetic' AS source,
        concat('r', transform(transform(CAST(agent AS String), ?, ?, ''), ?, ?, '')) AS rk,
        concat('c', transform(CAST(agent AS String), ?, ?, '')) AS ck,
        'a' AS ak,
        toUInt8(ok = 0) AS failed,
        {{if .Total}}ifNull(total_ms, -1){{else}}ifNull(ttfb_ms, ifNull(total_ms, -1)){{end}} AS ms
    FROM results
    WHERE ts >= toDateTime(?) AND ts < toDateTime(?)
        AND has(?, if(cdn_member != '', cdn_member, check_name))
)
GROUP BY member, source, rk, ck, ak WITH ROLLUP
)
WHERE source != ''
ORDER BY member, source, rk, ck, ak
