package store_test

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/meridian-net/meridian/collector/store"
	"github.com/meridian-net/meridian/collector/store/chtest"
	"github.com/meridian-net/meridian/internal/result"
)

// These tests run against the local replicated cluster that `make test`
// starts (local.sh start-replicated): ZooKeeper and four servers, two shards
// of two replicas, migrated with --cluster and Replicated* engines.

// replicaMacros reads the {shard} and {replica} macros of the node conn
// talks to.
func replicaMacros(t *testing.T, conn driver.Conn) (shard, replica string) {
	t.Helper()
	ctx := context.Background()
	if err := conn.QueryRow(ctx, "SELECT substitution FROM system.macros WHERE macro = 'shard'").Scan(&shard); err != nil {
		t.Fatalf("reading macro shard: %v", err)
	}
	if err := conn.QueryRow(ctx, "SELECT substitution FROM system.macros WHERE macro = 'replica'").Scan(&replica); err != nil {
		t.Fatalf("reading macro replica: %v", err)
	}
	return shard, replica
}

var createLocalRE = regexp.MustCompile(`CREATE TABLE IF NOT EXISTS \w+\.(\w+)_local `)

// replicatedTables lists the tables the migrations create (without _local),
// from the statements Migrate runs for o.
func replicatedTables(t *testing.T, o store.Options) []string {
	t.Helper()
	ms, err := store.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for _, m := range ms {
		stmts, err := m.Statements(o)
		if err != nil {
			t.Fatal(err)
		}
		if m := createLocalRE.FindStringSubmatch(stmts[0]); m != nil {
			tables = append(tables, m[1])
		}
	}
	if len(tables) < 5 {
		t.Fatalf("found %d tables in the migrations (%v): the pattern %s no longer matches them", len(tables), tables, createLocalRE)
	}
	return tables
}

// syncReplicas waits, on every node, until each Replicated table of db has
// fetched and applied everything its other replica logged (SYSTEM SYNC
// REPLICA, which 18.16 has), with a deadline.
func syncReplicas(t *testing.T, conns []driver.Conn, db string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for i, c := range conns {
		rows, err := c.Query(ctx, "SELECT table FROM system.replicas WHERE database = ?", db)
		if err != nil {
			t.Fatalf("node %d: %v", i, err)
		}
		var tables []string
		for rows.Next() {
			var table string
			if err := rows.Scan(&table); err != nil {
				t.Fatal(err)
			}
			tables = append(tables, table)
		}
		rows.Close()
		if len(tables) == 0 {
			t.Fatalf("node %d: no Replicated tables in %s", i, db)
		}
		for _, table := range tables {
			if err := c.Exec(ctx, "SYSTEM SYNC REPLICA "+db+"."+table); err != nil {
				t.Fatalf("node %d: SYSTEM SYNC REPLICA %s.%s: %v", i, db, table, err)
			}
		}
	}
}

// checkReplicatedSchema checks every node holds each table as X_local, a
// Replicated*MergeTree at /clickhouse/tables/{shard}/DB/X with the node's
// {replica}, registered in ZooKeeper with both replicas active, and X, a
// Distributed table over the cluster; and no other MergeTree table but
// schema_migrations.
func checkReplicatedSchema(t *testing.T, o store.Options, conns []driver.Conn, tables []string) {
	t.Helper()
	ctx := context.Background()
	for i, c := range conns {
		shard, replica := replicaMacros(t, c)
		rows, err := c.Query(ctx, "SELECT name, engine, engine_full FROM system.tables WHERE database = ?", o.Database)
		if err != nil {
			t.Fatal(err)
		}
		engine, full := map[string]string{}, map[string]string{}
		for rows.Next() {
			var n, e, f string
			if err := rows.Scan(&n, &e, &f); err != nil {
				t.Fatal(err)
			}
			engine[n], full[n] = e, f
		}
		rows.Close()
		for _, x := range tables {
			local := x + "_local"
			zk := fmt.Sprintf("('/clickhouse/tables/{shard}/%s/%s', '{replica}'", o.Database, x)
			if !strings.HasPrefix(engine[local], "Replicated") || !strings.HasSuffix(engine[local], "MergeTree") ||
				!strings.HasPrefix(full[local], engine[local]+zk) {
				t.Errorf("node %d (%s): %s is %q, want Replicated*MergeTree%s…)", i, replica, local, full[local], zk)
			}
			dist := fmt.Sprintf("Distributed('%s', '%s', '%s', ", o.Cluster, o.Database, local)
			if engine[x] != "Distributed" || !strings.HasPrefix(full[x], dist) {
				t.Errorf("node %d (%s): %s is %q, want %s…)", i, replica, x, full[x], dist)
			}
		}
		for n, e := range engine {
			if strings.HasSuffix(e, "MergeTree") && !strings.HasPrefix(e, "Replicated") && n != "schema_migrations" {
				t.Errorf("node %d (%s): %s is a plain %s table", i, replica, n, e)
			}
		}

		rows, err = c.Query(ctx, "SELECT table, zookeeper_path, replica_name, is_readonly, total_replicas, active_replicas FROM system.replicas WHERE database = ?", o.Database)
		if err != nil {
			t.Fatal(err)
		}
		seen := 0
		for rows.Next() {
			var table, path, name string
			var readonly, total, active uint8
			if err := rows.Scan(&table, &path, &name, &readonly, &total, &active); err != nil {
				t.Fatal(err)
			}
			seen++
			x := strings.TrimSuffix(table, "_local")
			if want := fmt.Sprintf("/clickhouse/tables/%s/%s/%s", shard, o.Database, x); path != want || name != replica {
				t.Errorf("node %d: %s is replica %q at %s, want %q at %s", i, table, name, path, replica, want)
			}
			if readonly != 0 || total != 2 || active != 2 {
				t.Errorf("node %d (%s): %s: read-only %d, %d replicas, %d active; want writable, 2 and 2", i, replica, table, readonly, total, active)
			}
		}
		rows.Close()
		if seen != len(tables) {
			t.Errorf("node %d (%s): %d tables in system.replicas, want %d", i, replica, seen, len(tables))
		}
	}
}

// localDigest is what the node conn talks to holds in results_local: rows
// and a sum of their ids' hashes (equal on two replicas holding the same rows).
func localDigest(t *testing.T, conn driver.Conn) string {
	t.Helper()
	var n, h uint64
	if err := conn.QueryRow(context.Background(), "SELECT count(), sum(cityHash64(id)) FROM results_local").Scan(&n, &h); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%d rows (ids %x)", n, h)
}

// writeThrough stores n results through the collector's writer on the node
// conn talks to, and returns once ClickHouse has acknowledged them.
func writeThrough(t *testing.T, conn driver.Conn, n int) {
	t.Helper()
	w, err := store.NewWriter(conn, store.WriterOptions{MaxDelay: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.Write(context.Background(), replicatedRows(n)); err != nil {
		t.Fatal(err)
	}
}

func replicatedRows(n int) []store.Row {
	now := time.Now()
	var rows []store.Row
	for i := 1; i <= n; i++ {
		r := result.New("a-eu", "home", result.KindHTTP, "https://example.com/", now.Add(-time.Minute))
		ms := float64(i)
		r.OK, r.TotalMs = true, &ms
		rows = append(rows, store.Row{Result: *r, Region: "eu", ReceivedAt: now})
	}
	return rows
}

// TestReplicated: migrate --cluster with Replicated engines creates
// Replicated tables on every node and is idempotent; rows the collector's
// writer stores on one replica reach the other through replication only.
func TestReplicated(t *testing.T) {
	o, conns := chtest.NewReplicated(t) // the first migrate
	ctx := context.Background()
	tables := replicatedTables(t, o)
	checkReplicatedSchema(t, o, conns, tables)

	n, err := store.Migrate(ctx, o, t.Logf)
	if err != nil || n != 0 {
		t.Fatalf("second migrate --cluster --replicated: got %d applied, err %v; want 0, nil", n, err)
	}
	checkReplicatedSchema(t, o, conns, tables)

	// Node 0 is shard 1's first replica, node 1 its second: stop node 1's
	// replication queue (it fetches nothing), write through node 0's Distributed table (its own
	// shard's rows go to its local replica), and node 1 must have nothing.
	shard0, rep0 := replicaMacros(t, conns[0])
	shard1, rep1 := replicaMacros(t, conns[1])
	if shard0 != shard1 || rep0 == rep1 {
		t.Fatalf("nodes 0 and 1 are %s/%s and %s/%s: want two replicas of one shard (see local.sh start-replicated)", shard0, rep0, shard1, rep1)
	}
	// (STOP FETCHES would do too, but 18.16 then retries the postponed
	// fetch only about 10 s after START FETCHES.)
	if err := conns[1].Exec(ctx, "SYSTEM STOP REPLICATION QUEUES "+o.Database+".results_local"); err != nil {
		t.Fatal(err)
	}
	writeThrough(t, conns[0], 200)
	written := localDigest(t, conns[0])
	if strings.HasPrefix(written, "0 rows") {
		t.Fatalf("node 0 holds no results after writing through it: want its shard's share")
	}
	if got := localDigest(t, conns[1]); !strings.HasPrefix(got, "0 rows") {
		t.Fatalf("node 1 holds %s with its replication queue stopped: want 0, rows should reach it only by replication", got)
	}

	if err := conns[1].Exec(ctx, "SYSTEM START REPLICATION QUEUES "+o.Database+".results_local"); err != nil {
		t.Fatal(err)
	}
	syncReplicas(t, conns, o.Database)
	if got := localDigest(t, conns[1]); got != written {
		t.Errorf("node 1 (replica %s) holds %s after SYNC REPLICA, want node 0's %s", rep1, got, written)
	}
	if a, b := localDigest(t, conns[2]), localDigest(t, conns[3]); a != b || strings.HasPrefix(a, "0 rows") {
		t.Errorf("shard 2's replicas hold %s and %s: want the same rows, some", a, b)
	}
	var onShard1, onShard2 uint64
	if err := conns[1].QueryRow(ctx, "SELECT count() FROM results_local").Scan(&onShard1); err != nil {
		t.Fatal(err)
	}
	if err := conns[3].QueryRow(ctx, "SELECT count() FROM results_local").Scan(&onShard2); err != nil {
		t.Fatal(err)
	}
	if onShard1+onShard2 != 200 {
		t.Errorf("the shards hold %d + %d results, want 200", onShard1, onShard2)
	}
	for i, c := range conns {
		var got uint64
		if err := c.QueryRow(ctx, "SELECT count() FROM results FINAL").Scan(&got); err != nil || got != 200 {
			t.Errorf("node %d: SELECT count() FROM results FINAL = %d (%v), want 200", i, got, err)
		}
		// The rollup is replicated too: each replica's materialized view
		// fed only its own inserts, the other replica fetched the parts.
		if err := c.QueryRow(ctx, "SELECT countMerge(n) FROM results_1m").Scan(&got); err != nil || got != 200 {
			t.Errorf("node %d: results_1m counts %d results (%v), want 200", i, got, err)
		}
	}
}

// TestReplicatedNewReplica: a replica that lost its tables (or a new one)
// gets them back from `meridian migrate --cluster` run again, and its rows
// from the other replica.
func TestReplicatedNewReplica(t *testing.T) {
	o, conns := chtest.NewReplicated(t)
	ctx := context.Background()
	writeThrough(t, conns[0], 200)
	syncReplicas(t, conns, o.Database)
	want := localDigest(t, conns[2])

	if err := store.DropDatabase(ctx, conns[3], o.Database); err != nil {
		t.Fatal(err)
	}
	ms, _ := store.Migrations()
	n, err := store.Migrate(ctx, o, t.Logf)
	if err != nil || n != len(ms) {
		t.Fatalf("migrate after a replica lost its database: got %d applied, err %v; want %d (on that node), nil", n, err, len(ms))
	}
	checkReplicatedSchema(t, o, conns, replicatedTables(t, o))
	// 18.16 takes about 10 s to start the new replica's first fetches.
	syncReplicas(t, conns, o.Database)
	if got := localDigest(t, conns[3]); got != want {
		t.Errorf("the re-created replica holds %s, want its shard's %s", got, want)
	}
}

// TestReplicatedRetention: retention on the replicated cluster drops the
// old day partitions once per shard, and the drop reaches both replicas.
func TestReplicatedRetention(t *testing.T) {
	o, conns := chtest.NewReplicated(t)
	ctx := context.Background()
	addrs := chtest.ReplicatedAddrs(t)
	shardOf := map[string]string{}
	for i, c := range conns {
		shardOf[addrs[i]], _ = replicaMacros(t, c)
	}
	// 32 rows a day: the chance that one shard gets none of a day's is 2^-31.
	seedRetention(t, conns[0], 32)
	syncReplicas(t, conns, o.Database)
	before := map[string]int{"results_local": 4, "rum_pageviews_local": 4, "results_1m_local": 4, "rum_pageviews_1m_local": 4}
	for i := range conns {
		checkPartitions(t, conns[i], o.Database, before)
	}

	dry, err := store.ApplyClusterRetention(ctx, o, store.RetentionOptions{Days: retentionDays, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(dry) != 4*10 { // as TestApplyRetention: 10 per node
		t.Errorf("dry run: got %d partitions %v, want 10 on each of 4 nodes", len(dry), dry)
	}
	for i := range conns {
		checkPartitions(t, conns[i], o.Database, before)
	}

	dropped, err := store.ApplyClusterRetention(ctx, o, store.RetentionOptions{Days: retentionDays})
	if err != nil {
		t.Fatal(err)
	}
	// Dropping on one replica drops on the other, which may or may not
	// have applied it by the time retention visits it: each old partition
	// must be dropped on at least one replica of its shard.
	got := map[string]bool{}
	for _, d := range dropped {
		got[shardOf[d.Node]+" "+d.Table+" "+d.ID] = true
		if !strings.HasSuffix(d.Table, "_local") || d.Rows == 0 || d.Day.After(time.Now().AddDate(0, 0, -30)) {
			t.Errorf("dropped %v: want a _local table's partition, with rows, older than 30 days", d)
		}
	}
	for _, d := range dry {
		if k := shardOf[d.Node] + " " + d.Table + " " + d.ID; !got[k] {
			t.Errorf("shard %s: %s partition %s was not dropped on either replica; dropped: %v", shardOf[d.Node], d.Table, d.ID, dropped)
		}
	}

	syncReplicas(t, conns, o.Database)
	for i := range conns {
		checkPartitions(t, conns[i], o.Database, map[string]int{"results_local": 1, "rum_pageviews_local": 1, "results_1m_local": 3, "rum_pageviews_1m_local": 3})
	}
	for i, c := range conns {
		var left uint64
		if err := c.QueryRow(ctx, "SELECT count() FROM results").Scan(&left); err != nil || left != 32 {
			t.Errorf("node %d: results left across the cluster: got %d (%v), want today's 32", i, left, err)
		}
	}

	again, err := store.ApplyClusterRetention(ctx, o, store.RetentionOptions{Days: retentionDays})
	if err != nil || len(again) != 0 {
		t.Errorf("second run: dropped %v (%v), want nothing", again, err)
	}
}
