package store_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/meridian-net/meridian/collector/store"
	"github.com/meridian-net/meridian/collector/store/chtest"
	"github.com/meridian-net/meridian/internal/result"
)

// retentionAges are how old the rows seedRetention writes are: today, two
// days just past a 30-day window, and one past a 400-day one.
var retentionAges = []time.Duration{0, 40 * 24 * time.Hour, 41 * 24 * time.Hour, 500 * 24 * time.Hour}

// seedRetention writes perAge results and perAge beacons (distinct ids and
// page views) for each of retentionAges, through conn's results and
// rum_pageviews: the tables themselves, or the Distributed tables on a
// cluster. The rollups follow through their materialized views.
func seedRetention(t *testing.T, conn driver.Conn, perAge int) {
	t.Helper()
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
	for i, age := range retentionAges {
		ts := now.Add(-age)
		for j := range perAge {
			r := result.New("a", "home", result.KindHTTP, "https://example.com/", ts)
			ms := 10.0
			r.OK, r.TotalMs = true, &ms
			rows = append(rows, store.Row{Result: *r, Region: "eu", ReceivedAt: now})
			lcp := 1000.0
			beacons = append(beacons, store.BeaconRow{
				Beacon:     store.Beacon{V: 1, Site: "s", PV: fmt.Sprintf("00000000-0000-0000-0000-%012d", i*perAge+j), URL: "https://shop.example/", Sample: 1, Vitals: &store.BeaconVitals{LCPMs: &lcp}},
				Visitor:    store.Visitor{Country: "NL"},
				ReceivedAt: ts,
			})
		}
	}
	if err := w.Write(ctx, rows); err != nil {
		t.Fatal(err)
	}
	if err := bw.Write(ctx, beacons); err != nil {
		t.Fatal(err)
	}
}

// retentionDays keep results and beacons 30 days and rollups 400: of
// retentionAges, results and rum_pageviews lose 3 days, each rollup 1.
var retentionDays = map[string]int{"results": 30, "beacons": 30, "rollups": 400}

func TestApplyRetention(t *testing.T) {
	o, conn := chtest.New(t)
	ctx := context.Background()
	now := time.Now()
	seedRetention(t, conn, 1)
	before := map[string]uint64{"results": 4, "rum_pageviews": 4, "results_1m": 4, "rum_pageviews_1m": 4, "results_member_1m": 4, "results_member_1h": 4}
	checkCounts(t, conn, o.Database, before)

	days := retentionDays // results and beacons 30 days, rollups 400
	dry, err := store.ApplyRetention(ctx, conn, o.Database, store.RetentionOptions{Days: days, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	// results and rum_pageviews: 40, 41 and 500 days old; each rollup that
	// holds rows (results_1m, rum_pageviews_1m, results_member_1m and _1h;
	// no probe fetches reach rum_cdn_1m or _1h): 500.
	if len(dry) != 10 {
		t.Errorf("dry run: got %d partitions %v, want 10", len(dry), dry)
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
	checkCounts(t, conn, o.Database, map[string]uint64{"results": 1, "rum_pageviews": 1, "results_1m": 3, "rum_pageviews_1m": 3, "results_member_1m": 3, "results_member_1h": 3})

	again, err := store.ApplyRetention(ctx, conn, o.Database, store.RetentionOptions{Days: days})
	if err != nil || len(again) != 0 {
		t.Errorf("second run: dropped %v (%v), want nothing", again, err)
	}
	if _, err := store.ApplyRetention(ctx, conn, "x; DROP TABLE y", store.RetentionOptions{Days: days}); err == nil {
		t.Error("a database name with SQL in it: want an error")
	}
	o.Cluster = "no_such_cluster"
	if _, err := store.ApplyClusterRetention(ctx, o, store.RetentionOptions{Days: days}); err == nil {
		t.Error("a cluster the server does not know: want an error")
	}
}

// TestApplyClusterRetention writes through the Distributed tables of the
// local two-shard cluster, so that both nodes hold old and recent days, and
// checks that retention with the cluster drops the old day partitions of
// every node's _local tables and keeps the recent ones.
func TestApplyClusterRetention(t *testing.T) {
	o, conns := chtest.NewCluster(t)
	ctx := context.Background()
	// 32 rows a day: the chance that one shard gets none of a day's is 2^-31.
	seedRetention(t, conns[0], 32)
	before := map[string]int{"results_local": 4, "rum_pageviews_local": 4, "results_1m_local": 4, "rum_pageviews_1m_local": 4}
	for i := range conns {
		checkPartitions(t, conns[i], o.Database, before)
	}

	if _, err := store.ApplyRetention(ctx, conns[0], o.Database, store.RetentionOptions{Days: retentionDays}); err == nil || !strings.Contains(err.Error(), "Distributed") {
		t.Errorf("single-node retention on a cluster database: got %v, want an error about its Distributed tables", err)
	}
	dry, err := store.ApplyClusterRetention(ctx, o, store.RetentionOptions{Days: retentionDays, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(dry) != 2*10 { // as TestApplyRetention: 10 per node
		t.Errorf("dry run: got %d partitions %v, want 10 on each of 2 nodes", len(dry), dry)
	}
	for i := range conns {
		checkPartitions(t, conns[i], o.Database, before)
	}

	dropped, err := store.ApplyClusterRetention(ctx, o, store.RetentionOptions{Days: retentionDays})
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(dropped) != fmt.Sprint(dry) {
		t.Errorf("dropped %v, want what the dry run listed: %v", dropped, dry)
	}
	perNode := map[string]int{}
	for _, d := range dropped {
		perNode[d.Node]++
		if !strings.HasSuffix(d.Table, "_local") || d.Rows == 0 || d.Day.After(time.Now().AddDate(0, 0, -30)) {
			t.Errorf("dropped %v: want a _local table's partition, with rows, older than 30 days", d)
		}
	}
	if addrs := chtest.ClusterAddrs(t); perNode[addrs[0]] != 10 || perNode[addrs[1]] != 10 {
		t.Errorf("dropped %v partitions per node, want 10 on each of %v", perNode, addrs)
	}
	for i := range conns {
		checkPartitions(t, conns[i], o.Database, map[string]int{"results_local": 1, "rum_pageviews_local": 1, "results_1m_local": 3, "rum_pageviews_1m_local": 3})
	}
	var left uint64
	if err := conns[1].QueryRow(ctx, "SELECT count() FROM results").Scan(&left); err != nil || left != 32 {
		t.Errorf("results left across the cluster: got %d (%v), want today's 32", left, err)
	}

	again, err := store.ApplyClusterRetention(ctx, o, store.RetentionOptions{Days: retentionDays})
	if err != nil || len(again) != 0 {
		t.Errorf("second run: dropped %v (%v), want nothing", again, err)
	}
}

// checkPartitions checks how many active day partitions each table has on
// the node conn talks to.
func checkPartitions(t *testing.T, conn driver.Conn, db string, want map[string]int) {
	t.Helper()
	for table, n := range want {
		var got uint64
		if err := conn.QueryRow(context.Background(), "SELECT uniqExact(partition_id) FROM system.parts WHERE database = ? AND table = ? AND active", db, table).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if int(got) != n {
			t.Errorf("%s: %d day partitions, want %d", table, got, n)
		}
	}
}

func checkCounts(t *testing.T, conn driver.Conn, db string, want map[string]uint64) {
	t.Helper()
	for table, n := range want {
		var got uint64
		q := "SELECT count() FROM " + db + "." + table
		if strings.HasSuffix(table, "_1m") {
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
