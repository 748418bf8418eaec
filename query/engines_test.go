package query_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/meridian-net/meridian/collector/store/chtest"
	"github.com/meridian-net/meridian/internal/result"
	"github.com/meridian-net/meridian/query"
)

// TestLatencyOnBothEngines runs the latency query, raw and over the
// rollup, on the 18.16 server and on ClickHouse 26.x with the same rows,
// and holds both to the expectations of TestLatency and TestLatencyRollup.
func TestLatencyOnBothEngines(t *testing.T) {
	ok := result.New("a-eu", "home", result.KindHTTP, "https://example.com/", time.Now().Add(-2*time.Minute))
	ok.OK = true // a success without a total time: counted, not in the quantiles
	db, _ := seedDB(t, ok)
	engines := chtest.Engines(t, db)
	chtest.CopyTables(t, engines[0], engines[1], "results") // the rollup fills on the copy's insert

	type want struct {
		region   string
		n        uint64
		p50, p99 float64
		p50Slack float64 // below p50: the rollup counts the replayed lowest values again
	}
	for _, c := range []struct {
		rollup bool
		want   []want
	}{
		{false, []want{{"eu", 111, 50.5, 99, 2}, {"us", 110, 150.5, 199, 2}}},
		{true, []want{{"eu", 121, 50.5, 99, 8}, {"us", 120, 150.5, 199, 8}}},
	} {
		sql, args, err := query.LatencySQL(query.LatencyOptions{Since: time.Hour, By: []string{"region", "target"}, Rollup: c.rollup})
		if err != nil {
			t.Fatal(err)
		}
		bound, err := chtest.Bind(sql, args...)
		if err != nil {
			t.Fatal(err)
		}
		name := "latency"
		if c.rollup {
			name = "latency over the rollup"
		}
		a := chtest.Both(t, engines, []chtest.Stmt{{Name: name, SQL: bound}})
		for j, e := range engines {
			rows := a[0][j].Rows
			if len(rows) != len(c.want) {
				t.Errorf("%s on ClickHouse %s: got %d rows %v, want %d", name, e.Name, len(rows), rows, len(c.want))
				continue
			}
			for i, w := range c.want {
				row := rows[i]
				n, _ := strconv.ParseUint(row[2], 10, 64)
				p50, _ := strconv.ParseFloat(row[4], 64)
				p99, _ := strconv.ParseFloat(row[6], 64)
				if row[0] != w.region || row[1] != "https://example.com/" || n != w.n || row[3] != "10" {
					t.Errorf("%s on ClickHouse %s: row %d is %v, want %s, the target, n=%d, failed=10", name, e.Name, i, row, w.region, w.n)
				}
				if p50 < w.p50-w.p50Slack || p50 > w.p50+2 || p99 < w.p99-2 || p99 > w.p99+1.5 {
					t.Errorf("%s on ClickHouse %s: row %d p50=%v p99=%v, want about %v and %v", name, e.Name, i, p50, p99, w.p50, w.p99)
				}
			}
		}
	}
}
