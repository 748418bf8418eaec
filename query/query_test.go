package query_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/meridian-net/meridian/query"
)

func TestLatency(t *testing.T) {
	conn := seed(t)

	tab, err := query.Latency(context.Background(), conn, query.LatencyOptions{Since: time.Hour, By: []string{"region", "target"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(tab.Rows) != 2 {
		t.Fatalf("got %d rows, want 2 (eu, us): %v", len(tab.Rows), tab.Rows)
	}
	for i, want := range []struct {
		region   string
		p50, p99 float64
	}{{"eu", 50.5, 99}, {"us", 150.5, 199}} {
		row := tab.Rows[i]
		if row[0] != want.region || row[1] != "https://example.com/" || row[2] != uint64(110) || row[3] != uint64(10) {
			t.Errorf("row %d: got %v, want %s, target, n=110 (old result and replays excluded), failed=10", i, row, want.region)
		}
		p50, p99 := row[4].(float64), row[6].(float64)
		if p50 < want.p50-2 || p50 > want.p50+2 || p99 < want.p99-1 || p99 > want.p99+1.5 {
			t.Errorf("row %d: got p50=%v p99=%v, want about %v and %v", i, p50, p99, want.p50, want.p99)
		}
	}

	var out bytes.Buffer
	if err := query.Write(&out, tab, "table"); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "region") || strings.Index(lines[1], "https") != strings.Index(lines[0], "target") {
		t.Errorf("table not aligned:\n%s", out.String())
	}
	out.Reset()
	query.Write(&out, tab, "csv")
	if !strings.HasPrefix(out.String(), "region,target,n,failed,p50_ms,p95_ms,p99_ms\neu,https://example.com/,110,10,") {
		t.Errorf("got csv:\n%s", out.String())
	}
	out.Reset()
	query.Write(&out, tab, "json")
	var js []map[string]any
	if err := json.Unmarshal(out.Bytes(), &js); err != nil || len(js) != 2 || js[1]["region"] != "us" || js[1]["n"] != 110.0 {
		t.Errorf("got json %s (%v)", out.String(), err)
	}
}

func TestLatencyRejectsUnknownDimension(t *testing.T) {
	_, err := query.Latency(context.Background(), nil, query.LatencyOptions{Since: time.Hour, By: []string{"region; DROP TABLE results"}})
	if err == nil || !strings.Contains(err.Error(), "choose from") {
		t.Errorf("got %v, want an error listing the dimensions", err)
	}
}

func TestEmptyWindowPrintsNote(t *testing.T) {
	var out bytes.Buffer
	query.Write(&out, &query.Table{Columns: []string{"region", "n"}}, "table")
	if !strings.Contains(out.String(), "no results") {
		t.Errorf("got %q, want a note saying the window is empty", out.String())
	}
	if err := query.Write(&out, &query.Table{}, "xml"); err == nil {
		t.Error("format xml: got no error")
	}
}
