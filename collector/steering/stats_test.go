package steering_test

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/meridian-net/meridian/collector/steering"
	"github.com/meridian-net/meridian/collector/store/chtest"
)

const statsPolicy = `
regions: {sa: [BR, AR]}
pools:
  - name: www
    dns_name: www.shop.example.
    members:
      - {name: cdn-a, addresses: [192.0.2.10]}
      - {name: cdn-b, addresses: [192.0.2.20], rum: cdnb, synthetic: check-b}
`

// seedStats stores, 30 seconds before now (inside the fast window), RUM probe fetches and agent
// results with known figures (see TestStatsOnBothEngines) through SQL on
// the 18.16 server's HTTP interface.
func seedStats(t *testing.T, e *chtest.Engine, now time.Time) {
	t.Helper()
	ts := now.Add(-30 * time.Second).Unix()
	var rum, res []string
	addRUM := func(cc string, asn int, cdn string, ttfb float64, failed int) {
		rum = append(rum, fmt.Sprintf("(toDateTime(%d), 's', '%d', '%s', %d, 'probe_cold', '%s', %g, %d, 200, 0)", ts, len(rum), cc, asn, cdn, ttfb, failed))
	}
	addResult := func(agent, check string, ms float64, ok int) {
		res = append(res, fmt.Sprintf("(toDateTime(%d), '00000000-0000-0000-0000-%012d', '%s', '%s', 'http', 'https://x/', %d, %g, %g)", ts, len(res), agent, check, ok, ms, ms+5))
	}
	for i := 1; i <= 100; i++ {
		addRUM("BR", 28573, "cdn-a", float64(i), 0)
		addRUM("BR", 28573, "cdnb", float64(100+i), 0)
	}
	for range 10 {
		addRUM("BR", 28573, "cdnb", 1, 1)
	}
	for range 50 {
		addRUM("US", 7922, "cdn-a", 10, 0)
		addRUM("US", 7922, "other-cdn", 10, 0) // not a member
	}
	for range 30 {
		addResult("sp-1", "cdn-a", 20, 1)
		addResult("nowhere-1", "check-b", 40, 1) // an agent without a country
	}
	addResult("sp-1", "cdn-a", 0, 0)
	for _, q := range []string{
		"INSERT INTO rum_cdn (ts, site, pv, country, asn, kind, cdn, ttfb_ms, error, status, is_bot) VALUES " + strings.Join(rum, ", "),
		"INSERT INTO results (ts, id, agent, check_name, kind, target, ok, ttfb_ms, total_ms) VALUES " + strings.Join(res, ", "),
	} {
		if _, err := e.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
}

// TestStatsOnBothEngines: the pool's one query gives every scope level's
// figures, the same on 18.16 and on ClickHouse 26.x.
func TestStatsOnBothEngines(t *testing.T) {
	p, err := steering.ParsePolicy("policy.yml", []byte(statsPolicy))
	if err != nil {
		t.Fatal(err)
	}
	pool, _ := p.Pool("www")
	o, conn := chtest.New(t)
	engines := chtest.Engines(t, o.Database)
	now := time.Now()
	seedStats(t, engines[0], now)
	chtest.CopyTables(t, engines[0], engines[1], "rum_cdn", "results")
	countries := map[string]string{"sp-1": "BR"}

	want := map[string]string{ // scope member source → samples errors q
		"country:BR/asn:28573 cdn-a rum": "100 0 75.25",
		"country:BR/asn:28573 cdn-b rum": "110 10 175.25",
		"country:BR cdn-a rum":           "100 0 75.25",
		"country:BR cdn-a synthetic":     "31 1 20",
		"country:BR cdn-b rum":           "110 10 175.25",
		"region:sa cdn-a synthetic":      "31 1 20",
		"region:sa cdn-a rum":            "100 0 75.25",
		"region:sa cdn-b rum":            "110 10 175.25",
		"country:US/asn:7922 cdn-a rum":  "50 0 10",
		"country:US cdn-a rum":           "50 0 10",
		"global cdn-a rum":               "150 0 62.75",
		"global cdn-a synthetic":         "31 1 20",
		"global cdn-b rum":               "110 10 175.25",
		"global cdn-b synthetic":         "30 0 40",
	}
	check := func(who string, stats []steering.Stat) {
		got := map[string]string{}
		for _, s := range stats {
			got[fmt.Sprintf("%s %s %s", s.Scope, s.Member, s.Source)] = fmt.Sprintf("%d %d %s", s.Samples, s.Errors, strconv.FormatFloat(math.Round(s.Q*100)/100, 'f', -1, 64))
		}
		for _, s := range stats {
			if s.RecentSamples != s.Samples || s.RecentErrors != s.Errors || math.Abs(s.RecentQ-s.Q) > 1e-9 && !math.IsNaN(s.Q) {
				t.Errorf("%s: %s %s %s: recent %d/%d/%v, want the window's %d/%d/%v (every row is recent)", who, s.Scope, s.Member, s.Source,
					s.RecentSamples, s.RecentErrors, s.RecentQ, s.Samples, s.Errors, s.Q)
			}
		}
		for k, w := range want {
			if got[k] != w {
				t.Errorf("%s: %s: got %q, want %q", who, k, got[k], w)
			}
		}
		if len(got) != len(want) {
			t.Errorf("%s: got %d rows, want %d: %v", who, len(got), len(want), got)
		}
	}

	stats, err := steering.ReadStats(context.Background(), conn, p, pool, countries, now)
	if err != nil {
		t.Fatal(err)
	}
	check("ReadStats on 18.16", stats)

	sql, args, err := steering.StatsQuery(p, pool, countries, now)
	if err != nil {
		t.Fatal(err)
	}
	bound, err := chtest.Bind(sql, args...)
	if err != nil {
		t.Fatal(err)
	}
	answers := chtest.Both(t, engines, []chtest.Stmt{{Name: "steering stats", SQL: bound}})
	for j, e := range engines {
		var stats []steering.Stat
		for _, row := range answers[0][j].Rows {
			var r steering.StatRow
			r.Member, r.Source, r.Region, r.Country, r.ASN = row[0], row[1], row[2], row[3], row[4]
			r.HasRegion, r.HasCountry, r.HasASN = row[5][0]-'0', row[6][0]-'0', row[7][0]-'0'
			r.Samples, _ = strconv.ParseUint(row[8], 10, 64)
			r.Errors, _ = strconv.ParseUint(row[9], 10, 64)
			r.Q, _ = strconv.ParseFloat(row[10], 64)
			r.RecentSamples, _ = strconv.ParseUint(row[11], 10, 64)
			r.RecentErrors, _ = strconv.ParseUint(row[12], 10, 64)
			r.RecentQ, _ = strconv.ParseFloat(row[13], 64)
			if s, ok := r.Stat(); ok {
				stats = append(stats, s)
			}
		}
		check("ClickHouse "+e.Name, stats)
	}
}
