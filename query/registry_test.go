package query_test

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/meridian-net/meridian/collector/store/chtest"
	"github.com/meridian-net/meridian/query"
)

// TestListPurposes: every query opens with "-- NAME: purpose", and no
// comment holds a template action (it would bind its values twice).
func TestListPurposes(t *testing.T) {
	qs := query.List()
	if len(qs) < 8 {
		t.Fatalf("got %d queries, want at least 8", len(qs))
	}
	for _, q := range qs {
		if q.Purpose == "" || strings.Contains(q.Purpose, "\n") {
			t.Errorf("query %s: purpose %q, want its file's one-line -- %s: purpose", q.Name, q.Purpose, q.Name)
		}
	}
	files, _ := fs.Glob(os.DirFS("."), "*.sql")
	for _, f := range files {
		b, _ := os.ReadFile(f)
		for i, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(strings.TrimSpace(line), "--") && strings.Contains(line, "{{") {
				t.Errorf("%s:%d: a template action in a comment: %s", f, i+1, line)
			}
		}
	}
}

func TestOptionErrors(t *testing.T) {
	h := query.Options{Since: time.Hour}
	for _, c := range []struct {
		name string
		o    query.Options
		want string
	}{
		{"nope", h, `unknown query "nope": choose from cdns, fleet,`},
		{"vitals", query.Options{Since: time.Hour, By: []string{"target"}}, `query vitals cannot group by "target": choose from browser, country, device, os, page, region, site`},
		{"vitals", query.Options{Since: time.Hour, Filters: map[string]string{"target": "x"}}, "query vitals takes no --target filter: it takes --site, --country, --region, --device"},
		{"steering", query.Options{Since: time.Hour, Filters: map[string]string{"site": "x"}}, "query steering takes no --site filter: it takes --cdn"},
		{"latency", query.Options{Since: time.Hour, By: []string{"agent"}, Rollup: true}, "query latency cannot read a rollup: the rollup has no agent"},
		{"cdns", query.Options{Since: time.Hour, Rollup: true}, "query cdns cannot read a rollup: it has no rollup"},
		{"latency", query.Options{Since: time.Hour, Rollup: true, Raw: true}, "--rollup and --raw contradict"},
		{"cdns", query.Options{Since: time.Hour, By: []string{"cdn", "cdn"}}, "--by names cdn twice"},
		{"fleet", query.Options{Since: time.Hour, Bucket: "minute"}, "query fleet cannot be bucketed by time"},
		{"latency", query.Options{Since: time.Hour, Bucket: "week"}, `unknown --bucket "week"`},
		{"latency", query.Options{}, "give --since"},
		{"latency", query.Options{From: time.Unix(2000, 0), To: time.Unix(1000, 0)}, "empty window"},
	} {
		_, err := query.Run(context.Background(), nil, c.name, c.o)
		if err == nil || !strings.Contains(err.Error(), c.want) || !query.IsUsage(err) {
			t.Errorf("%s %+v: got %v, want a usage error containing %q", c.name, c.o, err, c.want)
		}
	}
}

// TestRollupChoice: long windows read the rollup when it holds the grouping
// and filters; --raw and short windows read the raw rows.
func TestRollupChoice(t *testing.T) {
	for _, c := range []struct {
		name string
		o    query.Options
		want bool
	}{
		{"latency", query.Options{Since: 24 * time.Hour}, true},
		{"latency", query.Options{Since: time.Hour}, false},
		{"latency", query.Options{Since: 24 * time.Hour, Raw: true}, false},
		{"latency", query.Options{Since: 24 * time.Hour, By: []string{"agent"}}, false},
		{"latency", query.Options{Since: 24 * time.Hour, Filters: map[string]string{"country": "BR"}}, false},
		{"latency", query.Options{Since: 24 * time.Hour, Filters: map[string]string{"kind": "http"}, Bucket: "hour"}, true},
		{"latency", query.Options{Since: time.Hour, Rollup: true}, true},
		{"vitals", query.Options{Since: 24 * time.Hour, By: []string{"country", "site"}}, true},
		{"vitals", query.Options{Since: 24 * time.Hour, By: []string{"device"}}, false},
		{"latency-map", query.Options{Since: 24 * time.Hour}, true},
		{"latency-map", query.Options{Since: 24 * time.Hour, By: []string{"country", "site", "device", "region", "target", "source"}, Filters: map[string]string{"cdn": "x", "source": "rum"}, Bucket: "hour"}, true},
		{"latency-map", query.Options{Since: 24 * time.Hour, Raw: true}, false},
		{"latency-map", query.Options{Since: time.Hour}, false},
		{"latency-map", query.Options{Since: time.Hour, Rollup: true}, true},
	} {
		r, err := query.Render(c.name, c.o)
		if err != nil {
			t.Errorf("%s %+v: %v", c.name, c.o, err)
			continue
		}
		if r.Rollup != c.want {
			t.Errorf("%s %+v: rollup %v, want %v", c.name, c.o, r.Rollup, c.want)
		}
	}
}

// TestRollups reads the rollups (results_1m, rum_pageviews_1m, rum_cdn_1m,
// results_member_1m) that the seeded inserts filled: the same answers as
// the raw forms except that a replayed row counts again (the views see
// inserts, not merges), and on both engines.
func TestRollups(t *testing.T) {
	o, conn := chtest.New(t)
	engines := chtest.Engines(t, o.Database)
	now := time.Now().Truncate(time.Second)
	seedAll(t, engines[0], now)
	chtest.CopyTables(t, engines[0], engines[1], "results", "rum_pageviews", "rum_cdn")
	// latency-map: seedAll replays the first 20 results of a-br and the
	// first 20 RUM probe fetches (ttfb 1..20, none failed), so each BR row
	// counts 130 samples where the raw form counts 110, with the same 10
	// errors, and its quantiles are over 1..100 plus 1..20 again: p50 40.5,
	// p75 70.25, p95 94.05 where the raw form has 50.5, 75.25, 95.05.
	mapCols := []string{"country", "member", "source", "samples", "errors", "error_rate", "p50_ms", "p75_ms", "p95_ms"}
	day := query.Options{Since: 24 * time.Hour, Now: now} // long enough to read the rollup unasked
	mapBy := func(by []string, f ...string) query.Options {
		o := day
		o.By = by
		if len(f) > 0 {
			o.Filters = map[string]string{}
			for i := 0; i+1 < len(f); i += 2 {
				o.Filters[f[i]] = f[i+1]
			}
		}
		return o
	}
	mapHour := day
	mapHour.Bucket = "hour"
	for _, c := range []namedCase{
		{"latency-map", day, mapCols, [][]any{
			{"BR", "cdn-a", "rum", uint64(130), uint64(10), 0.0769, about{40.5, 1}, about{70.25, 1}, about{94.05, 1}},
			{"BR", "cdn-a", "synthetic", uint64(130), uint64(10), 0.0769, about{40.5, 1}, about{70.25, 1}, about{94.05, 1}},
			{"US", "cdn-b", "synthetic", uint64(50), uint64(0), 0.0, about{200, 0}, about{200, 0}, about{200, 0}},
		}},
		{"latency-map", mapBy([]string{"country", "member"}), nil, [][]any{
			{"BR", "cdn-a", "all", uint64(260), uint64(20), 0.0769, about{40.5, 1}, about{70.25, 1}, about{94.05, 1}},
			{"US", "cdn-b", "all", uint64(50), uint64(0), 0.0, about{200, 0}, about{200, 0}, about{200, 0}},
		}},
		{"latency-map", mapBy([]string{"country", "cdn", "site", "device", "region"}, "source", "rum", "site", "shop", "device", "mobile"), nil, [][]any{
			{"BR", "cdn-a", "shop", "mobile", "SP", "rum", uint64(130), uint64(10), 0.0769, about{40.5, 1}, about{70.25, 1}, about{94.05, 1}},
		}},
		{"latency-map", mapBy([]string{"region", "target", "source"}, "country", "US"), nil, [][]any{
			{"na", "https://b/", "synthetic", uint64(50), uint64(0), 0.0, about{200, 0}, about{200, 0}, about{200, 0}},
		}},
		{"latency-map", mapHour, nil, [][]any{
			{now.Add(-2 * time.Minute).Truncate(time.Hour).UTC(), "BR", "cdn-a", "rum", uint64(130), uint64(10), 0.0769, about{40.5, 1}, about{70.25, 1}, about{94.05, 1}},
			{now.Add(-2 * time.Minute).Truncate(time.Hour).UTC(), "BR", "cdn-a", "synthetic", uint64(130), uint64(10), 0.0769, about{40.5, 1}, about{70.25, 1}, about{94.05, 1}},
			{now.Add(-2 * time.Minute).Truncate(time.Hour).UTC(), "US", "cdn-b", "synthetic", uint64(50), uint64(0), 0.0, about{200, 0}, about{200, 0}, about{200, 0}},
		}},

		{"latency", query.Options{Since: time.Hour, Now: now, Rollup: true}, nil, [][]any{
			{"na", "https://b/", uint64(50), uint64(0), about{210, 0}, about{210, 0}, about{210, 0}},
			// the replay adds the 20 lowest totals again: p50 falls to about 50.5
			{"sa", "https://a/", uint64(130), uint64(10), about{55, 6}, about{105.05, 2}, about{109.01, 2}},
		}},
		{"vitals", query.Options{Since: time.Hour, Now: now, Rollup: true, By: []string{"site", "country"}, Bucket: "hour"}, nil, [][]any{
			{now.Add(-2 * time.Minute).Truncate(time.Hour).UTC(), "shop", "BR", uint64(120), about{7525, 800}, about{752.5, 80}, nil, about{752.5, 80}, about{75.25, 8}, nil, nil, nil},
			{now.Add(-2 * time.Minute).Truncate(time.Hour).UTC(), "shop", "US", uint64(10), nil, nil, nil, nil, about{5, 0}, nil, nil, nil},
		}},
	} {
		label := fmt.Sprintf("%s over the rollup %v %v bucket=%q", c.name, c.o.By, c.o.Filters, c.o.Bucket)
		tab, err := query.Run(context.Background(), conn, c.name, c.o)
		if err != nil {
			t.Fatalf("%s: %v", label, err)
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
		if !r.Rollup {
			t.Errorf("%s: read the raw rows, want the rollup", label)
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

	// The same day read raw (--raw): the rollup's counts are the raw counts
	// plus the replays (20 results and 20 RUM fetches for BR, none for US),
	// its errors are the raw errors (no failure was replayed).
	raw := day
	raw.Raw = true
	rawTab, err := query.Run(context.Background(), conn, "latency-map", raw)
	if err != nil {
		t.Fatal(err)
	}
	rollTab, err := query.Run(context.Background(), conn, "latency-map", day)
	if err != nil {
		t.Fatal(err)
	}
	replays := map[string]uint64{"BR cdn-a rum": 20, "BR cdn-a synthetic": 20, "US cdn-b synthetic": 0}
	if len(rawTab.Rows) != len(replays) || len(rollTab.Rows) != len(replays) {
		t.Fatalf("latency-map: %d raw rows %v and %d rollup rows %v, want %d each", len(rawTab.Rows), rawTab.Rows, len(rollTab.Rows), rollTab.Rows, len(replays))
	}
	for i, rr := range rawTab.Rows {
		key := fmt.Sprint(rr[0], " ", rr[1], " ", rr[2])
		ro := rollTab.Rows[i]
		n, ok := replays[key]
		if !ok || fmt.Sprint(ro[:3]) != fmt.Sprint(rr[:3]) {
			t.Errorf("latency-map row %d: raw %v, rollup %v: want the same groups, one of %v", i, rr, ro, replays)
			continue
		}
		if ro[3] != rr[3].(uint64)+n || ro[4] != rr[4] {
			t.Errorf("latency-map %s: rollup samples %v errors %v, raw %v and %v: want the raw samples + %d replays and the same errors", key, ro[3], ro[4], rr[3], rr[4], n)
		}
	}
}

// TestRunReportsProgress: Run passes the context's query options on, so
// ClickHouse's progress packets reach a clickhouse.WithProgress callback.
func TestRunReportsProgress(t *testing.T) {
	conn := seed(t)
	var mu sync.Mutex
	var rows uint64
	ctx := clickhouse.Context(context.Background(), clickhouse.WithProgress(func(p *clickhouse.Progress) {
		mu.Lock()
		rows += p.Rows
		mu.Unlock()
	}))
	if _, err := query.Run(ctx, conn, "regions", query.Options{Since: 24 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if rows == 0 {
		t.Error("no rows reported read through progress packets")
	}
}
