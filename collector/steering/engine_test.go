package steering

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// dist is one member's latency distribution in a scope: lognormal around
// median (ms) with the world's sigma, and a share of failed measurements.
type dist struct {
	median, errRate float64
}

// world draws fresh samples every round and computes quantiles from them,
// as the SQL would from a window of measurements.
type world struct {
	rng     *rand.Rand
	n       int     // samples per scope, member and source
	sigma   float64 // of log latency; 0.5 gives p75 about 5% noise at n=200
	members []string
	scopes  map[Scope]map[string]dist // countries and ASNs; global is their union
	thin    map[Scope]int             // samples for scopes that get fewer than n
	noRows  bool                      // stop sending rows (empty slice)
}

func newWorld(seed uint64, members ...string) *world {
	return &world{rng: rand.New(rand.NewPCG(seed, 1)), n: 200, sigma: 0.5, members: members,
		scopes: map[Scope]map[string]dist{}, thin: map[Scope]int{}}
}

// set gives every member dist d in scope sc.
func (w *world) set(sc Scope, d dist) *world {
	w.scopes[sc] = map[string]dist{}
	for _, m := range w.members {
		w.scopes[sc][m] = d
	}
	return w
}

func (w *world) stats() []Stat {
	if w.noRows {
		return []Stat{}
	}
	type key struct{ m, src string }
	union := map[key][]float64{}
	unionErr, unionN := map[key]uint64{}, map[key]uint64{}
	var out []Stat
	for _, sc := range sortedScopes(w.scopes) {
		n := w.n
		if v, ok := w.thin[sc]; ok {
			n = v
		}
		for _, m := range w.members {
			for _, src := range []string{SourceRUM, SourceSynthetic} {
				lat, errs := w.draw(w.scopes[sc][m], n)
				if sc.Country != "" && sc.ASN == 0 {
					k := key{m, src}
					union[k], unionErr[k], unionN[k] = append(union[k], lat...), unionErr[k]+errs, unionN[k]+uint64(n)
				}
				out = append(out, Stat{Scope: sc, Member: m, Source: src, Samples: uint64(n), Errors: errs, Q: quantile(lat, 0.75)})
			}
		}
	}
	for _, m := range w.members {
		for _, src := range []string{SourceRUM, SourceSynthetic} {
			k := key{m, src}
			if unionN[k] > 0 {
				out = append(out, Stat{Scope: Global, Member: m, Source: src, Samples: unionN[k], Errors: unionErr[k], Q: quantile(union[k], 0.75)})
			}
		}
	}
	return out
}

func (w *world) draw(d dist, n int) (lat []float64, errs uint64) {
	lat = make([]float64, 0, n)
	for range n {
		if w.rng.Float64() < d.errRate {
			errs++
			continue
		}
		lat = append(lat, d.median*math.Exp(w.sigma*w.rng.NormFloat64()))
	}
	return lat, errs
}

// quantile interpolates linearly between order statistics (as
// ClickHouse's quantileExact-like estimators do); NaN when empty. It
// reorders xs: a selection, not a sort, keeps the day-long test fast.
func quantile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	pos := q * float64(len(xs)-1)
	i := int(pos)
	lo := nth(xs, i)
	if i+1 >= len(xs) {
		return lo
	}
	return lo + (pos-float64(i))*(slices.Min(xs[i+1:])-lo)
}

// nth moves the k-th smallest of xs to xs[k], smaller ones before it and
// larger ones after (Hoare's selection).
func nth(xs []float64, k int) float64 {
	l, r := 0, len(xs)-1
	for l < r {
		pivot, i, j := xs[(l+r)/2], l, r
		for i <= j {
			for xs[i] < pivot {
				i++
			}
			for xs[j] > pivot {
				j--
			}
			if i <= j {
				xs[i], xs[j] = xs[j], xs[i]
				i, j = i+1, j-1
			}
		}
		switch {
		case k <= j:
			r = j
		case k >= i:
			l = i
		default:
			return xs[k]
		}
	}
	return xs[k]
}

var t0 = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

const every = 15 * time.Second

func mustPolicy(t testing.TB, doc string) *Policy {
	t.Helper()
	p, err := ParsePolicy("test.yml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// step computes round i (at t0 + i×15s) and fails the test on an error.
func step(t testing.TB, e *Engine, i int, w *world) *Decision {
	t.Helper()
	d, err := e.Compute(t0.Add(time.Duration(i)*every), "www", w.stats())
	if err != nil {
		t.Fatal(err)
	}
	checkSums(t, d)
	return d
}

// checkSums is the invariant every decision keeps (h).
func checkSums(t testing.TB, d *Decision) {
	t.Helper()
	for _, s := range d.Scopes {
		sum := 0
		for _, m := range s.Members {
			if m.Weight < 0 || m.Weight > 100 {
				t.Fatalf("%s %s: weight %d out of [0,100]", s.Scope, m.Name, m.Weight)
			}
			if m.State == StateDown && m.Weight != 0 && s.Rule != RuleFailOpen && s.Rule != RuleHold {
				t.Fatalf("%s %s: down with weight %d (rule %s)", s.Scope, m.Name, m.Weight, s.Rule)
			}
			sum += m.Weight
		}
		if sum != 100 {
			t.Fatalf("%s: weights sum to %d, want 100: %+v", s.Scope, sum, s.Members)
		}
	}
}

func weights(t testing.TB, d *Decision, scope string) []int {
	t.Helper()
	s, ok := d.Scope(scope)
	if !ok {
		t.Fatalf("no decision for %s", scope)
	}
	var w []int
	for _, m := range s.Members {
		w = append(w, m.Weight)
	}
	return w
}
