package query_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/meridian-net/meridian/collector/store/chtest"
	"github.com/meridian-net/meridian/query"
)

// TestHourTierAnswersAsMinutes: over a window of whole hours and ragged
// ends, latency-map's rollup reads whole hours from the hour tier and the
// ends from the minute tier, and answers exactly what the minute tier
// alone (a minute-bucketed query, summed) and the raw rows answer. Traceroute
// results are in none of them: a trace's total is not a latency to the target.
func TestHourTierAnswersAsMinutes(t *testing.T) {
	db, conn := chtest.New(t)
	e := chtest.Server(t, db.Database)
	ctx := context.Background()
	// Whole minutes at both ends: the rollup's window is whole minutes, the
	// raw rows' exact, and they must agree.
	to := time.Now().Truncate(time.Minute)
	from := to.Add(-5*time.Hour - 17*time.Minute)
	var rum, res []string
	for i := range 400 { // one fetch and one result every 48 s, from before the window to its end
		at := from.Add(-10*time.Minute + time.Duration(i)*48*time.Second).Unix()
		rum = append(rum, fmt.Sprintf("(toDateTime(%d), 's', 'pv%d', 'BR', 'probe_cold', 'cdn-a', %d, %d, 200, 0)", at, i, 10+i%50, i%20/19))
		res = append(res, fmt.Sprintf("(toDateTime(%d), 'r%d', 'a-br', 'sa', 'www', 'cdn-a', 'http', 'x', %d, %d)", at, i, 1-i%25/24, 100+i%70))
		if i%10 == 0 {
			res = append(res, fmt.Sprintf("(toDateTime(%d), 't%d', 'a-br', 'sa', 'trace', '', 'traceroute', 'x', 1, 5000)", at, i))
		}
	}
	for _, q := range []string{
		"INSERT INTO rum_cdn (ts, site, pv, country, kind, cdn, ttfb_ms, error, status, is_bot) VALUES " + strings.Join(rum, ", "),
		"INSERT INTO results (ts, id, agent, region, check_name, cdn_member, kind, target, ok, ttfb_ms) VALUES " + strings.Join(res, ", "),
	} {
		if _, err := e.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	o := query.Options{From: from, To: to, By: []string{"member"}, Filters: map[string]string{}, Countries: map[string]string{"a-br": "BR"}}
	r, err := query.Render("latency-map", withRollup(o, true))
	if err != nil || !strings.Contains(r.SQL, "rum_cdn_1h") || !strings.Contains(r.SQL, "results_member_1h") {
		t.Fatalf("a 5 h 17 min window does not read the hour tiers: %v\n%s", err, r.SQL)
	}
	tiered, err := query.Run(ctx, conn, "latency-map", withRollup(o, true))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := query.Run(ctx, conn, "latency-map", withRollup(o, false))
	if err != nil {
		t.Fatal(err)
	}
	o.Bucket = "minute"
	perMinute, err := query.Run(ctx, conn, "latency-map", withRollup(o, true))
	if err != nil {
		t.Fatal(err)
	}
	for _, tab := range []*query.Table{tiered, raw} {
		if len(tab.Rows) == 0 || fmt.Sprint(tab.Rows[len(tab.Rows)-1][0]) != "cdn-a" {
			t.Errorf("latency-map answers %v: want only member cdn-a (no traceroute check)", tab.Rows)
		}
	}
	// member, source, samples, errors, …: the same groups and counts.
	if fmt.Sprint(tiered.Rows) != fmt.Sprint(raw.Rows) {
		t.Errorf("hour tier answers %v, raw rows %v: want the same (whole minutes at both ends)", tiered.Rows, raw.Rows)
	}
	var samples, errors uint64
	for _, row := range perMinute.Rows { // time, member, source, samples, errors, …
		samples += row[3].(uint64)
		errors += row[4].(uint64)
	}
	var want uint64
	for _, row := range tiered.Rows {
		want += row[2].(uint64)
	}
	if samples != want || samples == 0 {
		t.Errorf("minute tier holds %d samples (%d errors), hour tier %d: want the same, not zero", samples, errors, want)
	}
}

func withRollup(o query.Options, rollup bool) query.Options {
	o.Rollup, o.Raw = rollup, !rollup
	return o
}
