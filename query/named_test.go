package query_test

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/meridian-net/meridian/collector/store/chtest"
	"github.com/meridian-net/meridian/query"
)

// about is a float expected within tol (ClickHouse's quantile interpolates).
type about struct{ v, tol float64 }

var countries = map[string]string{"a-br": "BR", "a-us": "US"}

// namedCase is one named query asked one way and the rows it must answer.
type namedCase struct {
	name string
	o    query.Options
	cols []string
	want [][]any
}

func namedCases(now time.Time) []namedCase {
	o := func(by ...string) query.Options { return query.Options{Since: time.Hour, Now: now, By: by} }
	with := func(q query.Options, f ...string) query.Options {
		q.Filters = map[string]string{}
		for i := 0; i+1 < len(f); i += 2 {
			q.Filters[f[i]] = f[i+1]
		}
		return q
	}
	base := now.Truncate(time.Minute).Add(-10 * time.Minute).UTC()
	bucket := o()
	bucket.Bucket = "minute"
	return []namedCase{
		{"latency", o(), []string{"region", "target", "n", "failed", "p50_ms", "p95_ms", "p99_ms"}, [][]any{
			{"na", "https://b/", uint64(50), uint64(0), about{210, 0}, about{210, 0}, about{210, 0}},
			{"sa", "https://a/", uint64(110), uint64(10), about{60.5, 1}, about{105.05, 1}, about{109.01, 1}},
		}},
		{"latency", with(o("country", "check"), "kind", "http"), nil, [][]any{
			{"BR", "cdn-a", uint64(110), uint64(10), about{60.5, 1}, about{105.05, 1}, about{109.01, 1}},
			{"US", "cdn-b", uint64(50), uint64(0), about{210, 0}, about{210, 0}, about{210, 0}},
		}},
		{"latency-map", o(), []string{"country", "member", "source", "samples", "errors", "error_rate", "p50_ms", "p75_ms", "p95_ms"}, [][]any{
			{"BR", "cdn-a", "rum", uint64(110), uint64(10), 0.0909, about{50.5, 1}, about{75.25, 1}, about{95.05, 1}},
			{"BR", "cdn-a", "synthetic", uint64(110), uint64(10), 0.0909, about{50.5, 1}, about{75.25, 1}, about{95.05, 1}},
			{"US", "cdn-b", "synthetic", uint64(50), uint64(0), 0.0, about{200, 0}, about{200, 0}, about{200, 0}},
		}},
		{"latency-map", o("country", "member"), []string{"country", "member", "source", "samples", "errors", "error_rate", "p50_ms", "p75_ms", "p95_ms"}, [][]any{
			{"BR", "cdn-a", "all", uint64(220), uint64(20), 0.0909, about{50.5, 1}, about{75.25, 1}, about{95.05, 1}},
			{"US", "cdn-b", "all", uint64(50), uint64(0), 0.0, about{200, 0}, about{200, 0}, about{200, 0}},
		}},
		{"latency-map", with(o("country", "cdn"), "source", "rum", "site", "shop", "device", "mobile"), []string{"country", "cdn", "source", "samples", "errors", "error_rate", "p50_ms", "p75_ms", "p95_ms"}, [][]any{
			{"BR", "cdn-a", "rum", uint64(110), uint64(10), 0.0909, about{50.5, 1}, about{75.25, 1}, about{95.05, 1}},
		}},
		{"latency-map", bucket, []string{"time", "country", "member", "source", "samples", "errors", "error_rate", "p50_ms", "p75_ms", "p95_ms"}, [][]any{
			{now.Add(-2 * time.Minute).Truncate(time.Minute).UTC(), "BR", "cdn-a", "rum", uint64(110), uint64(10), 0.0909, about{50.5, 1}, about{75.25, 1}, about{95.05, 1}},
			{now.Add(-2 * time.Minute).Truncate(time.Minute).UTC(), "BR", "cdn-a", "synthetic", uint64(110), uint64(10), 0.0909, about{50.5, 1}, about{75.25, 1}, about{95.05, 1}},
			{now.Add(-2 * time.Minute).Truncate(time.Minute).UTC(), "US", "cdn-b", "synthetic", uint64(50), uint64(0), 0.0, about{200, 0}, about{200, 0}, about{200, 0}},
		}},
		{"cdns", o(), []string{"country", "cdn", "samples", "errors", "error_rate", "pops", "hit_share", "ttfb_p75_ms"}, [][]any{
			{"BR", "fastly", uint64(110), uint64(10), 0.0909, "GRU", 0.75, about{75.25, 1}},
			{"US", "akamai", uint64(50), uint64(0), 0.0, "EWR IAD", nil, about{200, 0}},
		}},
		{"vitals", o(), []string{"country", "pageviews", "lcp_p75_ms", "inp_p75_ms", "cls_p75", "fcp_p75_ms", "ttfb_p75_ms", "lcp_good_share", "inp_good_share", "cls_good_share"}, [][]any{
			{"BR", uint64(100), about{7525, 100}, about{752.5, 10}, about{0.7525, 0.01}, about{752.5, 10}, about{75.25, 1}, 0.25, 0.2, 0.1},
			{"US", uint64(10), nil, nil, nil, nil, about{5, 0}, nil, nil, nil},
		}},
		{"vitals", with(o("page", "device"), "site", "shop", "country", "BR"), nil, [][]any{
			{"/p", "mobile", uint64(100), about{7525, 100}, about{752.5, 10}, about{0.7525, 0.01}, about{752.5, 10}, about{75.25, 1}, 0.25, 0.2, 0.1},
		}},
		{"regions", o(), []string{"region", "target", "n", "failed", "dns_p50_ms", "connect_p50_ms", "tls_p50_ms", "ttfb_p50_ms", "total_p50_ms", "throughput_p50_bps"}, [][]any{
			{"na", "https://b/", uint64(50), uint64(0), 1.0, 2.0, 3.0, 200.0, 210.0, nil},
			{"sa", "https://a/", uint64(110), uint64(10), 1.0, 2.0, 3.0, about{50.5, 1}, about{60.5, 1}, about{50.5e6, 1e6}},
		}},
		{"fleet", o(), []string{"agent", "agents", "reporting", "last_seen", "lag_s", "spool_results", "spool_bytes"}, [][]any{
			{"a-br", uint64(1), uint64(1), now.Add(-30 * time.Second).UTC(), int64(30), uint64(7), uint64(700)},
			{"a-silent", uint64(1), uint64(0), nil, nil, uint64(0), uint64(0)},
			{"a-us", uint64(1), uint64(1), now.Add(-10 * time.Second).UTC(), int64(10), uint64(0), uint64(0)},
		}},
		{"fleet", o("country"), nil, [][]any{
			{"", uint64(1), uint64(0), nil, nil, uint64(0), uint64(0)},
			{"BR", uint64(1), uint64(1), now.Add(-30 * time.Second).UTC(), int64(30), uint64(7), uint64(700)},
			{"US", uint64(1), uint64(1), now.Add(-10 * time.Second).UTC(), int64(10), uint64(0), uint64(0)},
		}},
		{"tls", o(), []string{"region", "target", "n", "certs", "cert_subject", "cert_issuer", "min_days_left", "trusted_share", "tls_versions"}, [][]any{
			{"na", "https://b/", uint64(50), uint64(1), "CN=b", "E1", 50.0, nil, "TLS 1.2"},
			{"sa", "https://a/", uint64(100), uint64(1), "CN=a", "R3", 10.0, 0.9, "TLS 1.3"},
		}},
		{"steering", o(), []string{"time", "pool", "scope", "member", "decisions", "weight", "avg_weight", "state"}, [][]any{
			{base, "www", "global", "cdn-a", uint64(2), uint8(70), 65.0, "ok"},
			{base, "www", "global", "cdn-b", uint64(2), uint8(30), 35.0, "ok"},
			{base.Add(time.Minute), "www", "global", "cdn-a", uint64(1), uint8(80), 80.0, "ok"},
			{base.Add(time.Minute), "www", "global", "cdn-b", uint64(1), uint8(20), 20.0, "ok"},
		}},
	}
}

// TestNamedQueries runs every named query through Run on the 18.16 server
// and holds it to the seeded data's known answers (exact counts, quantiles
// within tolerance; replayed rows count once); then runs the same rendered
// SQL on 18.16 and ClickHouse 26.x as text and holds both to those answers.
func TestNamedQueries(t *testing.T) {
	o, conn := chtest.New(t)
	engines := chtest.Engines(t, o.Database)
	now := time.Now().Truncate(time.Second)
	seedAll(t, engines[0], now)
	chtest.CopyTables(t, engines[0], engines[1], "results", "rum_cdn", "rum_pageviews", "agents", "agent_countries", "agent_heartbeats", "steering_history")

	seen := map[string]bool{}
	for _, c := range namedCases(now) {
		seen[c.name] = true
		label := fmt.Sprintf("%s %v %v bucket=%q", c.name, c.o.By, c.o.Filters, c.o.Bucket)
		tab, err := query.Run(context.Background(), conn, c.name, c.o)
		if err != nil {
			t.Errorf("%s: %v", label, err)
			continue
		}
		if c.cols != nil && strings.Join(tab.Columns, ",") != strings.Join(c.cols, ",") {
			t.Errorf("%s: got columns %v, want %v", label, tab.Columns, c.cols)
		}
		checkRows(t, label, tab.Rows, c.want)

		c.o.Countries = countries
		r, err := query.Render(c.name, c.o)
		if err != nil {
			t.Fatal(err)
		}
		if r.Rollup {
			t.Errorf("%s: read the rollup over a 1h window", label)
		}
		bound, err := chtest.Bind(r.SQL, r.Args...)
		if err != nil {
			t.Fatal(err)
		}
		answers := chtest.Both(t, engines, []chtest.Stmt{{Name: label, SQL: bound}})
		for j, e := range engines {
			if answers[0][j].Err == nil {
				checkText(t, label+" on ClickHouse "+e.Name, answers[0][j].Rows, c.want)
			}
		}
	}
	for _, q := range query.List() {
		if !seen[q.Name] {
			t.Errorf("query %s has no test case in namedCases", q.Name)
		}
	}
}

func checkRows(t *testing.T, label string, got, want [][]any) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: got %d rows %v, want %d %v", label, len(got), got, len(want), want)
		return
	}
	for i := range want {
		if len(got[i]) != len(want[i]) {
			t.Errorf("%s: row %d is %v, want %v", label, i, got[i], want[i])
			continue
		}
		for j, w := range want[i] {
			if !same(got[i][j], w) {
				t.Errorf("%s: row %d column %d is %#v (row %v), want %v", label, i, j, got[i][j], got[i], w)
			}
		}
	}
}

func same(got, want any) bool {
	switch w := want.(type) {
	case about:
		g, ok := got.(float64)
		return ok && math.Abs(g-w.v) <= w.tol+1e-9
	case float64:
		g, ok := got.(float64)
		return ok && math.Abs(g-w) < 1e-4
	case time.Time:
		g, ok := got.(time.Time)
		return ok && g.Equal(w)
	}
	return got == want
}

// checkText compares an engine's TabSeparated answer with the expected
// values: NULL and nan stand for nil, times are compared as Unix seconds.
func checkText(t *testing.T, label string, got [][]string, want [][]any) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: got %d rows %v, want %d", label, len(got), got, len(want))
		return
	}
	for i := range want {
		if len(got[i]) != len(want[i]) {
			t.Errorf("%s: row %d is %v, want %v", label, i, got[i], want[i])
			continue
		}
		for j, w := range want[i] {
			g := got[i][j]
			ok := true
			switch w := w.(type) {
			case nil:
				ok = g == `\N` || g == "nan" || g == "-nan" || strings.HasPrefix(g, "1970-01-01") || g == "0000-00-00 00:00:00"
			case about:
				f, err := strconv.ParseFloat(g, 64)
				ok = err == nil && math.Abs(f-w.v) <= w.tol+1e-6
			case float64:
				f, err := strconv.ParseFloat(g, 64)
				ok = err == nil && math.Abs(f-w) < 1e-4
			case time.Time:
				ok = g != "" && !strings.HasPrefix(g, "1970")
			default:
				ok = g == fmt.Sprint(w)
			}
			if !ok {
				t.Errorf("%s: row %d column %d is %q (row %v), want %v", label, i, j, g, got[i], w)
			}
		}
	}
}
