package steering

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"
)

// Sources of a Stat.
const (
	SourceRUM       = "rum"
	SourceSynthetic = "synthetic"
)

// Stat is one member's figures in one scope and source over the window.
//
// Member may be the policy member's name or the name its measurements carry
// for that source (Member.RUMName, Member.SyntheticName). Rows for members
// not in the pool, countries outside ISO 3166, regions the policy does not
// define or ASN scopes the pool does not publish are ignored. Region and
// global rows are optional: a region or global scope without rows of its own
// is pooled from the country rows (see the package comment).
type Stat struct {
	Scope   Scope
	Member  string
	Source  string  // "rum" or "synthetic"
	Samples uint64  // measurements, failed ones included
	Errors  uint64  // failed measurements
	Q       float64 // the policy's latency quantile (ms) over successful ones; NaN when none

	// The same over the window's recent end (the last FastWindow). A
	// member much worse there than over the whole window is judged by its
	// recent figures (package comment, 1), so degradations show within a
	// round or two while recoveries take the whole window. Zero samples:
	// none, or no fast window.
	RecentSamples, RecentErrors uint64
	RecentQ                     float64
}

// FeedVersion is the version of the Feed's JSON shape.
const FeedVersion = 1

// Feed is the body of GET /v1/steering: every pool's latest decision.
type Feed struct {
	Version int         `json:"version"` // FeedVersion; bumped only for changes that break readers
	Pools   []*Decision `json:"pools"`
}

// Decision is one pool's weights in every published scope, as routers get
// them. Exporters render it; addresses and CNAMEs come from the policy.
type Decision struct {
	Pool       string          `json:"pool"`
	DNSName    string          `json:"dns_name"`
	ComputedAt time.Time       `json:"computed_at"`
	TTL        int             `json:"ttl"`    // seconds, for DNS answers
	Scopes     []ScopeDecision `json:"scopes"` // global first, then by scope string
}

// Scope returns the decision for scope s, if published.
func (d *Decision) Scope(s string) (*ScopeDecision, bool) {
	for i := range d.Scopes {
		if d.Scopes[i].Scope == s {
			return &d.Scopes[i], true
		}
	}
	return nil, false
}

// Rules that can decide a scope's weights.
const (
	RuleScore    = "score"     // exp(-(score-best)/τ) with floors, from the scope's own figures
	RuleFallback = "fallback"  // the same from an ancestor's figures: the scope had too little data
	RuleHome     = "home"      // pinned to the scope's home member
	RuleHold     = "hold"      // hysteresis or min dwell kept the published weights
	RuleFailOpen = "fail-open" // no data or every member down: last weights kept
)

// ScopeDecision is one scope's published weights.
type ScopeDecision struct {
	Scope string `json:"scope"` // "global", "region:eu", "country:BR", "country:BR/asn:28573"
	// Fallback lists the scopes walked because they lacked data, starting
	// with this one; the figures come from FiguresFrom. Empty when the
	// scope had data of its own.
	Fallback    []string         `json:"fallback,omitempty"`
	FiguresFrom string           `json:"figures_from"`
	Rule        string           `json:"rule"`
	Changed     bool             `json:"changed"`    // weights differ from the previous decision
	ChangedAt   time.Time        `json:"changed_at"` // when the published weights last changed
	Members     []MemberDecision `json:"members"`    // in policy order
}

// Member states.
const (
	StateUp       = "up"
	StateDegraded = "degraded" // not down, but worse than the best by HomeReleaseMs, erring, or ramping back
	StateDown     = "down"
)

// MemberDecision is one member's weight in a scope and the figures behind it.
// Figures that do not exist (no successful measurement) are NaN in Go and
// absent in JSON.
type MemberDecision struct {
	Name             string  `json:"name"`
	Weight           int     `json:"weight"` // 0–100; a scope's weights sum to exactly 100
	State            string  `json:"state"`
	ScoreMs          float64 `json:"score_ms"` // smoothed score
	RawMs            float64 `json:"raw_ms"`   // this window's score before smoothing
	Q                float64 `json:"q_ms"`     // blended latency quantile
	ErrorRate        float64 `json:"error_rate"`
	Samples          uint64  `json:"samples"`
	RUMSamples       uint64  `json:"rum_samples"`
	SyntheticSamples uint64  `json:"synthetic_samples"`
	Reason           string  `json:"reason"`
}

// memberJSON is MemberDecision with NaN-able figures as pointers.
type memberJSON struct {
	Name             string   `json:"name"`
	Weight           int      `json:"weight"`
	State            string   `json:"state"`
	ScoreMs          *float64 `json:"score_ms,omitempty"`
	RawMs            *float64 `json:"raw_ms,omitempty"`
	Q                *float64 `json:"q_ms,omitempty"`
	ErrorRate        float64  `json:"error_rate"`
	Samples          uint64   `json:"samples"`
	RUMSamples       uint64   `json:"rum_samples"`
	SyntheticSamples uint64   `json:"synthetic_samples"`
	Reason           string   `json:"reason"`
}

// MarshalJSON leaves out NaN figures, which JSON cannot carry.
func (m MemberDecision) MarshalJSON() ([]byte, error) {
	return json.Marshal(memberJSON{
		Name: m.Name, Weight: m.Weight, State: m.State,
		ScoreMs: finite(m.ScoreMs), RawMs: finite(m.RawMs), Q: finite(m.Q),
		ErrorRate: m.ErrorRate, Samples: m.Samples, RUMSamples: m.RUMSamples,
		SyntheticSamples: m.SyntheticSamples, Reason: m.Reason,
	})
}

// UnmarshalJSON reads absent figures back as NaN.
func (m *MemberDecision) UnmarshalJSON(b []byte) error {
	var j memberJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*m = MemberDecision{
		Name: j.Name, Weight: j.Weight, State: j.State,
		ScoreMs: orNaN(j.ScoreMs), RawMs: orNaN(j.RawMs), Q: orNaN(j.Q),
		ErrorRate: j.ErrorRate, Samples: j.Samples, RUMSamples: j.RUMSamples,
		SyntheticSamples: j.SyntheticSamples, Reason: j.Reason,
	}
	return nil
}

func finite(f float64) *float64 {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil
	}
	return &f
}

func orNaN(f *float64) float64 {
	if f == nil {
		return math.NaN()
	}
	return *f
}

// State is what the engine remembers between decisions, per pool, scope
// string and member name. Callers store it (JSON or one row per member)
// and hand it back to NewEngine after a restart to carry on without a jump.
type State struct {
	Pools map[string]map[string]map[string]MemberState `json:"pools"`
}

// MemberState is one member's memory in one scope. The figures (Smoothed,
// State, streaks) are the scope's own while it has enough data and its
// parent's while it falls back; Weight and ChangedAt are what was last
// published for the scope.
type MemberState struct {
	Smoothed   float64   // EWMA score in ms; NaN before the first figure
	Weight     int       // last published weight, 0–100
	State      string    // up, degraded or down
	BadStreak  int       // consecutive rounds at or above down_error_rate
	GoodStreak int       // consecutive rounds below it, counted up to where a ramp ends
	ChangedAt  time.Time // the scope's last published change; zero if never published
}

type memberStateJSON struct {
	Smoothed   *float64  `json:"smoothed_ms,omitempty"`
	Weight     int       `json:"weight"`
	State      string    `json:"state"`
	BadStreak  int       `json:"bad_streak"`
	GoodStreak int       `json:"good_streak"`
	ChangedAt  time.Time `json:"changed_at"`
}

// MarshalJSON leaves out a NaN Smoothed, which JSON cannot carry.
func (m MemberState) MarshalJSON() ([]byte, error) {
	return json.Marshal(memberStateJSON{finite(m.Smoothed), m.Weight, m.State, m.BadStreak, m.GoodStreak, m.ChangedAt})
}

// UnmarshalJSON reads an absent Smoothed back as NaN.
func (m *MemberState) UnmarshalJSON(b []byte) error {
	var j memberStateJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	*m = MemberState{orNaN(j.Smoothed), j.Weight, j.State, j.BadStreak, j.GoodStreak, j.ChangedAt}
	return nil
}

// clone is a deep copy, so callers never share maps with the engine.
func (s *State) clone() *State {
	c := &State{Pools: map[string]map[string]map[string]MemberState{}}
	if s == nil {
		return c
	}
	for pool, scopes := range s.Pools {
		cs := make(map[string]map[string]MemberState, len(scopes))
		for sc, members := range scopes {
			cm := make(map[string]MemberState, len(members))
			for m, ms := range members {
				cm[m] = ms
			}
			cs[sc] = cm
		}
		c.Pools[pool] = cs
	}
	return c
}

// decide makes one published scope's decision (package comment, 7 to 10).
func (r *round) decide(sc Scope, figs map[Scope][]figure) ScopeDecision {
	var chain []string
	from := sc
	for figs[from] == nil && from != Global {
		chain = append(chain, from.String())
		from = from.Parent(r.policy)
	}
	f, noData := figs[from], figs[from] == nil
	if noData {
		f = r.lastFigures(sc)
	}
	prev, hasPrev, changedAt := r.previous(sc)
	w, rule, why, ramping := r.plan(sc, f, prev, hasPrev, noData, len(chain) > 0)
	if hasPrev && rule != RuleFailOpen && !slices.Equal(w, prev) && !wentDown(f, prev) {
		if held := r.hold(w, prev, f, ramping, changedAt); held != "" {
			for i := range why {
				if f[i].ms.State != StateDown {
					why[i] = fmt.Sprintf("held at %d (would be %d): %s", prev[i], w[i], held)
				}
			}
			w, rule = prev, RuleHold
		}
	}
	changed := !hasPrev || !slices.Equal(w, prev)
	if changed {
		changedAt = r.now
	}
	r.save(sc, func(m int, ms *MemberState) {
		if !noData && from != sc { // a fallback scope carries its parent's figures
			ms.Smoothed, ms.State, ms.BadStreak, ms.GoodStreak = f[m].ms.Smoothed, f[m].ms.State, f[m].ms.BadStreak, f[m].ms.GoodStreak
		}
		ms.Weight, ms.ChangedAt = w[m], changedAt
	})
	sd := ScopeDecision{Scope: sc.String(), Fallback: chain, FiguresFrom: from.String(), Rule: rule, Changed: changed, ChangedAt: changedAt}
	for m, mem := range r.pool.Members {
		fm := f[m]
		sd.Members = append(sd.Members, MemberDecision{
			Name: mem.Name, Weight: w[m], State: fm.ms.State, ScoreMs: fm.ms.Smoothed, RawMs: fm.raw,
			Q: fm.q, ErrorRate: fm.errRate, Samples: fm.samples, RUMSamples: fm.rum, SyntheticSamples: fm.syn,
			Reason: why[m],
		})
	}
	return sd
}

// previous returns the scope's last published weights, whether there is a
// complete set of them, and when they last changed.
func (r *round) previous(sc Scope) (w []int, ok bool, at time.Time) {
	st := r.state[sc.String()]
	w, ok = make([]int, len(r.pool.Members)), st != nil
	sum := 0
	for m, mem := range r.pool.Members {
		ms, found := st[mem.Name]
		if !found || ms.ChangedAt.IsZero() {
			ok = false
		}
		w[m], sum = ms.Weight, sum+ms.Weight
		if ms.ChangedAt.After(at) {
			at = ms.ChangedAt
		}
	}
	return w, ok && sum == 100, at
}

// lastFigures shows what the state remembers when no scope has data.
func (r *round) lastFigures(sc Scope) []figure {
	f := make([]figure, len(r.pool.Members))
	for m, mem := range r.pool.Members {
		f[m] = figure{blend: blend{q: math.NaN()}, raw: math.NaN(), ms: r.k.stateOr(r.state[sc.String()], mem.Name)}
	}
	return f
}

// hold says why the new weights must wait, or "" to publish them. A move
// of hysteresis points, a weight tripling or falling to a third (which
// includes going to or from 0) by at least 2 points, or a member ramping
// back passes the hysteresis; then min_dwell must have passed since the
// last change.
//
// Bad news does not wait for the dwell: a degraded member (behind the best
// by home_release_ms, or erring) losing at least the hysteresis is
// published at once, as a member going down is. Gains still wait.
func (r *round) hold(w, prev []int, f []figure, ramping bool, changedAt time.Time) string {
	h := r.k.hysteresis(len(w))
	move, big, shed := 0, ramping, false
	for i := range w {
		lo, hi := min(w[i], prev[i]), max(w[i], prev[i])
		move, big = max(move, hi-lo), big || hi >= 3*lo && hi-lo >= 2 // 0↔1 is rounding noise
		shed = shed || f[i].ms.State == StateDegraded && prev[i]-w[i] >= h
	}
	switch until := changedAt.Add(r.k.MinDwell); {
	case move < h && !big:
		return fmt.Sprintf("largest change %d < hysteresis %d", move, h)
	case r.now.Before(until) && !shed:
		return "min dwell until " + until.UTC().Format(time.TimeOnly)
	}
	return ""
}

// hysteresis is hysteresis_percent capped at 80% of an average member's
// share above the floor, so that in a pool of many members one can still
// be moved from an average weight down to the floor.
func (k Knobs) hysteresis(members int) int {
	return min(k.HysteresisPercent, 4*(100-members*k.FloorPercent)/(5*members))
}

// wentDown says whether a member with published weight is now down, which
// is published at once.
func wentDown(f []figure, prev []int) bool {
	for i := range f {
		if f[i].ms.State == StateDown && prev[i] > 0 {
			return true
		}
	}
	return false
}

// plan computes the weights the rules want before hysteresis and dwell,
// and whether a member coming back gains weight (its step passes the
// hysteresis).
func (r *round) plan(sc Scope, f []figure, prev []int, hasPrev, noData, fellBack bool) ([]int, string, []string, bool) {
	n := len(f)
	if noData || allDown(f) {
		why := "fail-open: no data in this window"
		if !noData {
			why = "fail-open: every member is down"
		}
		w := slices.Clone(prev)
		if hasPrev {
			why += ", last weights kept"
		} else {
			w, why = roundShares(make([]float64, n)), why+", equal weights (none published before)"
		}
		return w, RuleFailOpen, slices.Repeat([]string{why}, n), false
	}
	if h := r.home(sc); h >= 0 && f[h].ms.State == StateUp {
		w, why := r.pin(sc, h, f)
		return w, RuleHome, why, false
	}
	shares := r.k.expShares(f)
	capped := r.k.ramp(shares, f, prev, hasPrev)
	w := roundShares(shares)
	rule := RuleScore
	if fellBack {
		rule = RuleFallback
	}
	// A member coming back passes hysteresis while it gains: each step of
	// its ramp is published. Its other moves (noise while the failures
	// leave the window) wait for the hysteresis like anyone's.
	rising := false
	for i := range f {
		rising = rising || (capped[i] || r.k.recovering(f[i].ms)) && hasPrev && w[i] > prev[i]
	}
	return w, rule, r.scoreWhy(f, w, capped, prev), rising
}

func allDown(f []figure) bool {
	return !slices.ContainsFunc(f, func(x figure) bool { return x.ms.State != StateDown })
}

// home is the index of the member sc is pinned to, or -1.
func (r *round) home(sc Scope) int {
	name, ok := r.pool.Home[sc.String()]
	if !ok {
		return -1
	}
	return slices.IndexFunc(r.pool.Members, func(m Member) bool { return m.Name == name })
}

// pin gives the home member everything but the other members' floors.
func (r *round) pin(sc Scope, h int, f []figure) ([]int, []string) {
	k := r.k
	w, why := make([]int, len(f)), make([]string, len(f))
	w[h] = 100
	for i := range f {
		switch {
		case i == h:
			why[i] = fmt.Sprintf("home of %s: pinned while up", sc)
		case f[i].ms.State == StateDown:
			why[i] = downWhy(f[i], k)
		default:
			w[i], w[h] = k.FloorPercent, w[h]-k.FloorPercent
			why[i] = fmt.Sprintf("floor %d%%: %s is pinned to %s", k.FloorPercent, sc, r.pool.Members[h].Name)
		}
	}
	return w, why
}

// expShares is the score rule in percent: floors plus exp(-(S-best)/τ).
func (k Knobs) expShares(f []figure) []float64 {
	best := bestScore(f)
	e, shares := make([]float64, len(f)), make([]float64, len(f))
	sum, n := 0.0, 0
	for i := range f {
		if f[i].ms.State == StateDown {
			continue
		}
		n++
		if s := f[i].ms.Smoothed; !math.IsNaN(s) {
			e[i] = math.Exp(-(s - best) / k.TauMs)
			sum += e[i]
		}
	}
	free := float64(100 - n*k.FloorPercent)
	for i := range f {
		switch {
		case f[i].ms.State == StateDown:
		case sum > 0:
			shares[i] = float64(k.FloorPercent) + free*e[i]/sum
		default:
			shares[i] = float64(k.FloorPercent) + free/float64(n)
		}
	}
	return shares
}

// ramp caps degraded members at their last published weight (at least the
// floor) plus ramp_percent and hands the excess to the others.
func (k Knobs) ramp(shares []float64, f []figure, prev []int, hasPrev bool) []bool {
	capped := make([]bool, len(shares))
	if !hasPrev {
		return capped
	}
	for range shares { // each pass caps at least one more member, or stops
		excess, room := 0.0, 0.0
		for i := range shares {
			if lim := float64(max(prev[i], k.FloorPercent) + k.RampPercent); f[i].ms.State == StateDegraded && shares[i] > lim {
				excess, shares[i], capped[i] = excess+shares[i]-lim, lim, true
			}
		}
		for i := range shares {
			if !capped[i] {
				room += shares[i]
			}
		}
		if excess == 0 || room == 0 {
			break
		}
		for i := range shares {
			if !capped[i] {
				shares[i] += excess * shares[i] / room
			}
		}
	}
	return capped
}

// roundShares turns shares into integers summing to exactly 100 by largest
// remainder (ties to the earlier member); all-zero shares become equal.
func roundShares(shares []float64) []int {
	total := 0.0
	for _, s := range shares {
		total += s
	}
	if !(total > 0) {
		shares = slices.Repeat([]float64{1}, len(shares))
		total = float64(len(shares))
	}
	w, rem, left := make([]int, len(shares)), make([]float64, len(shares)), 100
	var order []int
	for i, s := range shares {
		x := s * 100 / total
		w[i] = int(x)
		rem[i], left = x-float64(w[i]), left-w[i]
		if s > 0 {
			order = append(order, i)
		}
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmpFloat(rem[b], rem[a]) })
	for j := 0; j < left && len(order) > 0; j++ {
		w[order[j%len(order)]]++
	}
	return w
}

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// scoreWhy explains each member's weight under the score rule.
func (r *round) scoreWhy(f []figure, w []int, capped []bool, prev []int) []string {
	k, best := r.k, bestScore(f)
	why := make([]string, len(f))
	for i := range f {
		s := f[i].ms.Smoothed
		switch {
		case f[i].ms.State == StateDown:
			why[i] = downWhy(f[i], k)
		case math.IsNaN(s):
			why[i] = fmt.Sprintf("no data yet: floor %d%%", k.FloorPercent)
		case capped[i]:
			why[i] = fmt.Sprintf("ramping back: capped at %d (last %d + %d a round)", w[i], max(prev[i], k.FloorPercent), k.RampPercent)
		case s == best:
			why[i] = fmt.Sprintf("best: score %s ms (%s %s ms, %.1f%% errors)", fmtMs(s), quantileLabel(k.Quantile), fmtMs(f[i].q), 100*f[i].errRate)
		default:
			why[i] = fmt.Sprintf("score %s ms vs best %s ms: exp(-(%s-%s)/%s)", fmtMs(s), fmtMs(best), fmtMs(s), fmtMs(best), fmtMs(k.TauMs))
			if w[i] <= k.FloorPercent {
				why[i] += fmt.Sprintf(", floor %d%%", k.FloorPercent)
			}
		}
		if !f[i].hasData && !math.IsNaN(s) && f[i].ms.State != StateDown {
			why[i] = "no data this window, last score kept; " + why[i]
		}
	}
	return why
}

func downWhy(f figure, k Knobs) string {
	if f.ms.BadStreak == 0 {
		return fmt.Sprintf("down: good for %d of the %d rounds needed to come back", f.ms.GoodStreak, k.UpAfter)
	}
	return fmt.Sprintf("down: %d of %d failed (%.0f%% errors) for %d rounds", f.failed, f.samples, 100*f.errRate, f.ms.BadStreak)
}

// quantileLabel writes 0.75 as p75 and 0.995 as p99.5.
func quantileLabel(q float64) string {
	return "p" + strconv.FormatFloat(math.Round(q*1000)/10, 'f', -1, 64)
}

// fmtMs writes milliseconds for people: whole above 10, one decimal below.
func fmtMs(v float64) string {
	if math.IsNaN(v) {
		return "-"
	}
	if math.Abs(v) < 10 {
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return strconv.FormatFloat(v, 'f', 0, 64)
}
