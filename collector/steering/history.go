package steering

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// historyColumns are steering_history's columns in the order Publish
// appends them.
var historyColumns = []string{
	"computed_at", "decision", "pool", "dns_name", "ttl", "policy_version",
	"scope", "fallback", "figures_from", "rule", "changed", "scope_changed_at",
	"member_index", "member", "weight", "state", "score_ms", "raw_ms", "q_ms", "error_rate",
	"samples", "rum_samples", "synthetic_samples", "reason", "engine_state",
}

// Publish records decision d in steering_history, one row per scope and
// member, with the engine's memory of each member (st) so that a restarted
// engine carries on from it.
func Publish(ctx context.Context, conn driver.Conn, d *Decision, st *State, policyVersion uint64) error {
	batch, err := conn.PrepareBatch(ctx, "INSERT INTO steering_history ("+joinComma(historyColumns)+")")
	if err != nil {
		return fmt.Errorf("cannot publish the decision of pool %s: %w", d.Pool, err)
	}
	id := uint64(d.ComputedAt.UnixNano())
	memory := st.Pools[d.Pool]
	for _, sd := range d.Scopes {
		fallback := sd.Fallback
		if fallback == nil {
			fallback = []string{}
		}
		for i, m := range sd.Members {
			es, err := json.Marshal(memory[sd.Scope][m.Name])
			if err != nil {
				return err
			}
			err = batch.Append(d.ComputedAt, id, d.Pool, d.DNSName, uint32(d.TTL), policyVersion,
				sd.Scope, fallback, sd.FiguresFrom, sd.Rule, b2u8(sd.Changed), sd.ChangedAt,
				uint16(i), m.Name, uint8(m.Weight), m.State, finite(m.ScoreMs), finite(m.RawMs), finite(m.Q), m.ErrorRate,
				m.Samples, m.RUMSamples, m.SyntheticSamples, m.Reason, string(es))
			if err != nil {
				batch.Abort()
				return fmt.Errorf("cannot publish the decision of pool %s: %w", d.Pool, err)
			}
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("cannot publish the decision of pool %s: %w", d.Pool, err)
	}
	return nil
}

// Published is what steering_history holds last for every pool.
type Published struct {
	Decisions map[string]*Decision // by pool
	State     *State               // the engine's memory as of those decisions
	Policy    map[string]uint64    // the policy version each decision used
}

// HistoryLookback is how far back Latest looks for a pool's last decision:
// an engine stopped for longer starts afresh.
const HistoryLookback = 7 * 24 * time.Hour

// Latest reads each pool's last published decision (pools empty: all) and
// the engine memory stored with it.
func Latest(ctx context.Context, conn driver.Conn, pools ...string) (*Published, error) {
	since := time.Now().Add(-HistoryLookback).Unix()
	filter, args := "", []any{since}
	if len(pools) > 0 {
		filter, args = " AND has(?, pool)", append(args, pools)
	}
	args = append(args, since)
	if len(pools) > 0 {
		args = append(args, pools)
	}
	rows, err := conn.Query(ctx, `SELECT computed_at, decision, pool, dns_name, ttl, policy_version,
    scope, fallback, figures_from, rule, changed, scope_changed_at,
    member_index, member, weight, state, score_ms, raw_ms, q_ms, error_rate,
    samples, rum_samples, synthetic_samples, reason, engine_state
FROM steering_history
WHERE computed_at >= toDateTime(?)`+filter+` AND (pool, decision) IN (
    SELECT pool, max(decision) FROM steering_history WHERE computed_at >= toDateTime(?)`+filter+` GROUP BY pool)
ORDER BY pool, scope, member_index`, args...)
	if err != nil {
		return nil, fmt.Errorf("cannot read the last steering decisions: %w", err)
	}
	defer rows.Close()
	p := &Published{Decisions: map[string]*Decision{}, State: &State{Pools: map[string]map[string]map[string]MemberState{}}, Policy: map[string]uint64{}}
	for rows.Next() {
		var (
			r                 historyRow
			score, raw, q     *float64
			changed, weight   uint8
			ttl               uint32
			index             uint16
			id, policyVersion uint64
			engineState       string
		)
		if err := rows.Scan(&r.computedAt, &id, &r.pool, &r.dnsName, &ttl, &policyVersion,
			&r.scope.Scope, &r.scope.Fallback, &r.scope.FiguresFrom, &r.scope.Rule, &changed, &r.scope.ChangedAt,
			&index, &r.member.Name, &weight, &r.member.State, &score, &raw, &q, &r.member.ErrorRate,
			&r.member.Samples, &r.member.RUMSamples, &r.member.SyntheticSamples, &r.member.Reason, &engineState); err != nil {
			return nil, fmt.Errorf("cannot read the last steering decisions: %w", err)
		}
		r.scope.Changed, r.member.Weight = changed == 1, int(weight)
		r.member.ScoreMs, r.member.RawMs, r.member.Q = orNaN(score), orNaN(raw), orNaN(q)
		d := p.Decisions[r.pool]
		if d == nil {
			d = &Decision{Pool: r.pool, DNSName: r.dnsName, ComputedAt: time.Unix(0, int64(id)).UTC(), TTL: int(ttl)}
			p.Decisions[r.pool], p.Policy[r.pool] = d, policyVersion
		}
		if n := len(d.Scopes); n == 0 || d.Scopes[n-1].Scope != r.scope.Scope {
			if len(r.scope.Fallback) == 0 {
				r.scope.Fallback = nil
			}
			d.Scopes = append(d.Scopes, r.scope)
		}
		sd := &d.Scopes[len(d.Scopes)-1]
		sd.Members = append(sd.Members, r.member)
		var ms MemberState
		if err := json.Unmarshal([]byte(engineState), &ms); err != nil {
			return nil, fmt.Errorf("cannot read the engine state of %s %s %s: %w", r.pool, r.scope.Scope, r.member.Name, err)
		}
		p.State.set(r.pool, r.scope.Scope, r.member.Name, ms)
		if !ms.ChangedAt.IsZero() {
			sd.ChangedAt = ms.ChangedAt // scope_changed_at holds whole seconds only
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for _, d := range p.Decisions {
		slices.SortStableFunc(d.Scopes, func(a, b ScopeDecision) int {
			return cmp.Or(cmp.Compare(b2i(a.Scope != "global"), b2i(b.Scope != "global")), cmp.Compare(a.Scope, b.Scope))
		})
	}
	return p, nil
}

type historyRow struct {
	computedAt    time.Time
	pool, dnsName string
	scope         ScopeDecision
	member        MemberDecision
}

func (s *State) set(pool, scope, member string, ms MemberState) {
	if s.Pools[pool] == nil {
		s.Pools[pool] = map[string]map[string]MemberState{}
	}
	if s.Pools[pool][scope] == nil {
		s.Pools[pool][scope] = map[string]MemberState{}
	}
	s.Pools[pool][scope][member] = ms
}

func b2u8(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}

func b2i(b bool) int { return int(b2u8(b)) }

func joinComma(s []string) string { return strings.Join(s, ", ") }
