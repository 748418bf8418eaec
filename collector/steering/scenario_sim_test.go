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
	"github.com/meridian-net/meridian/collector/store/chtest"
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
