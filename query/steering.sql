-- steering: published steering weights per pool, scope and member over time: the last weight of each bucket and its mean
-- decisions counts the engine's decisions in the bucket; state is the
-- member's last state (ok, degraded, down, …).
SELECT {{.Group}}, decisions, last_weight AS weight, avg_weight, last_state AS state
FROM
(
    SELECT
        {{.Dims}},
        uniqExact(decision) AS decisions,
        argMax(weight, decision) AS last_weight,
        round(avg(weight), 2) AS avg_weight,
        argMax(CAST(state AS String), decision) AS last_state
    FROM steering_history
    WHERE computed_at >= {{.From}} AND computed_at <= {{.To}}{{.Where}}
    GROUP BY {{.Group}}
)
ORDER BY {{.Group}}
