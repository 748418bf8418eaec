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

// MaxReplayRounds bounds a replay: each round is one stats query, so a
// week at 15 s (40320 rounds) would keep a server busy for many minutes.
const MaxReplayRounds = 20000

// ReplayReport is what a policy would have published for one pool over a
// past window, decided round by round from a fresh engine as `steering run`
// would have, without publishing anything.
type ReplayReport struct {
	Pool  string
	From  time.Time // the window replayed; the first round is at From+Every
	To    time.Time
	Every time.Duration
	// Rounds is the number of decisions made; ChangedRounds those in which
	// some scope's weights changed, and Changes the scope changes in all.
	// A scope's first publication is no change.
	Rounds, ChangedRounds, Changes int
	Members                        []string       // in policy order
	Scopes                         []*ScopeReplay // global first, then by scope string
	Final                          *Decision      // the last round's decision
}

// ScopeReplay is one scope's history in a replay.
type ScopeReplay struct {
	Scope   string `json:"scope"`
	Rounds  int    `json:"rounds"`  // decisions that published the scope
	Changes int    `json:"changes"` // of its weights, its first publication not counted
	// DownRounds counts, per member, the rounds in which it was down.
	DownRounds map[string]int `json:"down_rounds"`
	// Published is every set of weights the scope got: the first one,
	// then one per change.
	Published []ReplayWeights `json:"published"`
}

// ReplayWeights is a set of weights as routers would have got it.
type ReplayWeights struct {
	At      time.Time      `json:"at"`
	Rule    string         `json:"rule"`
	Weights map[string]int `json:"weights"` // by member name
}

// MarshalJSON writes Every as a Go duration ("15s") rather than nanoseconds.
func (r *ReplayReport) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Pool          string         `json:"pool"`
		From          time.Time      `json:"from"`
		To            time.Time      `json:"to"`
		Every         string         `json:"every"`
		Rounds        int            `json:"rounds"`
		ChangedRounds int            `json:"changed_rounds"`
		Changes       int            `json:"changes"`
		Members       []string       `json:"members"`
		Scopes        []*ScopeReplay `json:"scopes"`
		Final         *Decision      `json:"final"`
	}{r.Pool, r.From, r.To, r.Every.String(), r.Rounds, r.ChangedRounds, r.Changes, r.Members, r.Scopes, r.Final})
}

// Scope returns the history of scope s, if it was ever published.
func (r *ReplayReport) Scope(s string) (*ScopeReplay, bool) {
	for _, sr := range r.Scopes {
		if sr.Scope == s {
			return sr, true
		}
	}
	return nil, false
}

// Replay decides pool under p at From+every, From+2·every, … up to to,
// each round reading the window ending then (ReadStats) and deciding from
// a fresh engine (NewEngine(p, nil)) carried from round to round. It
// writes nothing: steering_history is left alone. progress, if not nil, is
// called after every round.
func Replay(ctx context.Context, conn driver.Conn, p *Policy, pool string, from, to time.Time, every time.Duration,
	agentCountry map[string]string, progress func(done, total int)) (*ReplayReport, error) {
	pl, ok := p.Pool(pool)
	if !ok {
		var names []string
		for _, x := range p.Pools {
			names = append(names, x.Name)
		}
		return nil, fmt.Errorf("cannot replay pool %q: it is not in the policy, which has %s", pool, strings.Join(names, ", "))
	}
	total, err := replayRounds(from, to, every)
	if err != nil {
		return nil, err
	}
	r := &ReplayReport{Pool: pool, From: from, To: to, Every: every}
	for _, m := range pl.Members {
		r.Members = append(r.Members, m.Name)
	}
	e := NewEngine(p, nil)
	byScope := map[string]*ScopeReplay{}
	for i := 1; i <= total; i++ {
		now := from.Add(time.Duration(i) * every)
		stats, err := ReadStats(ctx, conn, p, pl, agentCountry, now)
		if err != nil {
			return nil, fmt.Errorf("cannot replay round %d at %s: %w", i, now.UTC().Format(time.RFC3339), err)
		}
		d, err := e.Compute(now, pool, stats)
		if err != nil {
			return nil, fmt.Errorf("cannot replay round %d at %s: %w", i, now.UTC().Format(time.RFC3339), err)
		}
		r.add(d, byScope)
		if progress != nil {
			progress(i, total)
		}
	}
	sortReplayScopes(r.Scopes)
	return r, nil
}

// replayRounds is the number of rounds from, to and every make, or why
// there would be none or too many.
func replayRounds(from, to time.Time, every time.Duration) (int, error) {
	if every <= 0 {
		return 0, fmt.Errorf("cannot replay every %v: the step must be positive", every)
	}
	span := to.Sub(from)
	if span < every {
		return 0, fmt.Errorf("cannot replay from %s to %s every %v: the window holds no round; widen it or step more often",
			from.UTC().Format(time.RFC3339), to.UTC().Format(time.RFC3339), every)
	}
	n := span / every
	if n > MaxReplayRounds {
		least := (span + MaxReplayRounds - 1) / MaxReplayRounds
		least = (least + time.Second - 1).Truncate(time.Second)
		return 0, fmt.Errorf("cannot replay %d rounds (at most %d): step by %v or more (--every), or replay a shorter window", n, MaxReplayRounds, least)
	}
	return int(n), nil
}

// add files one round's decision.
func (r *ReplayReport) add(d *Decision, byScope map[string]*ScopeReplay) {
	r.Rounds++
	r.Final = d
	changed := false
	for _, sd := range d.Scopes {
		sr := byScope[sd.Scope]
		if sr == nil {
			sr = &ScopeReplay{Scope: sd.Scope, DownRounds: map[string]int{}}
			byScope[sd.Scope] = sr
			r.Scopes = append(r.Scopes, sr)
		}
		sr.Rounds++
		w := map[string]int{}
		for _, m := range sd.Members {
			w[m.Name] = m.Weight
			if m.State == StateDown {
				sr.DownRounds[m.Name]++
			}
		}
		if !sd.Changed && len(sr.Published) > 0 {
			continue
		}
		if len(sr.Published) > 0 {
			sr.Changes++
			r.Changes++
			changed = true
		}
		sr.Published = append(sr.Published, ReplayWeights{At: d.ComputedAt, Rule: sd.Rule, Weights: w})
	}
	if changed {
		r.ChangedRounds++
	}
}

// sortReplayScopes orders scopes as decisions do: global first, then by
// scope string.
func sortReplayScopes(s []*ScopeReplay) {
	slices.SortFunc(s, func(a, b *ScopeReplay) int {
		key := func(x *ScopeReplay) string {
			if x.Scope == "global" {
				return ""
			}
			return x.Scope
		}
		return cmp.Compare(key(a), key(b))
	})
}
