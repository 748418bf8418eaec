package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/meridian-net/meridian/collector/store"
	"github.com/meridian-net/meridian/internal/chtest"
	"github.com/meridian-net/meridian/internal/result"
)

func TestApplyRetention(t *testing.T) {
	o, conn := chtest.New(t)
	ctx := context.Background()
	w, err := store.NewWriter(conn, store.WriterOptions{MaxDelay: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	bw, err := store.NewBeaconWriter(conn, store.WriterOptions{MaxDelay: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer bw.Close()
	now := time.Now()
	var rows []store.Row
	var beacons []store.BeaconRow
	for i, age := range []time.Duration{0, 40 * 24 * time.Hour, 41 * 24 * time.Hour, 500 * 24 * time.Hour} {
		ts := now.Add(-age)
		r := result.New("a", "home", result.KindHTTP, "https://example.com/", ts)
		ms := 10.0
		r.OK, r.TotalMs = true, &ms
		rows = append(rows, store.Row{Result: *r, Region: "eu", ReceivedAt: now})
		lcp := 1000.0
		beacons = append(beacons, store.BeaconRow{
			Beacon:     store.Beacon{V: 1, Site: "s", PV: fmt.Sprintf("00000000-0000-0000-0000-%012d", i), URL: "https://shop.example/", Sample: 1, Vitals: &store.BeaconVitals{LCPMs: &lcp}},
			Visitor:    store.Visitor{Country: "NL"},
			ReceivedAt: ts,
		})
	}
	if err := w.Write(ctx, rows); err != nil {
		t.Fatal(err)
	}
	if err := bw.Write(ctx, beacons); err != nil {
		t.Fatal(err)
	}
	before := map[string]uint64{"results": 4, "rum_pageviews": 4, "results_1m": 4, "rum_pageviews_1m": 4}
	checkCounts(t, conn, o.Database, before)

	days := map[string]int{"results": 30, "beacons": 30, "rollups": 400}
	dry, err := store.ApplyRetention(ctx, conn, o.Database, store.RetentionOptions{Days: days, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	// results and rum_pageviews: 40, 41 and 500 days old; each rollup: 500.
	if len(dry) != 8 {
		t.Errorf("dry run: got %d partitions %v, want 8", len(dry), dry)
	}
	checkCounts(t, conn, o.Database, before)

	dropped, err := store.ApplyRetention(ctx, conn, o.Database, store.RetentionOptions{Days: days})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(dropped) != fmt.Sprint(dry) {
		t.Errorf("dropped %v, want what the dry run listed: %v", dropped, dry)
	}
	for _, d := range dropped {
		if d.Rows != 1 || d.Day.After(now.AddDate(0, 0, -30)) {
			t.Errorf("dropped %v: want one row, older than 30 days", d)
		}
	}
	checkCounts(t, conn, o.Database, map[string]uint64{"results": 1, "rum_pageviews": 1, "results_1m": 3, "rum_pageviews_1m": 3})

	again, err := store.ApplyRetention(ctx, conn, o.Database, store.RetentionOptions{Days: days})
	if err != nil || len(again) != 0 {
		t.Errorf("second run: dropped %v (%v), want nothing", again, err)
	}
	if _, err := store.ApplyRetention(ctx, conn, "x; DROP TABLE y", store.RetentionOptions{Days: days}); err == nil {
		t.Error("a database name with SQL in it: want an error")
	}
}

func checkCounts(t *testing.T, conn driver.Conn, db string, want map[string]uint64) {
	t.Helper()
	for table, n := range want {
		var got uint64
		q := "SELECT count() FROM " + db + "." + table
		if table == "results_1m" || table == "rum_pageviews_1m" {
			q = "SELECT count() FROM (SELECT minute FROM " + db + "." + table + " GROUP BY minute)"
		}
		if err := conn.QueryRow(context.Background(), q).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != n {
			t.Errorf("%s: %d rows (minutes), want %d", table, got, n)
		}
	}
}

func TestParseRetention(t *testing.T) {
	for in, want := range map[string]int{"30d": 30, "400d": 400, "720h": 30, "0": 0, "off": 0} {
		if got, err := store.ParseRetention(in); err != nil || got != want {
			t.Errorf("ParseRetention(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "1h", "-3d", "3.5d", "abc", "25h"} {
		if _, err := store.ParseRetention(in); err == nil {
			t.Errorf("ParseRetention(%q): want an error", in)
		}
	}
}
