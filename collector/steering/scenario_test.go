package steering_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/meridian-net/meridian/collector/steering"
	"github.com/meridian-net/meridian/collector/store"
	"github.com/meridian-net/meridian/internal/chtest"
)

// The scenarios below run the whole data path on the 18.16 test server:
// generated measurements go into rum_cdn and results, Runner.Step reads the
// stored policy, the agents' countries and the pool's one stats query,
// decides and publishes, and every assertion is made on what Latest reads
// back from steering_history, the decision routers get.
//
// Time is simulated: round i runs at t0 + i×15s and first inserts that
// round's measurements, stamped in [now-15s, now), so the query's window
// [now-window, now) holds exactly the last window/15s rounds. Before the
// first round the window is filled, as for a runner started on a database
// that already has data. Every round draws 200×15s/window samples per
// country, member and source, so a window holds the 200 per member and
// source the default knobs were tuned on (policy.go, DefaultKnobs).

const roundEvery = 15 * time.Second

var scenarioMembers = []string{"cdn-a", "cdn-b", "cdn-c"}

// scenarioNets are the networks measured every round, one per country;
// each country also has scenarioAgents agents.
var scenarioNets = []scenarioNet{{"BR", 28573, 0, true, 1}, {"US", 7922, 0, true, 1}, {"DE", 3320, 0, true, 1}}

const scenarioAgents = 3

// scenarioPolicy is the policy of every scenario: the default knobs, and
// extra keys for the pool.
func scenarioPolicy(extra string) string {
	return `
regions: {sa: [BR, AR]}
pools:
  - name: www
    dns_name: www.shop.example.
    members:
      - {name: cdn-a, addresses: [192.0.2.10]}
      - {name: cdn-b, addresses: [192.0.2.20]}
      - {name: cdn-c, cname: shop.cdn-c.example.}
` + extra
}

// latency is one member's measurements in one country: extraMs plus a
// lognormal around medianMs (σ 0.5, so p75 ≈ 1.4 × median and a window's
// p75 varies by about 5%), and a share of failures.
type latency struct{ medianMs, extraMs, errRate float64 }

// scenarioNet is a network RUM beacons come from. perRound 0 is the sim's
// full rate; with agents, the country's agents send as many results.
// oneIn > 1 sends only every oneIn-th round.
type scenarioNet struct {
	cc       string
	asn      uint32
	perRound int
	agents   bool
	oneIn    int
}

// sim is one scenario: a fresh database, a Runner and simulated time.
type sim struct {
	t        *testing.T
	ctx      context.Context
	conn     driver.Conn
	sql      *chtest.Engine
	runner   *steering.Runner
	knobs    steering.Knobs
	rng      *rand.Rand
	t0       time.Time
	perRound int
	world    map[string]map[string]latency // country → member
	nets     []scenarioNet
	stopped  bool // data stopped: rounds insert nothing
	next     int  // the next round
	filled   int  // the first round whose measurements are not stored yet
	rows     int  // rows drawn, for unique page views and ids
}

// newSim starts a scenario on a fresh database with the policy's window
// and extra pool keys, in a calm world: cdn-a p75 ≈ 140 ms, cdn-b 154,
// cdn-c 182 everywhere, 0.5% errors.
func newSim(t *testing.T, seed uint64, policyExtra string) *sim {
	t.Helper()
	o, conn := chtest.New(t)
	ctx := context.Background()
	p, _, err := steering.SetPolicy(ctx, conn, "policy.yml", []byte(scenarioPolicy(policyExtra)))
	if err != nil {
		t.Fatal(err)
	}
	s := &sim{
		t: t, ctx: ctx, conn: conn, sql: chtest.Server(t, o.Database), knobs: p.Pools[0].Knobs(),
		rng: rand.New(rand.NewPCG(seed, 7)), t0: time.Now().UTC().Truncate(time.Second).Add(-2 * time.Hour),
		perRound: int(200 * roundEvery / p.Pools[0].Knobs().Window), world: map[string]map[string]latency{}, nets: slices.Clone(scenarioNets),
	}
	s.filled = 1 - s.windowRounds() // the first round's window is full
	for _, n := range s.nets {
		s.world[n.cc] = map[string]latency{"cdn-a": {100, 0, 0.005}, "cdn-b": {110, 0, 0.005}, "cdn-c": {130, 0, 0.005}}
		for j := range scenarioAgents {
			if err := store.SetAgentCountry(ctx, conn, agentName(n.cc, j), n.cc); err != nil {
				t.Fatal(err)
			}
		}
	}
	s.runner = &steering.Runner{Conn: conn, AgentCountry: func(ctx context.Context) (map[string]string, error) {
		return store.AgentCountries(ctx, conn)
	}}
	return s
}

func agentName(cc string, j int) string { return fmt.Sprintf("%s-%d", strings.ToLower(cc), j+1) }

// unchanged fails the test if rounds ahead were stored in a world that is
// about to change.
func (s *sim) unchanged() {
	s.t.Helper()
	if s.filled > s.next {
		s.t.Fatalf("the world changes at round %d, but rounds up to %d were stored already", s.next, s.filled-1)
	}
}

// stop stops the measurements from the next round on.
func (s *sim) stop() { s.t.Helper(); s.unchanged(); s.stopped = true }

// windowRounds is how many rounds of measurements one window holds.
func (s *sim) windowRounds() int { return int(s.knobs.Window / roundEvery) }

func (s *sim) at(i int) time.Time { return s.t0.Add(time.Duration(i) * roundEvery) }

// ahead stores the next n rounds' measurements now: the world must not
// change until they have run.
func (s *sim) ahead(n int) { s.t.Helper(); s.fill(s.next + n) }

// set gives member m latency l in countries ccs from the next round on.
func (s *sim) set(m string, l latency, ccs ...string) {
	s.t.Helper()
	s.unchanged()
	for _, cc := range ccs {
		s.world[cc][m] = l
	}
}

// draw is one measurement: its latency, or ok false for a failure.
func (s *sim) draw(l latency) (ms float64, ok bool) {
	if s.rng.Float64() < l.errRate {
		return 0, false
	}
	return l.extraMs + l.medianMs*math.Exp(0.5*s.rng.NormFloat64()), true
}

// fill stores the measurements of every round before upto not stored yet,
// one INSERT per table for up to fillChunk rounds: each INSERT writes a
// part per table (and the results_1m view), which costs far more than its
// rows. Rows stamped after a round's now are outside its window, so rounds
// can be stored ahead while the world stays as it is (see set).
func (s *sim) fill(upto int) {
	s.t.Helper()
	for s.filled < upto {
		to := min(upto, s.filled+fillChunk)
		var rum, res []string
		for i := s.filled; i < to && !s.stopped; i++ {
			s.rowsOf(i, &rum, &res)
		}
		for _, q := range []struct {
			head string
			rows []string
		}{
			{"INSERT INTO rum_cdn (ts, site, pv, country, asn, kind, cdn, ttfb_ms, error, status, is_bot) VALUES ", rum},
			{"INSERT INTO results (ts, id, agent, check_name, kind, target, ok, ttfb_ms, total_ms) VALUES ", res},
		} {
			if len(q.rows) == 0 {
				continue
			}
			if _, err := s.sql.Exec(q.head + strings.Join(q.rows, ", ")); err != nil {
				s.t.Fatalf("rounds %d to %d: cannot insert measurements: %v", s.filled, to-1, err)
			}
		}
		s.filled = to
	}
}

const fillChunk = 40

// rowsOf draws round i's measurements, stamped in [now-15s, now), as
// VALUES rows of rum_cdn and results.
func (s *sim) rowsOf(i int, rum, res *[]string) {
	end := s.at(i)
	for _, n := range s.nets {
		if i%n.oneIn != 0 {
			continue
		}
		per := cmp0(n.perRound, s.perRound)
		for _, m := range scenarioMembers {
			l := s.world[n.cc][m]
			for j := range per {
				ts := end.Add(-roundEvery + time.Duration(j)*roundEvery/time.Duration(per)).Unix()
				s.rows++
				if ms, ok := s.draw(l); ok {
					*rum = append(*rum, fmt.Sprintf("('%d', 'shop', 'pv-%d', '%s', %d, 'probe_cold', '%s', %.1f, 0, 200, 0)", ts, s.rows, n.cc, n.asn, m, ms))
				} else {
					*rum = append(*rum, fmt.Sprintf("('%d', 'shop', 'pv-%d', '%s', %d, 'probe_cold', '%s', NULL, 1, 0, 0)", ts, s.rows, n.cc, n.asn, m))
				}
				if !n.agents {
					continue
				}
				id := fmt.Sprintf("00000000-0000-4000-8000-%012d", s.rows)
				agent := agentName(n.cc, j%scenarioAgents)
				if ms, ok := s.draw(l); ok {
					*res = append(*res, fmt.Sprintf("('%d', '%s', '%s', '%s', 'http', 'https://www.shop.example/', 1, %.1f, %.1f)", ts, id, agent, m, ms, ms+20))
				} else {
					*res = append(*res, fmt.Sprintf("('%d', '%s', '%s', '%s', 'http', 'https://www.shop.example/', 0, NULL, NULL)", ts, id, agent, m))
				}
			}
		}
	}
}

func cmp0(a, b int) int {
	if a != 0 {
		return a
	}
	return b
}

// step runs the next round: its measurements, Runner.Step, and Latest,
// which must read back what was published. It returns the read-back
// decision after checking that every scope's weights sum to 100.
func (s *sim) step() *steering.Decision {
	s.t.Helper()
	i := s.next
	s.next++
	s.fill(i + 1)
	ds, err := s.runner.Step(s.ctx, s.at(i))
	if err != nil || len(ds) != 1 {
		s.t.Fatalf("round %d: step: %v (%d decisions)", i, err, len(ds))
	}
	last, err := steering.Latest(s.ctx, s.conn)
	if err != nil {
		s.t.Fatalf("round %d: %v", i, err)
	}
	d := last.Decisions["www"]
	if got, want := asJSON(s.t, d), asJSON(s.t, ds[0]); got != want {
		s.t.Fatalf("round %d: Latest reads back\n%s\nwant the published\n%s", i, got, want)
	}
	checkDecision(s.t, i, d)
	return d
}

// steps runs n rounds, their measurements stored at once, and returns the
// last decision.
func (s *sim) steps(n int) *steering.Decision {
	s.t.Helper()
	s.ahead(n)
	var d *steering.Decision
	for range n {
		d = s.step()
	}
	return d
}

// checkDecision is the invariant every published decision keeps.
func checkDecision(t *testing.T, i int, d *steering.Decision) {
	t.Helper()
	for _, sd := range d.Scopes {
		sum := 0
		for _, m := range sd.Members {
			if m.Weight < 0 || m.Weight > 100 || m.State == steering.StateDown && m.Weight != 0 && sd.Rule != steering.RuleFailOpen {
				t.Fatalf("round %d: %s %s: weight %d state %s rule %s", i, sd.Scope, m.Name, m.Weight, m.State, sd.Rule)
			}
			sum += m.Weight
		}
		if sum != 100 {
			t.Fatalf("round %d: %s: weights sum to %d, want 100: %v", i, sd.Scope, sum, weightsOf(sd))
		}
	}
}

func asJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func scopeOf(t *testing.T, d *steering.Decision, scope string) steering.ScopeDecision {
	t.Helper()
	sd, ok := d.Scope(scope)
	if !ok {
		t.Fatalf("no decision for %s at %s", scope, d.ComputedAt.Format(time.TimeOnly))
	}
	return *sd
}

func weightsOf(sd steering.ScopeDecision) []int {
	var w []int
	for _, m := range sd.Members {
		w = append(w, m.Weight)
	}
	return w
}

func memberOf(t *testing.T, d *steering.Decision, scope, name string) steering.MemberDecision {
	t.Helper()
	sd := scopeOf(t, d, scope)
	i := slices.IndexFunc(sd.Members, func(m steering.MemberDecision) bool { return m.Name == name })
	if i < 0 {
		t.Fatalf("%s: no member %s", scope, name)
	}
	return sd.Members[i]
}

// scopeWeights maps every published scope to its weights.
func scopeWeights(d *steering.Decision) map[string][]int {
	out := map[string][]int{}
	for i := range d.Scopes {
		out[d.Scopes[i].Scope] = weightsOf(d.Scopes[i])
	}
	return out
}

// fastRounds is how many rounds the window the engine judges a
// degradation by holds: the fast window where it gets fast_min_samples per
// member and source in a country at this sim's rate, else the whole window.
func (s *sim) fastRounds() int {
	k := s.knobs
	n := int(k.FastWindow / roundEvery)
	if k.FastWindow <= 0 || uint64(n*s.perRound) < max(k.FastMinSamples, k.MinSamples) {
		return s.windowRounds()
	}
	return n
}

// TestScenarioDegradation: cdn-a gets 200 ms slower in BR only. It loses
// most of its weight in country:BR (and BR's ASN) within the first bar and
// is below 15 within the second, and stays there, while US and DE,
// countries and ASNs, publish nothing new; global and region:sa, which
// pool BR's measurements, may only lower cdn-a.
//
// The bars, in rounds after the change. A window's p75 moves to the slow
// distribution once about a quarter of its samples are slow, and one more
// recomputation (EWMA α 0.7) brings the smoothed score there: ⌈rounds/4⌉ +
// 1 for the window the engine judges by. At 200 samples per window (what
// the knobs were tuned on) the fast window never has fast_min_samples, so
// that is the 5m window: 6 rounds for both bars. At 1000 per window
// ("busy") the fast window (30 s, 2 rounds) is read: 2 rounds, but the
// first may publish only part of the fall, and min_dwell (30 s) then holds
// the rest for a round, so at most half within 2, below 15 within 3.
func TestScenarioDegradation(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		perWindow int
	}{{"default", 200}, {"busy", 1000}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newSim(t, 1, "")
			s.perRound = tc.perWindow * int(roundEvery) / int(s.knobs.Window)
			halfBy, below15By := (s.fastRounds()+3)/4+1, (s.fastRounds()+3)/4+1
			if s.fastRounds() < s.windowRounds() {
				below15By++ // a partial first fall, then min_dwell
			}
			before := scopeWeights(s.steps(25))
			s.set("cdn-a", latency{100, 200, 0.005}, "BR")
			s.ahead(below15By + 4)
			var br, global []int
			half, below15 := 0, 0
			for r := 1; r <= below15By+4; r++ {
				d := s.step()
				br, global = append(br, memberOf(t, d, "country:BR", "cdn-a").Weight), append(global, memberOf(t, d, "global", "cdn-a").Weight)
				if w := br[r-1]; half == 0 && 2*w <= before["country:BR"][0] {
					half = r
				}
				if w := br[r-1]; below15 == 0 && w < 15 {
					below15 = r
				}
				for _, sc := range []string{"country:US", "country:US/asn:7922", "country:DE", "country:DE/asn:3320"} {
					if sd := scopeOf(t, d, sc); sd.Changed || !slices.Equal(weightsOf(sd), before[sc]) {
						t.Errorf("round %d: %s: got %v changed=%v, want %v unchanged", r, sc, weightsOf(sd), sd.Changed, before[sc])
					}
				}
				for _, sc := range []string{"global", "region:sa"} {
					if got := memberOf(t, d, sc, "cdn-a").Weight; got > before[sc][0] {
						t.Errorf("round %d: %s: cdn-a got %d, want at most its %d before", r, sc, got, before[sc][0])
					}
				}
				if r >= below15By {
					for _, sc := range []string{"country:BR", "country:BR/asn:28573"} {
						if m := memberOf(t, d, sc, "cdn-a"); m.Weight >= 15 {
							t.Errorf("round %d: %s: cdn-a got %d (%s), want < 15", r, sc, m.Weight, m.Reason)
						}
					}
				}
			}
			t.Logf("cdn-a before: country:BR %d, global %d; per round after: country:BR %v, global %v; half gone after %d rounds (bar %d), below 15 after %d (bar %d)",
				before["country:BR"][0], before["global"][0], br, global, half, halfBy, below15, below15By)
			if half == 0 || half > halfBy || below15 == 0 || below15 > below15By {
				t.Errorf("cdn-a in country:BR: got %v from %d, want at most half within %d rounds and below 15 within %d", br, before["country:BR"][0], halfBy, below15By)
			}
		})
	}
}

// TestScenarioFailureAndRamp: cdn-b, the fastest, fails everything in every
// country. It is down (weight 0, state down) in every scope within the bar,
// the others sharing 100. The bar is "window plus down_after" tightened to
// what the figures allow: the error rate of the window judged by (the 5m
// one at this rate, see fastRounds) reaches down_error_rate (50%) once
// half of it holds failures, then down_after bad rounds: rounds/2 +
// down_after. When cdn-b recovers, the failures leave the 5m window one
// round at a time, and it climbs back over several published steps of at
// most ramp_percent, not in one jump to its old share.
func TestScenarioFailureAndRamp(t *testing.T) {
	t.Parallel()
	s := newSim(t, 2, "")
	all := []string{"BR", "US", "DE"}
	s.set("cdn-b", latency{80, 0, 0.005}, all...)
	old := memberOf(t, s.steps(10), "global", "cdn-b").Weight
	k := s.knobs

	s.set("cdn-b", latency{80, 0, 1}, all...)
	bar, downAt := s.fastRounds()/2+k.DownAfter, 0
	var falling []int
	for r := 1; r <= bar && downAt == 0; r++ {
		d := s.step()
		falling = append(falling, memberOf(t, d, "global", "cdn-b").Weight)
		if down(d, "cdn-b") {
			downAt = r
		}
	}
	t.Logf("cdn-b failing: global weights %v (was %d), down in every scope after %d rounds (bar %d)", falling, old, downAt, bar)
	if downAt == 0 {
		t.Fatalf("cdn-b not down in every scope after %d rounds of failures", bar)
	}
	s.ahead(3)
	for r := range 3 {
		if d := s.step(); !down(d, "cdn-b") {
			t.Errorf("round %d after down: cdn-b came back while still failing", r+1)
		}
	}

	s.set("cdn-b", latency{80, 0, 0.005}, all...)
	var ramp, rampBR []int
	s.ahead(s.windowRounds() + 15)
	for range s.windowRounds() + 15 {
		d := s.step()
		ramp, rampBR = append(ramp, memberOf(t, d, "global", "cdn-b").Weight), append(rampBR, memberOf(t, d, "country:BR", "cdn-b").Weight)
	}
	t.Logf("cdn-b recovering, per round: global %v, country:BR %v (old share %d)", ramp, rampBR, old)
	for sc, seq := range map[string][]int{"global": ramp, "country:BR": rampBR} {
		checkRamp(t, sc, seq, old, k)
	}
}

// down says whether member is down with weight 0 in every published scope.
func down(d *steering.Decision, member string) bool {
	for _, sd := range d.Scopes {
		for _, m := range sd.Members {
			if m.Name == member && (m.State != steering.StateDown || m.Weight != 0) {
				return false
			}
		}
	}
	return true
}

// checkRamp: a member back from down climbs in steps of at most
// ramp_percent, the first to at most floor + ramp_percent, through at
// least two intermediate weights, to within the hysteresis of its old
// share.
func checkRamp(t *testing.T, scope string, seq []int, old int, k steering.Knobs) {
	t.Helper()
	var rises []int
	prev := 0
	for _, w := range seq {
		switch {
		case w < prev:
			t.Errorf("%s: weights %v fall from %d to %d while coming back", scope, seq, prev, w)
		case w > prev:
			if limit := max(prev, k.FloorPercent) + k.RampPercent; w > limit {
				t.Errorf("%s: weights %v jump from %d to %d, want at most %d", scope, seq, prev, w, limit)
			}
			rises = append(rises, w)
		}
		prev = w
	}
	if len(rises) < 3 || prev < old-k.HysteresisPercent {
		t.Errorf("%s: got rises %v, want at least 3 up to %d or more (old share %d)", scope, rises, old-k.HysteresisPercent, old)
	}
}

// TestScenarioStationaryNoise: an hour of 15 s rounds drawing fresh samples
// from unchanging distributions publishes no change after the first
// decision, in any scope.
func TestScenarioStationaryNoise(t *testing.T) {
	t.Parallel()
	s := newSim(t, 3, "")
	changes, largest, scopes := 0, 0, 0
	s.ahead(240)
	for r := range 240 {
		d := s.step()
		scopes = len(d.Scopes)
		for _, sd := range d.Scopes {
			if sd.Changed && r > 0 {
				changes++
				t.Logf("round %d: %s changed to %v", r, sd.Scope, weightsOf(sd))
				for _, m := range sd.Members {
					t.Logf("   %s %s score %.1f raw %.1f q %.1f err %.4f n %d: %s", m.Name, m.State, m.ScoreMs, m.RawMs, m.Q, m.ErrorRate, m.Samples, m.Reason)
				}
			}
			largest = max(largest, heldMove(sd))
		}
	}
	t.Logf("%d published changes after the first decision in 240 rounds over %d scopes; largest move held back %d points", changes, scopes, largest)
	if changes != 0 {
		t.Errorf("got %d published changes, want 0", changes)
	}
}

// heldMove reads the move hysteresis held back from a scope's reasons.
func heldMove(sd steering.ScopeDecision) int {
	var move, h int
	for _, m := range sd.Members {
		if i := strings.Index(m.Reason, "largest change "); i >= 0 {
			fmt.Sscanf(m.Reason[i:], "largest change %d < hysteresis %d", &move, &h)
		}
	}
	return move
}

// TestScenarioThinASN: a BR network with one sample per member every third
// round (6 or 7 per 5m window, under min_samples 20) is published from
// country:BR's figures; a thin AR network in a thin country walks two
// levels up to region:sa. Both stay so round after round.
func TestScenarioThinASN(t *testing.T) {
	t.Parallel()
	s := newSim(t, 4, "")
	s.world["AR"] = s.world["BR"]
	s.nets = append(s.nets, scenarioNet{"BR", 26599, 1, false, 3}, scenarioNet{"AR", 7303, 1, false, 3})
	s.ahead(6)
	for r := range 6 {
		d := s.step()
		for _, tc := range []struct {
			scope, from string
			chain       []string
		}{
			{"country:BR/asn:26599", "country:BR", []string{"country:BR/asn:26599"}},
			{"country:AR/asn:7303", "region:sa", []string{"country:AR/asn:7303", "country:AR"}},
			{"country:AR", "region:sa", []string{"country:AR"}},
			{"country:BR/asn:28573", "country:BR/asn:28573", nil},
		} {
			sd := scopeOf(t, d, tc.scope)
			wantRule := steering.RuleScore
			if tc.chain != nil {
				wantRule = steering.RuleFallback
			}
			if sd.FiguresFrom != tc.from || !slices.Equal(sd.Fallback, tc.chain) || sd.Rule != wantRule && sd.Rule != steering.RuleHold {
				t.Errorf("round %d: %s: got figures from %s via %q rule %s, want %s via %q rule %s", r, tc.scope, sd.FiguresFrom, sd.Fallback, sd.Rule, tc.from, tc.chain, wantRule)
			}
			from := scopeOf(t, d, tc.from)
			for i, m := range sd.Members {
				if m.Samples != from.Members[i].Samples || m.State != from.Members[i].State {
					t.Errorf("round %d: %s %s: got %d samples %s, want %s's %d %s", r, tc.scope, m.Name, m.Samples, m.State, tc.from, from.Members[i].Samples, from.Members[i].State)
				}
			}
			if r == 0 && !slices.Equal(weightsOf(sd), weightsOf(from)) {
				t.Errorf("first decision: %s got %v, want %s's %v", tc.scope, weightsOf(sd), tc.from, weightsOf(from))
			}
			if r == 5 {
				t.Logf("%s: %v from %s via %q, rule %s", tc.scope, weightsOf(sd), sd.FiguresFrom, sd.Fallback, sd.Rule)
			}
		}
	}
}

// TestScenarioHome: country:DE is pinned to cdn-c, which is 30-60 ms
// slower there (under home_release_ms 100): cdn-c gets 100 minus the
// others' floors. Once cdn-c is 150 ms slower still, or fails, the pin
// releases within the bar of TestScenarioDegradation and cdn-c falls under
// 15; other scopes are never pinned.
func TestScenarioHome(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		l    latency
	}{
		{"slower", latency{130, 150, 0.005}},
		{"failing", latency{130, 0, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newSim(t, 5, `    home: {"country:DE": cdn-c}`+"\n")
			k := s.knobs
			pinned := []int{k.FloorPercent, k.FloorPercent, 100 - 2*k.FloorPercent}
			s.ahead(10)
			for r := range 10 {
				d := s.step()
				sd := scopeOf(t, d, "country:DE")
				c := memberOf(t, d, "country:DE", "cdn-c")
				best := min(memberOf(t, d, "country:DE", "cdn-a").ScoreMs, memberOf(t, d, "country:DE", "cdn-b").ScoreMs)
				if sd.Rule != steering.RuleHome || !slices.Equal(weightsOf(sd), pinned) || c.State != steering.StateUp {
					t.Errorf("round %d: country:DE: got %v rule %s, cdn-c %s, want %v pinned", r, weightsOf(sd), sd.Rule, c.State, pinned)
				}
				if gap := c.ScoreMs - best; gap <= 0 || gap >= k.HomeReleaseMs {
					t.Errorf("round %d: cdn-c is %.0f ms behind the best, want slower by less than %v", r, gap, k.HomeReleaseMs)
				}
				if rule := scopeOf(t, d, "country:DE/asn:3320").Rule; rule == steering.RuleHome {
					t.Errorf("round %d: country:DE/asn:3320 pinned too", r)
				}
			}
			s.set("cdn-c", tc.l, "DE")
			bar, released := (s.fastRounds()+3)/4+1, 0
			s.ahead(bar + 3)
			var seq []int
			for r := 1; r <= bar+3; r++ {
				d := s.step()
				sd, c := scopeOf(t, d, "country:DE"), memberOf(t, d, "country:DE", "cdn-c")
				seq = append(seq, c.Weight)
				if released == 0 && sd.Rule != steering.RuleHome {
					released = r
					t.Logf("released after %d rounds: %v rule %s, cdn-c %s: %s", r, weightsOf(sd), sd.Rule, c.State, c.Reason)
				}
				if released != 0 && (sd.Rule == steering.RuleHome || c.Weight >= 15) {
					t.Errorf("round %d: country:DE: got %v rule %s, want the pin released and cdn-c under 15", r, weightsOf(sd), sd.Rule)
				}
			}
			t.Logf("cdn-c in country:DE per round after the change: %v", seq)
			if released == 0 || released > bar {
				t.Errorf("pin released after %d rounds (0: never), want within %d", released, bar)
			}
		})
	}
}

// TestScenarioFailOpen: when measurements stop, the rounds whose window
// still holds some decide as usual; once the window is empty every scope
// published before stays, rule fail-open, with its last weights and
// unchanged.
func TestScenarioFailOpen(t *testing.T) {
	t.Parallel()
	s := newSim(t, 6, "")
	s.set("cdn-c", latency{300, 0, 0.005}, "DE") // weights that differ by scope
	s.steps(8)
	s.stop()
	var last *steering.Decision
	for r := 1; r < s.windowRounds(); r++ {
		last = s.step()
	}
	want := scopeWeights(last)
	for r := s.windowRounds(); r < s.windowRounds()+4; r++ {
		d := s.step()
		if got := scopeWeights(d); len(got) != len(want) {
			t.Errorf("round %d after data stopped: got scopes %v, want %v", r, got, want)
		}
		for _, sd := range d.Scopes {
			if sd.Rule != steering.RuleFailOpen || sd.Changed || !slices.Equal(weightsOf(sd), want[sd.Scope]) {
				t.Errorf("round %d after data stopped: %s: got %v rule %s changed=%v, want %v fail-open", r, sd.Scope, weightsOf(sd), sd.Rule, sd.Changed, want[sd.Scope])
			}
		}
		if r == s.windowRounds() {
			t.Logf("window empty after %d rounds: %d scopes fail open, e.g. country:DE %v: %s", r, len(d.Scopes), want["country:DE"], scopeOf(t, d, "country:DE").Members[0].Reason)
		}
	}
}
