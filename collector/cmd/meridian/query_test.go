package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/meridian-net/meridian/collector/store/chtest"
	"github.com/meridian-net/meridian/query"
)

// TestQueryCommands runs named queries the way users do, over RUM probe
// fetches (BR via cdn-a: ttfb 1..10, one replayed) and agent results.
func TestQueryCommands(t *testing.T) {
	o, _ := chtest.New(t)
	ts := time.Now().Add(-2 * time.Minute).Unix()
	var rum, res []string
	for i := 1; i <= 10; i++ {
		rum = append(rum, fmt.Sprintf("(toDateTime(%d), 'shop', 'pv%d', 'BR', 'mobile', 0, 'probe_cold', 'cdn-a', %d, 0, 200)", ts, i, i))
		res = append(res, fmt.Sprintf("(toDateTime(%d), 'id%d', 'a-1', 'eu', 'cdn-b', 'http', 'https://b/', 1, %d, %d)", ts, i, 100+i, 110+i))
	}
	e := chtest.Server(t, o.Database)
	for _, q := range []string{
		"INSERT INTO rum_cdn (ts, site, pv, country, device, is_bot, kind, cdn, ttfb_ms, error, status) VALUES " + strings.Join(rum, ", "),
		"INSERT INTO rum_cdn (ts, site, pv, country, device, is_bot, kind, cdn, ttfb_ms, error, status, replay) VALUES " + strings.TrimSuffix(rum[0], ")") + ", 1)",
		"INSERT INTO results (ts, id, agent, region, check_name, kind, target, ok, ttfb_ms, total_ms) VALUES " + strings.Join(res, ", "),
	} {
		if _, err := e.Exec(q); err != nil {
			t.Fatal(err)
		}
	}

	out := mustRun(t, o, "query", "list")
	for _, q := range query.List() {
		if !strings.Contains(out, q.Name) || !strings.Contains(out, q.Purpose) {
			t.Errorf("query list: no line for %s (%s):\n%s", q.Name, q.Purpose, out)
		}
	}

	out = mustRun(t, o, "query", "latency-map", "--since", "1h", "--format", "csv")
	for _, want := range []string{
		"country,member,source,samples,errors,error_rate,p50_ms,p75_ms,p95_ms\n",
		"BR,cdn-a,rum,10,0,0,5.5,",
		",cdn-b,synthetic,10,0,0,105.5,", // a-1 has no country
	} {
		if !strings.Contains(out, want) {
			t.Errorf("query latency-map: want %q in:\n%s", want, out)
		}
	}
	dir := t.TempDir()
	mustRun(t, o, "query", "latency-map", "--since", "1h", "--svg", filepath.Join(dir, "map.svg"), "--png", filepath.Join(dir, "map.png"))
	for _, f := range []string{"map.svg", "map-heatmap.svg", "map.png", "map-heatmap.png"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil || len(b) < 1000 {
			t.Errorf("query latency-map --svg/--png: %s: %d bytes (%v), want a picture", f, len(b), err)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "map-heatmap.svg")); !bytes.Contains(b, []byte("cdn-a")) || !bytes.Contains(b, []byte("BR")) {
		t.Errorf("the heatmap does not name cdn-a and BR")
	}
	if _, code := meridian(t, o, "query", "fleet", "--svg", filepath.Join(dir, "fleet.svg")); code != 1 {
		t.Errorf("query fleet --svg: exit %d, want 1 (no latency column to draw)", code)
	}
	from := time.Unix(ts, 0).Add(-time.Minute).UTC().Format(time.RFC3339)
	to := time.Unix(ts, 0).Add(time.Minute).UTC().Format(time.RFC3339)
	out = mustRun(t, o, "query", "latency", "--from", from, "--to", to, "--by", "region,check", "--target", "https://b/")
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 2 || !strings.HasPrefix(lines[1], "eu") || !strings.Contains(lines[1], "cdn-b") || !strings.Contains(lines[1], "115.5") {
		t.Errorf("query latency --from --to: got\n%s", out)
	}
	out = mustRun(t, o, "query", "latency", "--since", "1h", "--rollup", "--by", "region", "--format", "json")
	if !strings.Contains(out, `"n": 10`) {
		t.Errorf("query latency --rollup: got\n%s", out)
	}

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"query", "vitals", "--target", "x"}, "query vitals takes no --target filter: it takes --site, --country, --region, --device"},
		{[]string{"query", "latency", "--by", "agent", "--rollup"}, "the rollup has no agent"},
		{[]string{"query", "cdns", "--by", "nope"}, `cannot group by "nope"`},
		{[]string{"query", "latency", "--from", "yesterday"}, "want RFC 3339"},
		{[]string{"query", "latency", "--format", "xml"}, "unknown --format"},
	} {
		out, code := meridian(t, o, c.args...)
		if code != 2 || !strings.Contains(out, c.want) {
			t.Errorf("meridian %s: exit %d, want 2 and %q:\n%s", strings.Join(c.args, " "), code, c.want, out)
		}
	}
}

// TestProgress: nothing in the first second, then the rows read so far on
// one line, cleared at the end.
func TestProgress(t *testing.T) {
	var w bytes.Buffer
	now := time.Unix(0, 0)
	p := newProgress(&w, func() time.Time { return now })
	p.update(&clickhouse.Progress{Rows: 1000})
	if w.Len() != 0 {
		t.Errorf("before a second: printed %q", w.String())
	}
	now = now.Add(1500 * time.Millisecond)
	p.update(&clickhouse.Progress{Rows: 500})
	p.done()
	if got := w.String(); got != "\r1500 rows read\r\033[K" {
		t.Errorf("got %q", got)
	}
}
