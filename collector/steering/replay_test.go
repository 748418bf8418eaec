package steering_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/meridian-net/meridian/collector/steering"
	"github.com/meridian-net/meridian/collector/store/chtest"
)

const replayPolicy = `
pools:
  - name: www
    dns_name: www.shop.example.
    members:
      - {name: cdn-a, addresses: [192.0.2.10]}
      - {name: cdn-b, addresses: [192.0.2.20]}
`

// seedShift stores an hour of RUM probe fetches from start on, ten per
// minute, member and country (BR, US): cdn-b steady near 130 ms, cdn-a near
// 60 ms for the first half hour and 300 ms slower for the second.
func seedShift(t *testing.T, db string, start time.Time) {
	t.Helper()
	var rows []string
	for m := range 60 {
		for _, c := range []struct {
			cc  string
			asn int
		}{{"BR", 28573}, {"US", 7922}} {
			for i := range 10 {
				ts := start.Add(time.Duration(m)*time.Minute + time.Duration(i)*6*time.Second).Unix()
				a := 50 + 2*i
				if m >= 30 {
					a += 300
				}
				for _, x := range []struct {
					cdn string
					ms  int
				}{{"cdn-a", a}, {"cdn-b", 120 + 2*i}} {
					rows = append(rows, fmt.Sprintf("(toDateTime(%d), 's', '%s-%s-%d-%d', '%s', %d, 'probe_cold', '%s', %d, 0, 200, 0)",
						ts, x.cdn, c.cc, m, i, c.cc, c.asn, x.cdn, x.ms))
				}
			}
		}
	}
	if _, err := chtest.Server(t, db).Exec("INSERT INTO rum_cdn (ts, site, pv, country, asn, kind, cdn, ttfb_ms, error, status, is_bot) VALUES " + strings.Join(rows, ", ")); err != nil {
		t.Fatal(err)
	}
}

func mustPolicy(t *testing.T, doc string) *steering.Policy {
	t.Helper()
	p, err := steering.ParsePolicy("policy.yml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestReplay: cdn-a slowing down half-way is replayed as a change in the
// country scopes soon after the midpoint that leaves cdn-a little; a wider
// hysteresis publishes fewer changes; nothing is published.
func TestReplay(t *testing.T) {
	o, conn := chtest.New(t)
	ctx := context.Background()
	start := time.Now().Add(-2 * time.Hour).Truncate(time.Minute)
	seedShift(t, o.Database, start)
	mid, end := start.Add(30*time.Minute), start.Add(time.Hour)

	var calls, last int
	fine := replayPolicy + "    hysteresis_percent: 5\n    alpha: 0.3\n"
	r, err := steering.Replay(ctx, conn, mustPolicy(t, fine), "www", start, end, time.Minute, nil, func(done, total int) {
		calls, last = calls+1, done
		if total != 60 {
			t.Errorf("progress: total %d, want 60", total)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if r.Rounds != 60 || calls != 60 || last != 60 {
		t.Errorf("got %d rounds, %d progress calls ending at %d; want 60 of each", r.Rounds, calls, last)
	}
	for _, s := range []string{"country:BR", "country:US"} {
		sr, ok := r.Scope(s)
		if !ok {
			t.Errorf("no history for %s: %+v", s, r.Scopes)
			continue
		}
		near := false
		for _, p := range sr.Published[1:] {
			near = near || !p.At.Before(mid) && p.At.Before(mid.Add(10*time.Minute))
		}
		if !near {
			t.Errorf("%s: no change within 10 minutes after the midpoint %s: %+v", s, mid.Format(time.TimeOnly), sr.Published)
		}
		first := sr.Published[0].Weights["cdn-a"]
		final, _ := r.Final.Scope(s)
		if w := final.Members[0].Weight; first < 60 || final.Members[0].Name != "cdn-a" || w > 10 {
			t.Errorf("%s: cdn-a went from weight %d to %d, want from at least 60 to at most 10", s, first, w)
		}
	}
	if r.Scopes[0].Scope != "global" || r.Changes == 0 || r.ChangedRounds == 0 || r.ChangedRounds > r.Changes {
		t.Errorf("got scopes from %s, %d changes in %d rounds; want global first and some changes", r.Scopes[0].Scope, r.Changes, r.ChangedRounds)
	}
	t.Logf("hysteresis 5: %d rounds, %d changes in %d rounds", r.Rounds, r.Changes, r.ChangedRounds)

	wide, err := steering.Replay(ctx, conn, mustPolicy(t, strings.Replace(fine, "hysteresis_percent: 5\n", "hysteresis_percent: 50\n", 1)), "www", start, end, time.Minute, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("hysteresis 50: %d changes in %d rounds", wide.Changes, wide.ChangedRounds)
	if wide.Changes >= r.Changes {
		t.Errorf("hysteresis_percent 50: %d changes, want fewer than hysteresis 5's %d", wide.Changes, r.Changes)
	}

	var n uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM steering_history").Scan(&n); err != nil || n != 0 {
		t.Errorf("after replays steering_history has %d rows (err %v), want none", n, err)
	}
}

func TestReplayRefuses(t *testing.T) {
	_, conn := chtest.New(t)
	ctx := context.Background()
	p := mustPolicy(t, replayPolicy)
	end := time.Now()
	for _, tc := range []struct {
		pool  string
		span  time.Duration
		every time.Duration
		want  string
	}{
		{"nope", time.Hour, time.Minute, "which has www"},
		{"www", 30 * 24 * time.Hour, 15 * time.Second, "step by 2m10s or more"},
		{"www", 10 * time.Second, time.Minute, "no round"},
	} {
		_, err := steering.Replay(ctx, conn, p, tc.pool, end.Add(-tc.span), end, tc.every, nil, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("replay %s over %v every %v: got %v, want an error with %q", tc.pool, tc.span, tc.every, err, tc.want)
		}
	}
}
