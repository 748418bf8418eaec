package query_test

import (
	"context"
	"testing"
	"time"

	"github.com/meridian-net/meridian/internal/result"
	"github.com/meridian-net/meridian/query"
)

// TestLatencyRollup reads the per-minute rollup that results_1m_mv fills:
// the same quantiles as the raw query, a replay counted again (the view
// sees inserts, not merges) where the raw query, reading FINAL, is exact.
func TestLatencyRollup(t *testing.T) {
	now := time.Now()
	ok := result.New("a-eu", "home", result.KindHTTP, "https://example.com/", now.Add(-2*time.Minute))
	ok.OK = true // a success without a total time: counted, not in the quantiles
	conn := seed(t, ok)

	o := query.LatencyOptions{Since: time.Hour, By: []string{"region", "target"}}
	raw, err := query.Latency(context.Background(), conn, o)
	if err != nil {
		t.Fatal(err)
	}
	o.Rollup = true
	tab, err := query.Latency(context.Background(), conn, o)
	if err != nil {
		t.Fatal(err)
	}
	if len(tab.Rows) != 2 || len(raw.Rows) != 2 {
		t.Fatalf("got %d rollup rows and %d raw rows, want 2 each: %v / %v", len(tab.Rows), len(raw.Rows), tab.Rows, raw.Rows)
	}
	for i, want := range []struct {
		region   string
		n, rawN  uint64
		p50, p99 float64
	}{{"eu", 121, 111, 50.5, 99}, {"us", 120, 110, 150.5, 199}} {
		row, rawRow := tab.Rows[i], raw.Rows[i]
		if row[0] != want.region || row[2] != want.n || row[3] != uint64(10) {
			t.Errorf("rollup row %d: got %v, want %s n=%d (replays counted again) failed=10", i, row, want.region, want.n)
		}
		if rawRow[2] != want.rawN {
			t.Errorf("raw row %d: got %v, want n=%d (FINAL folds replays)", i, rawRow, want.rawN)
		}
		// The replay adds ten copies of the 10 lowest values: p50 shifts down a little.
		p50, p99 := row[4].(float64), row[6].(float64)
		if p50 < want.p50-8 || p50 > want.p50+2 || p99 < want.p99-2 || p99 > want.p99+1.5 {
			t.Errorf("rollup row %d: got p50=%v p99=%v, want about %v and %v", i, p50, p99, want.p50, want.p99)
		}
	}
	if _, err := query.Latency(context.Background(), conn, query.LatencyOptions{Since: time.Hour, By: []string{"agent"}, Rollup: true}); err == nil {
		t.Error("rollup grouped by agent: want an error (the rollup has no agent column)")
	}
}
