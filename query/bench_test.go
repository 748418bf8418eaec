package query_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/meridian-net/meridian/collector/store/chtest"
	"github.com/meridian-net/meridian/query"
)

// TestQueryBench prints figures, not a verdict (make bench, with
// MERIDIAN_BENCH=1): latency-map and latency over MERIDIAN_BENCH_ROWS
// (default 50 million) generated rows spread over the last 24 hours, half
// RUM probe fetches and half agent results, plus a replayed batch of 0.1 %
// of each (marked replay = 1, as the collector marks them), on the 18.16
// server: wall time and rows/s as ClickHouse reports them, side by side for
// three forms of the raw query: as shipped (.Rows: exact without FINAL),
// FINAL (exact, the old form) and a plain read (replays counted twice);
// then latency-map and latency over their rollups.
func TestQueryBench(t *testing.T) {
	if os.Getenv("MERIDIAN_BENCH") == "" {
		t.Skip("a benchmark, not a test: run with MERIDIAN_BENCH=1 (make bench)")
	}
	if os.Getenv(chtest.EnvAddr) == "" { // `make bench` alone: a throwaway ClickHouse
		if out, err := exec.Command("../deploy/deps.sh", "clickhouse").CombinedOutput(); err != nil {
			t.Fatalf("deploy/deps.sh clickhouse: %v\n%s", err, out)
		}
		dir := t.TempDir()
		out, err := exec.Command("../deploy/clickhouse/local.sh", "start", dir).Output()
		if err != nil {
			t.Fatalf("deploy/clickhouse/local.sh start: %v\n%s", err, out)
		}
		t.Cleanup(func() { exec.Command("../deploy/clickhouse/local.sh", "stop", dir).Run() })
		httpAddr, _ := os.ReadFile(filepath.Join(dir, "http_addr"))
		t.Setenv(chtest.EnvAddr, strings.TrimSpace(string(out)))
		t.Setenv(chtest.EnvHTTP, strings.TrimSpace(string(httpAddr)))
	}
	rows := 50_000_000
	if s := os.Getenv("MERIDIAN_BENCH_ROWS"); s != "" {
		rows, _ = strconv.Atoi(s)
	}
	o, conn := chtest.New(t)
	e := chtest.Server(t, o.Database)
	now := time.Now().Truncate(time.Second)
	start := time.Now()
	half := rows / 2
	countries := "'" + strings.Join(strings.Fields("US BR DE FR GB JP IN AU CA MX AR ES IT NL SE PL TR ZA SG KR"), "', '") + "'"
	base := []string{
		fmt.Sprintf(`INSERT INTO rum_cdn (ts, site, pv, country, asn, kind, cdn, ttfb_ms, error, status, is_bot)
SELECT toDateTime(%d - number %% 86400), 's', toString(number), [%s][1 + number %% 20], toUInt32(64500 + number %% 80),
    'probe_cold', ['cdn-a', 'cdn-b', 'cdn-c', 'cdn-d'][1 + intDiv(number, 7) %% 4], 20 + (number %% 397), toUInt8(number %% 100 = 0), 200, 0
FROM numbers(%d)`, now.Unix(), countries, half),
		fmt.Sprintf(`INSERT INTO results (ts, id, agent, region, check_name, cdn_member, kind, target, ok, ttfb_ms, total_ms)
SELECT toDateTime(%d - number %% 86400), toString(number), concat('a-', toString(number %% 40)), 'r', 'www', ['cdn-a', 'cdn-b', 'cdn-c', 'cdn-d'][1 + intDiv(number, 7) %% 4],
    'http', 'https://x/', toUInt8(number %% 100 != 0), 15 + (number %% 301), 30 + (number %% 401)
FROM numbers(%d)`, now.Unix(), half),
	}
	replays := []string{ // a replayed batch: 0.1 % of each table again, marked
		fmt.Sprintf(`INSERT INTO rum_cdn (ts, site, pv, country, asn, kind, cdn, ttfb_ms, error, status, is_bot, replay)
SELECT toDateTime(%d - number %% 86400), 's', toString(number), [%s][1 + number %% 20], toUInt32(64500 + number %% 80),
    'probe_cold', ['cdn-a', 'cdn-b', 'cdn-c', 'cdn-d'][1 + intDiv(number, 7) %% 4], 20 + (number %% 397), toUInt8(number %% 100 = 0), 200, 0, 1
FROM numbers(%d) WHERE number %% 86400 < 86`, now.Unix(), countries, half),
		fmt.Sprintf(`INSERT INTO results (ts, id, agent, region, check_name, cdn_member, kind, target, ok, ttfb_ms, total_ms, replay)
SELECT toDateTime(%d - number %% 86400), toString(number), concat('a-', toString(number %% 40)), 'r', 'www', ['cdn-a', 'cdn-b', 'cdn-c', 'cdn-d'][1 + intDiv(number, 7) %% 4],
    'http', 'https://x/', toUInt8(number %% 100 != 0), 15 + (number %% 301), 30 + (number %% 401), 1
FROM numbers(%d) WHERE number %% 86400 < 86`, now.Unix(), half),
	}
	exec := func(qs []string) {
		for _, q := range qs {
			if _, err := e.Exec(q); err != nil {
				t.Fatal(err)
			}
		}
	}
	exec(base)
	t.Logf("inserted %d rows in %v", rows, time.Since(start).Round(time.Second))
	run := func(label, sql string, args []any) {
		var read uint64
		ctx := clickhouse.Context(context.Background(), clickhouse.WithProgress(func(p *clickhouse.Progress) { read += p.Rows }))
		var best time.Duration
		for i := range 3 {
			read = 0
			t0 := time.Now()
			rs, err := conn.Query(ctx, sql, args...)
			if err != nil {
				t.Fatalf("%s: %v", label, err)
			}
			for rs.Next() {
			}
			rs.Close()
			if d := time.Since(t0); i == 0 || d < best {
				best = d
			}
		}
		t.Logf("BENCH query %-55s %7.3f s  %6.1f M rows read/s", label, best.Seconds(), float64(read)/best.Seconds()/1e6)
	}
	benchForms(t, now, run, "no replays", false)
	exec(replays)
	benchForms(t, now, run, "0.1 % replayed", true)
	// Right after a bulk insert the rollups hold a state per insert block
	// for every minute and group; background merges fold them, as they
	// have for a day-old window in use. Both figures are reported.
	for _, tb := range []string{"rum_cdn_1m", "rum_cdn_1h", "results_member_1m", "results_member_1h"} {
		exec([]string{"OPTIMIZE TABLE " + tb + " FINAL"})
	}
	for _, name := range []string{"latency-map", "latency"} {
		r, err := query.Render(name, query.Options{Since: 24 * time.Hour, Rollup: true, By: byFor(name), Now: now.Add(time.Second)})
		if err != nil {
			t.Fatal(err)
		}
		run(name+" 24h, rollups merged: rollup", r.SQL, r.Args)
	}
}

// byFor is how benchForms groups each query.
func byFor(name string) []string {
	if name == "latency-map" {
		return []string{"country", "member"}
	}
	return nil
}

// benchForms runs latency-map and latency over 24 h: the raw forms (as
// shipped, and with all: FINAL and a plain read of the same query) and,
// with all, the rollups.
func benchForms(t *testing.T, now time.Time, run func(label, sql string, args []any), phase string, all bool) {
	for _, c := range []struct {
		name string
		o    query.Options
	}{
		{"latency-map", query.Options{Since: 24 * time.Hour, Raw: true, By: []string{"country", "member"}, Now: now.Add(time.Second)}},
		{"latency-map", query.Options{Since: 24 * time.Hour, Rollup: true, By: []string{"country", "member"}, Now: now.Add(time.Second)}},
		{"latency", query.Options{Since: 24 * time.Hour, Raw: true, Now: now.Add(time.Second)}},
		{"latency", query.Options{Since: 24 * time.Hour, Rollup: true, Now: now.Add(time.Second)}},
	} {
		r, err := query.Render(c.name, c.o)
		if err != nil {
			t.Fatal(err)
		}
		label := c.name + " 24h, " + phase + ":"
		if r.Rollup {
			if all {
				run(label+" rollup", r.SQL, r.Args)
			}
			continue
		}
		bound, err := chtest.Bind(r.SQL, r.Args...)
		if err != nil {
			t.Fatal(err)
		}
		run(label+" .Rows (exact)", bound, nil)
		run(label+" plain (replays twice)", rowsRE.ReplaceAllString(bound, "(SELECT * FROM $1 WHERE $2)"), nil)
		if all {
			run(label+" FINAL (exact)", rowsRE.ReplaceAllString(bound, "(SELECT * FROM $1 FINAL WHERE $2)"), nil)
		}
	}
}

// rowsRE matches a bound .Rows subquery (query/rows.go): its table and
// window, for the bench's FINAL and plain forms of the same query.
var rowsRE = regexp.MustCompile(`(?s)\(\n    SELECT \* FROM (\w+) WHERE (ts >= toDateTime\(\d+\) AND ts <= toDateTime\(\d+\)) AND replay = 0\n.*?LIMIT 1 BY [^\n]*\n\)`)
