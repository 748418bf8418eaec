package store_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/meridian-net/meridian/collector/store"
	"github.com/meridian-net/meridian/collector/store/chtest"
	"github.com/meridian-net/meridian/internal/result"
	"github.com/meridian-net/meridian/query"
)

// TestMigrationsRenderBothWays needs no server: every migration renders for
// a single node, a cluster and a replicated cluster, with one table each and
// a Distributed twin on clusters.
func TestMigrationsRenderBothWays(t *testing.T) {
	ms, err := store.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		single, err := m.Statements(store.Options{Database: "db"})
		if err != nil {
			t.Fatal(err)
		}
		if len(single) != 1 || strings.Contains(single[0], "_local (") || strings.Contains(single[0], "{{") {
			t.Errorf("%s single node: got %q", m.Name, single)
		}
		cl, err := m.Statements(store.Options{Database: "db", Cluster: "c1"})
		if err != nil {
			t.Fatal(err)
		}
		if m.ShardBy == "" {
			continue // not a table: nothing to distribute
		}
		if len(cl) != 2 || !strings.Contains(cl[0], "_local (") || strings.Contains(cl[0], "Replicated") ||
			!strings.Contains(cl[1], "ENGINE = Distributed('c1', 'db', '") || !strings.HasSuffix(cl[1], ", "+m.ShardBy+")") {
			t.Errorf("%s on a cluster: got %q", m.Name, cl)
		}
		rep, err := m.Statements(store.Options{Database: "db", Cluster: "c1", Replicated: true})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(rep[0], "MergeTree('/clickhouse/tables/{shard}/db/") || !strings.Contains(rep[0], "ENGINE = Replicated") {
			t.Errorf("%s replicated: got %q", m.Name, rep[0])
		}
	}

	agents := ms[0]
	rep, _ := agents.Statements(store.Options{Database: "db", Cluster: "c1", Replicated: true})
	if want := "ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/db/agents', '{replica}', version)"; !strings.Contains(rep[0], want) {
		t.Errorf("agents replicated: got %q, want it to contain %s", rep[0], want)
	}
	if want := "CREATE TABLE IF NOT EXISTS db.agents AS db.agents_local ENGINE = Distributed('c1', 'db', 'agents_local', cityHash64(name))"; rep[1] != want {
		t.Errorf("agents twin: got %q, want %q", rep[1], want)
	}

	for _, bad := range []store.Migration{
		{Name: "engine_first", SQL: `CREATE TABLE x (a UInt8) ENGINE = {{.Engine "MergeTree"}} ORDER BY a`},
		{Name: "no_header", SQL: `CREATE TABLE {{.Table "x"}} (a UInt8) ENGINE = {{.Engine "MergeTree"}} ORDER BY a`},
		{Name: "header_no_table", ShardBy: "a", SQL: `CREATE VIEW {{.DB}}.v AS SELECT 1`},
		{Name: "bad_name", ShardBy: "a", SQL: `CREATE TABLE {{.Table "x; DROP"}} (a UInt8) ENGINE = {{.Engine "MergeTree"}} ORDER BY a`},
	} {
		if _, err := bad.Statements(store.Options{Database: "db", Cluster: "c1"}); err == nil {
			t.Errorf("migration %s: got no error", bad.Name)
		}
	}
	mv := store.Migration{Name: "mv", SQL: `CREATE MATERIALIZED VIEW IF NOT EXISTS {{.DB}}.x_mv TO {{.Table "x_1m"}} AS SELECT a FROM {{.Table "x"}}`}
	got, err := mv.Statements(store.Options{Database: "db", Cluster: "c1"})
	if err != nil || len(got) != 1 || got[0] != "CREATE MATERIALIZED VIEW IF NOT EXISTS db.x_mv TO db.x_1m_local AS SELECT a FROM db.x_local" {
		t.Errorf("view over local tables: got %q, %v", got, err)
	}
}

// TestCluster runs against the local two-shard cluster that `make test`
// starts (local.sh start-cluster): migrate twice, write through the
// Distributed table on one node, read from the other, replays count once.
func TestCluster(t *testing.T) {
	o, conns := chtest.NewCluster(t)
	ctx := context.Background()
	ms, _ := store.Migrations()

	n, err := store.Migrate(ctx, o, t.Logf)
	if err != nil || n != 0 {
		t.Fatalf("second migrate --cluster: got %d applied, err %v; want 0, nil", n, err)
	}
	for i, c := range conns {
		var recorded uint64
		if err := c.QueryRow(ctx, "SELECT count() FROM schema_migrations FINAL").Scan(&recorded); err != nil {
			t.Fatal(err)
		}
		if int(recorded) != len(ms) {
			t.Errorf("node %d: got %d recorded migrations, want %d", i, recorded, len(ms))
		}
		var local, dist string
		if err := c.QueryRow(ctx, "SELECT engine FROM system.tables WHERE database = ? AND name = 'results_local'", o.Database).Scan(&local); err != nil {
			t.Fatalf("node %d: no results_local: %v", i, err)
		}
		if err := c.QueryRow(ctx, "SELECT engine FROM system.tables WHERE database = ? AND name = 'results'", o.Database).Scan(&dist); err != nil {
			t.Fatalf("node %d: no results: %v", i, err)
		}
		if local != "ReplacingMergeTree" || dist != "Distributed" {
			t.Errorf("node %d: results_local is %s, results is %s; want ReplacingMergeTree and Distributed", i, local, dist)
		}
	}
	single := o
	single.Cluster = ""
	if _, err := store.Migrate(ctx, single, nil); err == nil || !strings.Contains(err.Error(), "--cluster") {
		t.Errorf("migrate without --cluster on a cluster database: got %v, want an error about --cluster", err)
	}

	// Write through node 0's Distributed table with the ordinary writer.
	w, err := store.NewWriter(conns[0], store.WriterOptions{MaxDelay: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	now := time.Now()
	var rows []store.Row
	for i := 1; i <= 200; i++ {
		region := []string{"eu", "us"}[i%2]
		r := result.New("a-"+region, "home", result.KindHTTP, "https://example.com/", now.Add(-time.Minute))
		if i <= 180 {
			ms := float64(i)
			r.OK, r.TotalMs = true, &ms
		} else {
			r.Fail(result.ErrConnectRefused, nil)
		}
		rows = append(rows, store.Row{Result: *r, Region: region, ReceivedAt: now})
	}
	if err := w.Write(ctx, rows); err != nil {
		t.Fatal(err)
	}
	replay := append([]store.Row(nil), rows...)
	for i := range replay {
		replay[i].Replay = true // a replay of every id, marked as the collector marks it
	}
	if err := w.Write(ctx, replay); err != nil {
		t.Fatal(err)
	}

	count := func(c int, q string) uint64 {
		t.Helper()
		var v uint64
		if err := conns[c].QueryRow(ctx, q).Scan(&v); err != nil {
			t.Fatalf("node %d: %s: %v", c, q, err)
		}
		return v
	}
	var sum uint64
	for i := range conns {
		if got := count(i, "SELECT count() FROM results FINAL"); got != 200 {
			t.Errorf("node %d: SELECT count() FROM results FINAL = %d right after the write, want 200 (replays folded)", i, got)
		}
		if got := count(i, "SELECT uniqExact(id) FROM results"); got != 200 {
			t.Errorf("node %d: got %d distinct ids, want 200", i, got)
		}
		local := count(i, "SELECT count() FROM results_local FINAL")
		if local < 50 {
			t.Errorf("node %d holds %d of 200 results: want them spread over both shards", i, local)
		}
		sum += local
	}
	if sum != 200 {
		t.Errorf("the shards hold %d results after FINAL, want 200: a replayed id landed on another shard", sum)
	}

	tab, err := query.Latency(ctx, conns[1], query.LatencyOptions{Since: time.Hour, By: []string{"region"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(tab.Rows) != 2 {
		t.Fatalf("latency over the cluster: got %d rows, want 2 (eu, us): %v", len(tab.Rows), tab.Rows)
	}
	for i, region := range []string{"eu", "us"} {
		row := tab.Rows[i]
		if fmt.Sprint(row[0], row[1], row[2]) != fmt.Sprint(region, 100, 10) {
			t.Errorf("latency row %d: got %v, want %s n=100 failed=10", i, row, region)
		}
		if p50 := row[3].(float64); p50 < 85 || p50 > 96 {
			t.Errorf("latency row %d: got p50 %v, want about 90", i, p50)
		}
	}

	// The admin tables go through Distributed tables too.
	if _, err := store.AddAgent(ctx, conns[0], "ams-1", "eu-west"); err != nil {
		t.Fatal(err)
	}
	agents, err := store.ListAgents(ctx, conns[1])
	if err != nil || len(agents) != 1 || agents[0].Name != "ams-1" {
		t.Errorf("agents from the other node: got %v, %v", agents, err)
	}
}
