package steering

import (
	"strings"
	"testing"
)

func TestExplain(t *testing.T) {
	p := mustPolicy(t, testPolicy+"    home: {country:DE: cdn-c}\n")
	k := p.Pools[0].Knobs()
	e, w := NewEngine(p, nil), calm(9)
	w.set(Scope{Country: "FR"}, dist{100, 0, 0}).thin[Scope{Country: "FR"}] = 5
	var d *Decision
	for i := range 4 {
		d = step(t, e, i, w)
	}
	w.scopes[br]["cdn-b"] = dist{110, 1, 0}
	for i := 4; i < 7; i++ {
		d = step(t, e, i, w)
	}
	for _, tc := range []struct {
		scope string
		want  []string
	}{
		{"global", []string{"pool www (www.shop.example.), scope global, computed 12:01:30 UTC", "rule hold", "held: weights change once one moves by ≥ 25 points", "out of reach while its 49.6% errors cost 496 ms", "would lose 25 points if its score rose above", "cdn-c would gain 25 points if its score fell below"}},
		{"country:BR", []string{"down: 400 of 400 failed", "down: ", "cdn-b comes back after 2 rounds below 50% errors"}},
		{"country:FR", []string{"figures from region:eu: too few samples in country:FR", "country:FR gets its own figures once every member has ≥ 20 samples there in the 5m0s window"}},
		{"country:DE", []string{"rule home", "pinned to cdn-c while it is up: released if its score falls more than 100 ms behind the best"}},
		{"country:JP", []string{"pool www has no decision for scope country:JP (published: global, country:BR, country:DE, country:FR, region:eu)"}},
	} {
		got := Explain(d, tc.scope, k)
		for _, want := range tc.want {
			if !strings.Contains(got, want) {
				t.Errorf("Explain(%s): got\n%s\nwant it to contain %q", tc.scope, got, want)
			}
		}
		if testing.Verbose() {
			t.Log("\n" + got)
		}
	}
}
