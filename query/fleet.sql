-- fleet: agents and their heartbeats: how many report, last seen, lag behind the window's end, spool depth, per agent or country
-- Enabled agents (agents FINAL) joined with their last heartbeat in the
-- window; an agent without one counts in agents, not in reporting, and has
-- no last_seen. lag_s is seconds from the last heartbeat to the window's
-- end; spool figures are the sum of each agent's last report.
SELECT
    {{.Group}}, agents, reporting,
    if(reporting > 0, seen, toDateTime(0)) AS last_seen,
    if(reporting > 0, toNullable(toInt64({{.To}}) - toInt64(seen)), NULL) AS lag_s,
    spool_results, spool_bytes
FROM
(
    SELECT
        {{.Dims}},
        count() AS agents,
        countIf(hb_last > toDateTime(0)) AS reporting,
        max(hb_last) AS seen,
        sum(hb_spool_results) AS spool_results,
        sum(hb_spool_bytes) AS spool_bytes
    FROM
    (
        SELECT name AS agent, region
        FROM agents FINAL
        WHERE disabled = 0
    ) AS a
    ANY LEFT JOIN
    (
        SELECT
            agent,
            max(ts) AS hb_last,
            argMax(spool_results, ts) AS hb_spool_results,
            argMax(spool_bytes, ts) AS hb_spool_bytes
        FROM agent_heartbeats
        WHERE ts >= {{.From}} AND ts <= {{.To}}
        GROUP BY agent
    ) AS h USING agent
    WHERE 1{{.Where}}
    GROUP BY {{.Group}}
)
ORDER BY {{.Group}}
