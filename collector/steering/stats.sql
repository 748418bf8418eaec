-- stats: one pool's figures over the window, per member and source, at every
-- scope level at once: one pass over the rows aggregates them per ASN
-- (counts and quantile states), then each ASN's aggregate is counted at four
-- levels (ARRAY JOIN over 0..3: global, region, region+country,
-- region+country+ASN) and the states are merged, so one scan gives every
-- scope. (Not GROUP BY … WITH ROLLUP: 18.16 returns a level's
-- row more than once when it aggregates a large block in two levels.) Keys
-- carry a prefix ('r', 'c', 'a') so that a level's absent key ('') differs
-- from a real empty value ('c' for an unknown country, 'a' for no ASN).
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
-- recent marks the window's last fast_window (its figures come beside the
-- whole window's; the engine uses them for fast degradations).
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
    q,
    recent_samples,
    recent_errors,
    recent_q
FROM
(
SELECT
    member,
    source,
    rk,
    ck,
    ak,
    sum(n) AS samples,
    sum(e) AS errors,
    quantileIfMerge({{.Q}})(qs) AS q,
    sum(rn) AS recent_samples,
    sum(re) AS recent_errors,
    quantileIfMerge({{.Q}})(rqs) AS recent_q
FROM
(
SELECT
    member,
    source,
    if(level >= 1, r0, '') AS rk,
    if(level >= 2, c0, '') AS ck,
    if(level >= 3, a0, '') AS ak,
    n, e, qs, rn, re, rqs
FROM
(
SELECT
    member,
    source,
    r0,
    c0,
    a0,
    count() AS n,
    countIf(failed = 1) AS e,
    quantileIfState({{.Q}})(ms, failed = 0 AND ms >= 0) AS qs,
    countIf(recent = 1) AS rn,
    countIf(recent = 1 AND failed = 1) AS re,
    quantileIfState({{.Q}})(ms, recent = 1 AND failed = 0 AND ms >= 0) AS rqs
FROM
(
    SELECT
        transform(CAST(cdn AS String), ?, ?, '') AS member,
        'rum' AS source,
        concat('r', transform(CAST(country AS String), ?, ?, '')) AS r0,
        concat('c', CAST(country AS String)) AS c0,
        concat('a', toString(asn)) AS a0,
        toUInt8(error != 0 OR status >= 500) AS failed,
        {{if .Total}}ifNull(duration_ms, -1){{else}}ifNull(ttfb_ms, ifNull(duration_ms, -1)){{end}} AS ms,
        toUInt8(ts >= toDateTime(?)) AS recent
    FROM rum_cdn
    WHERE ts >= toDateTime(?) AND ts < toDateTime(?)
        AND startsWith(kind, 'probe') AND is_bot = 0 AND has(?, cdn)
    UNION ALL
    SELECT
        transform(CAST(if(cdn_member != '', cdn_member, check_name) AS String), ?, ?, '') AS member,
        'synthetic' AS source,
        concat('r', transform(transform(CAST(agent AS String), ?, ?, ''), ?, ?, '')) AS r0,
        concat('c', transform(CAST(agent AS String), ?, ?, '')) AS c0,
        'a' AS a0,
        toUInt8(ok = 0) AS failed,
        {{if .Total}}ifNull(total_ms, -1){{else}}ifNull(ttfb_ms, ifNull(total_ms, -1)){{end}} AS ms,
        toUInt8(ts >= toDateTime(?)) AS recent
    FROM results
    WHERE ts >= toDateTime(?) AND ts < toDateTime(?)
        AND has(?, if(cdn_member != '', cdn_member, check_name))
)
GROUP BY member, source, r0, c0, a0
)
ARRAY JOIN [0, 1, 2, 3] AS level
)
GROUP BY member, source, rk, ck, ak
)
ORDER BY member, source, rk, ck, ak
