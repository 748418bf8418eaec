package steering

import (
	"encoding/json"
	"math"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseScope(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Scope
		err  string
	}{
		{"global", Global, ""},
		{"region:eu", Scope{Region: "eu"}, ""},
		{"country:BR", Scope{Country: "BR"}, ""},
		{"country:BR/asn:28573", Scope{Country: "BR", ASN: 28573}, ""},
		{"country:br", Scope{}, `cannot parse scope "country:br": "br" is not an ISO 3166 alpha-2 country code (write it upper-case, such as BR)`},
		{"country:XK", Scope{}, `cannot parse scope "country:XK": "XK" is not an ISO 3166 alpha-2 country code (write it upper-case, such as BR)`},
		{"country:BR/asn:0", Scope{}, `cannot parse scope "country:BR/asn:0": the ASN must be a number from 1 to 4294967295`},
		{"country:BR/asn:4294967296", Scope{}, `cannot parse scope "country:BR/asn:4294967296": the ASN must be a number from 1 to 4294967295`},
		{"region:EU", Scope{}, `cannot parse scope "region:EU": a region name is 1 to 63 of a-z, 0-9 and -`},
		{"asn:28573", Scope{}, `cannot parse scope "asn:28573": want global, region:NAME, country:CC or country:CC/asn:N`},
		{"", Scope{}, `cannot parse scope "": want global, region:NAME, country:CC or country:CC/asn:N`},
	} {
		got, err := ParseScope(tc.in)
		if tc.err != "" {
			if err == nil || err.Error() != tc.err {
				t.Errorf("ParseScope(%q): got %v, %v; want error %s", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want || got.String() != tc.in {
			t.Errorf("ParseScope(%q): got %+v (%s), %v; want %+v", tc.in, got, got, err, tc.want)
		}
	}
}

func TestScopeParent(t *testing.T) {
	p := mustPolicy(t, testPolicy)
	for in, want := range map[string]string{
		"country:DE/asn:3320": "country:DE", "country:DE": "region:eu", "country:BR": "global",
		"region:eu": "global", "global": "global",
	} {
		sc, _ := ParseScope(in)
		if got := sc.Parent(p).String(); got != want {
			t.Errorf("%s: got parent %s, want %s", in, got, want)
		}
	}
}

func TestKnownCountry(t *testing.T) {
	if got := len(countries); got != 249 {
		t.Errorf("got %d ISO 3166 codes, want 249", got)
	}
	for cc, want := range map[string]bool{"BR": true, "DE": true, "SS": true, "AX": true, "XK": false, "UK": false, "EU": false, "de": false, "": false} {
		if got := KnownCountry(cc); got != want {
			t.Errorf("KnownCountry(%q): got %v, want %v", cc, got, want)
		}
	}
}

func TestRoundShares(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want []int
	}{
		{[]float64{1, 1, 1}, []int{34, 33, 33}},
		{[]float64{0, 0}, []int{50, 50}},
		{[]float64{2, 0, 98}, []int{2, 0, 98}},
		{[]float64{33.4, 33.3, 33.3, 0}, []int{34, 33, 33, 0}},
		{[]float64{66.66, 33.34}, []int{67, 33}},
		{[]float64{1e-9, 1}, []int{0, 100}},
	} {
		if got := roundShares(tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("roundShares(%v): got %v, want %v", tc.in, got, tc.want)
		}
	}
}

// The feed's JSON is a public contract: these keys, NaN figures left out.
func TestDecisionJSON(t *testing.T) {
	at := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	feed := Feed{Version: FeedVersion, Pools: []*Decision{{
		Pool: "www", DNSName: "www.shop.example.", ComputedAt: at, TTL: 30,
		Scopes: []ScopeDecision{{Scope: "country:BR", Fallback: []string{"country:BR"}, FiguresFrom: "global", Rule: RuleFallback, Changed: true, ChangedAt: at,
			Members: []MemberDecision{{Name: "cdn-a", Weight: 100, State: StateUp, ScoreMs: 48, RawMs: math.NaN(), Q: 47.5, ErrorRate: 0.001, Samples: 400, RUMSamples: 300, SyntheticSamples: 100, Reason: "best"}}}},
	}}}
	b, err := json.Marshal(feed)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"version":1,"pools":[{"pool":"www","dns_name":"www.shop.example.","computed_at":"2026-12-01T12:00:00Z","ttl":30,"scopes":[{"scope":"country:BR","fallback":["country:BR"],"figures_from":"global","rule":"fallback","changed":true,"changed_at":"2026-12-01T12:00:00Z","members":[{"name":"cdn-a","weight":100,"state":"up","score_ms":48,"q_ms":47.5,"error_rate":0.001,"samples":400,"rum_samples":300,"synthetic_samples":100,"reason":"best"}]}]}]}`
	if string(b) != want {
		t.Errorf("got  %s\nwant %s", b, want)
	}
	var back Feed
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if m := back.Pools[0].Scopes[0].Members[0]; !math.IsNaN(m.RawMs) || m.ScoreMs != 48 || m.Weight != 100 {
		t.Errorf("read back %+v, want raw_ms NaN and the rest as written", m)
	}
}

func TestStateJSON(t *testing.T) {
	st := State{Pools: map[string]map[string]map[string]MemberState{"www": {"global": {
		"cdn-a": {Smoothed: math.NaN(), Weight: 40, State: StateUp, GoodStreak: 3},
		"cdn-b": {Smoothed: 61.25, Weight: 60, State: StateDegraded, BadStreak: 1},
	}}}}
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Count(string(b), "smoothed_ms") != 1 {
		t.Errorf("got %s, want smoothed_ms only where it is a number", b)
	}
	var back State
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	a, bb := back.Pools["www"]["global"]["cdn-a"], back.Pools["www"]["global"]["cdn-b"]
	if !math.IsNaN(a.Smoothed) || a.Weight != 40 || a.GoodStreak != 3 || bb.Smoothed != 61.25 || bb.State != StateDegraded || bb.BadStreak != 1 {
		t.Errorf("read back %+v and %+v", a, bb)
	}
}

func TestComputeRefusesBadRows(t *testing.T) {
	e := NewEngine(mustPolicy(t, testPolicy), nil)
	row := Stat{Scope: br, Member: "cdn-a", Source: SourceRUM, Samples: 10, Errors: 1, Q: 50}
	for _, tc := range []struct {
		edit func(*Stat)
		want string
	}{
		{func(s *Stat) { s.Source = "agent" }, `cannot use stats row 0 (country:BR cdn-a agent) for pool "www": source "agent" is not rum or synthetic`},
		{func(s *Stat) { s.Errors = 11 }, `cannot use stats row 0 (country:BR cdn-a rum) for pool "www": errors 11 exceed samples 10`},
		{func(s *Stat) { s.Q = -1 }, `cannot use stats row 0 (country:BR cdn-a rum) for pool "www": quantile -1 ms is not a latency`},
		{func(s *Stat) { s.Scope = Scope{ASN: 3} }, `cannot use stats row 0 (asn:3 cdn-a rum) for pool "www": a scope is global, a region, a country or a country and ASN`},
	} {
		s := row
		tc.edit(&s)
		if _, err := e.Compute(t0, "www", []Stat{s}); err == nil || err.Error() != tc.want {
			t.Errorf("got %v, want %s", err, tc.want)
		}
	}
	if _, err := e.Compute(t0, "www", []Stat{row, row}); err == nil || !strings.Contains(err.Error(), "a second row for the same scope, member and source") {
		t.Errorf("duplicate rows: got %v", err)
	}
	if _, err := e.Compute(t0, "api", nil); err == nil || err.Error() != `cannot compute pool "api": it is not in the policy` {
		t.Errorf("unknown pool: got %v", err)
	}
	// Rows the pool does not know are ignored, not refused.
	ignored := []Stat{{Scope: Scope{Country: "XK"}, Member: "cdn-a", Source: SourceRUM, Samples: 99}, {Scope: br, Member: "cdn-z", Source: SourceRUM, Samples: 99}, {Scope: Scope{Region: "asia"}, Member: "cdn-a", Source: SourceRUM, Samples: 99}}
	if d, err := e.Compute(t0, "www", ignored); err != nil || len(d.Scopes) != 1 || d.Scopes[0].Rule != RuleFailOpen {
		t.Errorf("got %v, %+v; want global alone, failing open", err, d)
	}
}

// Sources blend by their weights alone, members match by measurement
// names, and a source weighted 0 is left out.
func TestBlend(t *testing.T) {
	p := mustPolicy(t, `
defaults: {rum_weight: 3, synthetic_weight: 1}
pools:
  - name: www
    dns_name: www.example.
    members:
      - {name: a, addresses: [192.0.2.1], rum: A-CDN, synthetic: a-check}
      - {name: b, addresses: [192.0.2.2]}
`)
	stats := []Stat{
		{Scope: Global, Member: "A-CDN", Source: SourceRUM, Samples: 1000, Errors: 100, Q: 100},
		{Scope: Global, Member: "a-check", Source: SourceSynthetic, Samples: 20, Q: 200},
		{Scope: Global, Member: "b", Source: SourceRUM, Samples: 50, Q: 100},
		{Scope: Global, Member: "b", Source: SourceSynthetic, Samples: 50, Errors: 50, Q: math.NaN()},
	}
	d, err := NewEngine(p, nil).Compute(t0, "www", stats)
	if err != nil {
		t.Fatal(err)
	}
	a, b := d.Scopes[0].Members[0], d.Scopes[0].Members[1]
	if a.Q != 125 || a.ErrorRate != 0.075 || a.Samples != 1020 || a.RUMSamples != 1000 || a.SyntheticSamples != 20 || a.RawMs != 125+75 {
		t.Errorf("a: got %+v, want q 125 (3:1), error rate 0.075, raw 200", a)
	}
	if b.Q != 100 || b.ErrorRate != 0.25 || b.RawMs != 350 {
		t.Errorf("b: got %+v, want q 100 (RUM alone), error rate 0.25, raw 350", b)
	}
	p.Pools[0].knobs.RUMWeight = 0
	d, _ = NewEngine(p, nil).Compute(t0, "www", stats)
	if a, b := d.Scopes[0].Members[0], d.Scopes[0].Members[1]; a.Q != 200 || a.ErrorRate != 0 || b.ErrorRate != 1 || !math.IsNaN(b.Q) || b.RawMs != 200+1000 {
		t.Errorf("without RUM: got %+v and %+v, want a q 200 no errors; b all failed, scored as the worst q plus the penalty", a, b)
	}
}
