// Package steering turns latency and error figures into the traffic-steering weights routers publish.
//
// Each Compute reads one pool's Stats (one row per scope, member and source
// over the policy's window) and decides every published scope in order:
//
//  1. Blend: per member, the sources' figures are averaged by the knobs'
//     weights alone, not by sample counts, so thousands of RUM beacons do
//     not drown a few dozen agent runs: Q = Σ w_s·Q_s / Σ w_s over sources
//     with a quantile, error rate = Σ w_s·errors_s/samples_s / Σ w_s over
//     sources with samples. A source with weight 0 is ignored.
//     1b. Fast degradations: the query also gives each source's figures
//     over the window's recent end (fast_window, default the last 30 s).
//     With at least min_samples there, a recent quantile above the
//     window's by more than τ·√(fast_min_samples/samples) replaces the
//     window's, and a recent error rate of down_error_rate/2 or more
//     replaces the window's: bars that noise does not reach, so a
//     degradation shows within a round or two while a recovery waits for
//     the whole window and is gradual.
//  2. Enough data: a scope has figures of its own only if every member has
//     at least min_samples samples (failed ones count) in it, so members are
//     always compared on the same population. Otherwise it falls back to its
//     parent's figures: asn → country → region → global. Global is the root
//     and uses whatever it has; with no data at all it fails open. Region
//     and global scopes without rows of their own are pooled from the
//     country rows (samples summed, Q the success-weighted mean of the
//     countries' quantiles: an approximation the SQL can replace by giving
//     the rows).
//  3. Up and down: a round with error rate ≥ down_error_rate is bad.
//     down_after consecutive bad rounds take a member down (weight 0, the
//     others share its traffic, published at once despite hysteresis and
//     dwell); up_after consecutive good rounds bring it back as degraded.
//     A member back from down, or from a bad round, ramps: for
//     ⌈(100-floor)/ramp_percent⌉ more good rounds (once back up, only
//     rounds with an error rate of down_error_rate/10 or less count, so
//     the ramp outlasts the failures leaving the window) it gains at most
//     ramp_percent points per decision over its last published weight (at
//     least the floor), and its moves are published despite hysteresis.
//  4. Score = Q + error_rate × error_penalty_ms; a member without a
//     successful measurement gets the scope's worst Q plus the penalty.
//  5. Smoothing: S = α·score + (1-α)·S, seeded by the first score.
//  6. Degraded: not down, and S - best > home_release_ms, or error rate >
//     down_error_rate/2, or ramping back; it leaves degraded below 80% of
//     those thresholds so it does not flicker.
//  7. Weights over members not down: w_i = floor + (100 - n·floor) ·
//     e_i/Σe, e_i = exp(-(S_i - best)/τ); a member with no score yet gets
//     the floor only. Degraded members are capped as in 3. Rounded by
//     largest remainder to sum exactly 100.
//  8. Home: a scope with a home member that is up (neither down nor
//     degraded) gives it 100 minus the other members' floors.
//  9. Hysteresis and dwell: against the last published weights, a new set
//     is published only if some weight moves by ≥ H points, or triples or
//     falls to a third (0 counts) by 2 points or more, or a member is
//     ramping back; and min_dwell has passed since the last change, unless
//     a degraded member loses at least H points (bad news is published at
//     once; gains wait). A member going down skips both. H is
//     hysteresis_percent, capped at 80% of an average member's share above
//     the floor (0.8·(100-n·floor)/n) so that in a large pool a
//     member can still be moved to the floor. The first decision always
//     publishes. The hysteresis, not the EWMA, is what keeps weights still
//     under noise: the first decision rests on a single window, so a later,
//     better estimate differs from it by about that window's noise.
//  10. Fail-open: with no data at all, or every member down, the last
//     published weights stay (equal weights if there were none).
//
// Published scopes: global, every scope with rows at a level the pool
// publishes, and every scope named in the pool's home; while global has no
// data at all, also every scope published before (they fail open). State
// for other scopes is dropped, so ASN scopes that stop appearing do not
// accumulate.
package steering

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// maxStreak caps the streak counters so a long-lived state cannot overflow.
const maxStreak = 1 << 20

// Engine decides weights and remembers what it needs between decisions.
// It is not safe for concurrent use.
type Engine struct {
	policy *Policy
	state  *State
}

// NewEngine starts an engine on p; state is what State returned before a
// restart, or nil to start fresh. The engine keeps a copy.
func NewEngine(p *Policy, state *State) *Engine {
	e := &Engine{state: state.clone()}
	e.SetPolicy(p)
	return e
}

// State returns a copy of the engine's memory, for storing.
func (e *Engine) State() *State { return e.state.clone() }

// SetPolicy switches to p, keeping the state of pools, scopes and members
// that still exist.
func (e *Engine) SetPolicy(p *Policy) {
	e.policy = p
	for pool, scopes := range e.state.Pools {
		pl, ok := p.Pool(pool)
		if !ok {
			delete(e.state.Pools, pool)
			continue
		}
		for s, members := range scopes {
			sc, err := ParseScope(s)
			if err != nil || sc.Region != "" && p.Regions[sc.Region] == nil || sc.ASN != 0 && !pl.Knobs().Scopes.ASN {
				delete(scopes, s)
				continue
			}
			for m := range members {
				if !slices.ContainsFunc(pl.Members, func(x Member) bool { return x.Name == m }) {
					delete(members, m)
				}
			}
		}
	}
}

// round is one Compute's context.
type round struct {
	now    time.Time
	policy *Policy
	pool   *Pool
	k      Knobs
	state  map[string]map[string]MemberState // scope → member
}

// Compute decides pool's weights at now from stats (see Stat).
func (e *Engine) Compute(now time.Time, pool string, stats []Stat) (*Decision, error) {
	pl, ok := e.policy.Pool(pool)
	if !ok {
		return nil, fmt.Errorf("cannot compute pool %q: it is not in the policy", pool)
	}
	if e.state.Pools[pool] == nil {
		e.state.Pools[pool] = map[string]map[string]MemberState{}
	}
	r := &round{now: now, policy: e.policy, pool: pl, k: pl.Knobs(), state: e.state.Pools[pool]}
	data, err := r.collect(stats)
	if err != nil {
		return nil, err
	}
	figs := map[Scope][]figure{}
	for _, sc := range sortedScopes(data) {
		if r.enough(sc, data[sc]) {
			figs[sc] = r.score(sc, data[sc])
		}
	}
	d := &Decision{Pool: pl.Name, DNSName: pl.DNSName, ComputedAt: now, TTL: pl.TTL}
	keep := map[string]bool{}
	for sc := range figs {
		keep[sc.String()] = true
	}
	for _, sc := range r.published(data, figs) {
		d.Scopes = append(d.Scopes, r.decide(sc, figs))
		keep[sc.String()] = true
	}
	for s := range r.state {
		if !keep[s] {
			delete(r.state, s)
		}
	}
	return d, nil
}

// enough says whether a scope has figures of its own (package comment, 2).
func (r *round) enough(sc Scope, rows [][2]agg) bool {
	k := r.k
	for _, src := range rows {
		b := k.blend(src)
		if sc == Global && b.usable > 0 {
			return true
		}
		if sc != Global && b.usable < k.MinSamples {
			return false
		}
	}
	return sc != Global
}

// published lists the scopes to decide: global first, then by string.
// While global has no figures (data stopped) every scope published before
// stays, failing open; otherwise a scope without rows is left to its
// parent in the routers too.
func (r *round) published(data map[Scope][][2]agg, figs map[Scope][]figure) []Scope {
	set := map[Scope]bool{Global: true}
	for sc := range data {
		if sc.Region == "" || r.k.Scopes.Region {
			set[sc] = true
		}
	}
	for s := range r.pool.Home {
		if sc, err := ParseScope(s); err == nil {
			set[sc] = true
		}
	}
	if figs[Global] == nil {
		for s, members := range r.state {
			sc, err := ParseScope(s)
			if _, ok, _ := r.previous(sc); err == nil && ok && len(members) > 0 {
				set[sc] = true
			}
		}
	}
	return sortedScopes(set)
}

func sortedScopes[V any](m map[Scope]V) []Scope {
	out := make([]Scope, 0, len(m))
	for sc := range m {
		out = append(out, sc)
	}
	slices.SortFunc(out, func(a, b Scope) int {
		switch {
		case a == b:
			return 0
		case a == Global:
			return -1
		case b == Global:
			return 1
		case a.String() < b.String():
			return -1
		}
		return 1
	})
	return out
}

// figure is one member's figures in a scope with data of its own.
type figure struct {
	blend
	raw     float64 // this round's score, NaN without data
	ms      MemberState
	hasData bool
}

// score updates a scope's figures and its members' state (package
// comment, 3 to 6).
func (r *round) score(sc Scope, rows [][2]agg) []figure {
	k, members := r.k, r.pool.Members
	figs := make([]figure, len(members))
	worst := math.NaN()
	for m := range members {
		figs[m].blend = k.blend(rows[m])
		if q := figs[m].q; !math.IsNaN(q) && !(q <= worst) {
			worst = q
		}
	}
	prev := r.state[sc.String()]
	for m, mem := range members {
		f := &figs[m]
		f.ms, f.raw = k.stateOr(prev, mem.Name), math.NaN()
		if f.usable == 0 {
			continue
		}
		f.hasData = true
		q := f.q
		if math.IsNaN(q) {
			q = 0
			if !math.IsNaN(worst) {
				q = worst
			}
		}
		f.raw = q + f.errRate*k.ErrorPenaltyMs
		f.ms.Smoothed = ewma(f.ms.Smoothed, f.raw, k.Alpha)
		k.streak(&f.ms, f.errRate)
	}
	best := bestScore(figs)
	for m := range figs {
		if figs[m].hasData {
			k.classify(&figs[m].ms, figs[m].errRate, best)
		}
	}
	r.save(sc, func(m int, ms *MemberState) {
		ms.Smoothed, ms.State, ms.BadStreak, ms.GoodStreak = figs[m].ms.Smoothed, figs[m].ms.State, figs[m].ms.BadStreak, figs[m].ms.GoodStreak
	})
	return figs
}

// save applies set to the stored state of every member of scope sc.
func (r *round) save(sc Scope, set func(m int, ms *MemberState)) {
	s := sc.String()
	if r.state[s] == nil {
		r.state[s] = map[string]MemberState{}
	}
	for m, mem := range r.pool.Members {
		ms := r.k.stateOr(r.state[s], mem.Name)
		set(m, &ms)
		r.state[s][mem.Name] = ms
	}
}

// stateOr is name's state in prev, or a fresh one: up, with the good
// streak of a member long healthy so it does not count as ramping back.
func (k Knobs) stateOr(prev map[string]MemberState, name string) MemberState {
	if ms, ok := prev[name]; ok {
		return ms
	}
	return MemberState{Smoothed: math.NaN(), State: StateUp, GoodStreak: k.settled()}
}

func ewma(prev, x, alpha float64) float64 {
	if math.IsNaN(prev) || math.IsInf(prev, 0) {
		return x
	}
	return alpha*x + (1-alpha)*prev
}

// streak counts bad and good rounds and moves a member down or back up.
func (k Knobs) streak(ms *MemberState, errRate float64) {
	switch {
	case errRate >= k.DownErrorRate:
		ms.BadStreak, ms.GoodStreak = min(ms.BadStreak+1, maxStreak), 0
	case ms.State == StateDown || errRate <= k.DownErrorRate/10:
		ms.BadStreak, ms.GoodStreak = 0, min(ms.GoodStreak+1, k.settled())
	default:
		// Better than bad, not yet clean: the failures are leaving the
		// window. The ramp waits: were it to run out now, the member,
		// held low by the error penalty, would jump to its full share
		// once the window is clean.
		ms.BadStreak = 0
	}
	switch {
	case ms.BadStreak >= k.DownAfter:
		ms.State = StateDown
	case ms.State == StateDown && ms.GoodStreak >= k.UpAfter:
		ms.State = StateDegraded // ramping back; classify decides from here
	}
}

// settled is the good streak after which a member back from down (or from
// a bad round) has ramped up: up_after rounds, then ⌈(100-floor)/ramp⌉.
// Good streaks stop counting there.
func (k Knobs) settled() int {
	return k.UpAfter + (100-k.FloorPercent+k.RampPercent-1)/k.RampPercent
}

// recovering says whether a member is ramping back after bad rounds.
func (k Knobs) recovering(ms MemberState) bool {
	return ms.State == StateDegraded && ms.BadStreak == 0 && ms.GoodStreak < k.settled()
}

// classify sets up or degraded for a member that is not down.
func (k Knobs) classify(ms *MemberState, errRate, best float64) {
	if ms.State == StateDown {
		return
	}
	f := 1.0
	if ms.State == StateDegraded {
		f = 0.8 // leave degraded only clearly below the thresholds
	}
	recovering := k.recovering(*ms)
	behind := ms.Smoothed-best > k.HomeReleaseMs*f
	erring := errRate > k.DownErrorRate/2*f
	ms.State = StateUp
	if recovering || behind || erring {
		ms.State = StateDegraded
	}
}

// bestScore is the lowest smoothed score among members not down.
func bestScore(figs []figure) float64 {
	best := math.NaN()
	for _, f := range figs {
		if f.ms.State != StateDown && !math.IsNaN(f.ms.Smoothed) && !(f.ms.Smoothed >= best) {
			best = f.ms.Smoothed
		}
	}
	return best
}

// agg is one source's figures for one member in one scope.
type agg struct {
	samples, errors uint64
	q               float64
}

// blend is a member's figures with both sources merged (package comment, 1).
type blend struct {
	q, errRate                float64
	samples, failed, rum, syn uint64
	usable                    uint64 // samples of sources with a weight
}

func (k Knobs) blend(src [2]agg) blend {
	w := [2]float64{k.RUMWeight, k.SyntheticWeight}
	b := blend{q: math.NaN(), rum: src[0].samples, syn: src[1].samples}
	var ew, es, qw, qs float64
	for s, a := range src {
		b.samples += a.samples
		b.failed += a.errors
		if w[s] == 0 || a.samples == 0 {
			continue
		}
		b.usable += a.samples
		ew, es = ew+w[s], es+w[s]*float64(a.errors)/float64(a.samples)
		if a.samples > a.errors && !math.IsNaN(a.q) {
			qw, qs = qw+w[s], qs+w[s]*a.q
		}
	}
	if ew > 0 {
		b.errRate = es / ew
	}
	if qw > 0 {
		b.q = qs / qw
	}
	return b
}

// recentOrWhole is a source's figures over the whole window, except where
// the window's recent end (fast_window) shows a degradation too large to be
// noise; then that part is taken from the recent end (package comment, 1b):
//
//   - latency: the recent quantile exceeds the window's by more than
//     τ·√(fast_min_samples/recent samples) (τ alone from fast_min_samples
//     on): with 20 samples the bar is 2.2τ, well above the spread of a p75
//     of 20, well below a 200 ms degradation;
//   - errors: the recent error rate reaches down_error_rate/2, which a
//     steady 1% error rate does not reach by chance in min_samples.
//
// The sample count stays the window's, so the scope's "enough data" test
// does not change.
func (k Knobs) recentOrWhole(st Stat) agg {
	out := agg{st.Samples, st.Errors, st.Q}
	n := st.RecentSamples
	if k.FastWindow <= 0 || n < k.MinSamples || st.RecentErrors > n || st.Samples == 0 {
		return out
	}
	bar := k.TauMs * math.Sqrt(max(1, float64(k.FastMinSamples)/float64(n)))
	if !math.IsNaN(st.RecentQ) && (math.IsNaN(st.Q) || st.RecentQ > st.Q+bar) {
		out.q = st.RecentQ
	}
	if rate := float64(st.RecentErrors) / float64(n); rate >= k.DownErrorRate/2 && rate > float64(st.Errors)/float64(st.Samples) {
		out.errors = uint64(math.Round(rate * float64(st.Samples)))
	}
	return out
}

// collect checks the rows and files them by scope, member and source
// (0 rum, 1 synthetic), then pools regions and global that have no rows.
func (r *round) collect(stats []Stat) (map[Scope][][2]agg, error) {
	names := r.memberNames()
	data := map[Scope][][2]agg{}
	type key struct {
		sc  Scope
		m   int
		src int
	}
	seen := map[key]bool{}
	for i, st := range stats {
		src := slices.Index([]string{SourceRUM, SourceSynthetic}, st.Source)
		bad := func(msg string, args ...any) error {
			return fmt.Errorf("cannot use stats row %d (%s %s %s) for pool %q: %s", i, st.Scope, st.Member, st.Source, r.pool.Name, fmt.Sprintf(msg, args...))
		}
		switch {
		case src < 0:
			return nil, bad("source %q is not rum or synthetic", st.Source)
		case st.Errors > st.Samples:
			return nil, bad("errors %d exceed samples %d", st.Errors, st.Samples)
		case st.Q < 0 || math.IsInf(st.Q, 0):
			return nil, bad("quantile %v ms is not a latency", st.Q)
		case st.Scope.Region != "" && (st.Scope.Country != "" || st.Scope.ASN != 0), st.Scope.ASN != 0 && st.Scope.Country == "":
			return nil, bad("a scope is global, a region, a country or a country and ASN")
		}
		m, ok := names[src][st.Member]
		if !ok || !r.usable(st.Scope) {
			continue
		}
		if k := (key{st.Scope, m, src}); seen[k] {
			return nil, bad("a second row for the same scope, member and source")
		} else {
			seen[k] = true
		}
		if data[st.Scope] == nil {
			data[st.Scope] = make([][2]agg, len(r.pool.Members))
		}
		data[st.Scope][m][src] = r.k.recentOrWhole(st)
	}
	r.poolUp(data)
	return data, nil
}

// memberNames maps each source's measurement names, then member names, to
// member indexes.
func (r *round) memberNames() [2]map[string]int {
	names := [2]map[string]int{{}, {}}
	for i, m := range r.pool.Members {
		names[0][m.RUMName()], names[1][m.SyntheticName()] = i, i
	}
	for i, m := range r.pool.Members {
		for s := range names {
			if _, taken := names[s][m.Name]; !taken {
				names[s][m.Name] = i
			}
		}
	}
	return names
}

// usable says whether rows for sc count: a known country, a policy region,
// an ASN scope only where the pool publishes them.
func (r *round) usable(sc Scope) bool {
	switch {
	case sc.Region != "":
		return r.policy.Regions[sc.Region] != nil
	case sc.Country == "":
		return true
	case sc.ASN != 0 && !r.k.Scopes.ASN:
		return false
	}
	return KnownCountry(sc.Country)
}

// poolUp fills regions and global that have no rows from country rows.
func (r *round) poolUp(data map[Scope][][2]agg) {
	parts := map[Scope][][][2]agg{}
	for _, sc := range sortedScopes(data) { // sorted: float sums come out the same every run
		if sc.Country == "" || sc.ASN != 0 {
			continue
		}
		parts[Global] = append(parts[Global], data[sc])
		if reg := r.policy.RegionOf(sc.Country); reg != "" {
			parts[Scope{Region: reg}] = append(parts[Scope{Region: reg}], data[sc])
		}
	}
	for sc, p := range parts {
		if data[sc] == nil {
			data[sc] = pooled(p, len(r.pool.Members))
		}
	}
}

func pooled(parts [][][2]agg, n int) [][2]agg {
	out := make([][2]agg, n)
	for m := range n {
		for s := range 2 {
			var qs, qw float64
			for _, p := range parts {
				a := p[m][s]
				out[m][s].samples += a.samples
				out[m][s].errors += a.errors
				if ok := float64(a.samples - a.errors); ok > 0 && !math.IsNaN(a.q) {
					qs, qw = qs+ok*a.q, qw+ok
				}
			}
			out[m][s].q = math.NaN()
			if qw > 0 {
				out[m][s].q = qs / qw
			}
		}
	}
	return out
}
