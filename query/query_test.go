package query_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/meridian-net/meridian/collector/store"
	"github.com/meridian-net/meridian/internal/chtest"
	"github.com/meridian-net/meridian/internal/result"
	"github.com/meridian-net/meridian/query"
)

func TestLatency(t *testing.T) {
	_, conn := chtest.New(t)
	w, err := store.NewWriter(conn, store.WriterOptions{MaxDelay: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	now := time.Now()
	var rows []store.Row
	add := func(region string, r *result.Result) {
		rows = append(rows, store.Row{Result: *r, Region: region, ReceivedAt: now})
	}
	for i := 1; i <= 110; i++ {
		for _, region := range []string{"eu", "us"} {
			r := result.New("a-"+region, "home", result.KindHTTP, "https://example.com/", now.Add(-time.Minute))
			if i <= 100 {
				ms := float64(i)
				if region == "us" {
					ms += 100
				}
				r.OK, r.TotalMs = true, &ms
			} else {
				r.Fail(result.ErrConnectRefused, nil)
			}
			add(region, r)
		}
	}
	old := result.New("a-eu", "home", result.KindHTTP, "https://example.com/", now.Add(-3*time.Hour))
	ms := 9999.0
	old.OK, old.TotalMs = true, &ms
	add("eu", old)
	if err := w.Write(context.Background(), rows); err != nil {
		t.Fatal(err)
	}
	if err := w.Write(context.Background(), rows[:20]); err != nil { // a replay
		t.Fatal(err)
	}

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
