package store_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/meridian-net/meridian/collector/store"
	"github.com/meridian-net/meridian/collector/store/chtest"
)

// TestSessionSettingsOnBothEngines: every setting the client sends with
// each query is one both engines know. A current server refuses every query
// that carries a setting it does not know (clickhouse-go flags them
// important), so one stray setting breaks the product there.
func TestSessionSettingsOnBothEngines(t *testing.T) {
	o, _ := chtest.New(t)
	engines := chtest.Engines(t, o.Database)
	settings := store.SessionSettings()
	var stmts []chtest.Stmt
	for _, k := range slices.Sorted(mapsKeys(settings)) {
		stmts = append(stmts, chtest.Stmt{Name: "session setting " + k, SQL: fmt.Sprintf("SET %s = %v", k, settings[k])})
	}
	chtest.Both(t, engines, stmts)

	// The check bites: the setting the client used to send, which only
	// 18.16 needs (it is in the test server's profile now), is refused by
	// the current engine.
	if _, err := engines[1].Exec("SET allow_experimental_low_cardinality_type = 1"); err == nil || !strings.Contains(err.Error(), "UNKNOWN_SETTING") {
		t.Errorf("ClickHouse %s: SET allow_experimental_low_cardinality_type = 1 gave %v, want UNKNOWN_SETTING", engines[1].Name, err)
	}
}

func mapsKeys[M ~map[string]V, V any](m M) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// TestSchemaOnBothEngines: every migration, rendered for a single node,
// makes the same tables with the same column types on both engines
// (chtest.ChDB fails the test if the current engine refuses one).
func TestSchemaOnBothEngines(t *testing.T) {
	o, _ := chtest.New(t)
	engines := chtest.Engines(t, o.Database)
	a := chtest.Both(t, engines, []chtest.Stmt{
		{Name: "tables", SQL: fmt.Sprintf("SELECT name, engine FROM system.tables WHERE database = '%s' ORDER BY name", o.Database)},
		// A view's own columns are left out: 18.16 types toStartOfMinute(ts)
		// DateTime('Etc/UTC') there, while the table it fills says DateTime.
		{Name: "columns", SQL: fmt.Sprintf(`SELECT table, name, type FROM system.columns WHERE database = '%[1]s'
			AND table NOT IN (SELECT name FROM system.tables WHERE database = '%[1]s' AND engine = 'MaterializedView') ORDER BY table, name`, o.Database)},
	})
	for i, what := range []string{"tables", "columns"} {
		old, cur := a[i][0].Rows, a[i][1].Rows
		if len(old) < 10 || !slices.EqualFunc(old, cur, slices.Equal) {
			t.Errorf("%s differ between ClickHouse %s and %s (or fewer than 10):\n%s\n---\n%s", what, engines[0].Name, engines[1].Name, join(old), join(cur))
		}
	}
}

func join(rows [][]string) string {
	var b strings.Builder
	for _, r := range rows {
		b.WriteString(strings.Join(r, "\t") + "\n")
	}
	return b.String()
}

// TestRollupsAndRetentionOnBothEngines: rows inserted into the raw tables
// reach the rollups through the materialized views, and retention's
// statements (today, the table list, the partition listing, DROP PARTITION)
// give the same answers, on both engines. The rows are the same: those the
// collector's writers store on the 18.16 server, copied to the current engine.
func TestRollupsAndRetentionOnBothEngines(t *testing.T) {
	o, conn := chtest.New(t)
	seedRetention(t, conn, 2) // 2 results and 2 page views on each of 4 days
	engines := chtest.Engines(t, o.Database)
	chtest.CopyTables(t, engines[0], engines[1], "results", "rum_pageviews", "rum_cdn")

	bind := func(sql string, args ...any) string {
		s, err := chtest.Bind(sql, args...)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	partitions := func(table string) chtest.Stmt {
		return chtest.Stmt{Name: "retention's partition listing of " + table, SQL: bind(store.SQLPartitions, o.Database, table)}
	}
	a := chtest.Both(t, engines, []chtest.Stmt{
		{Name: "results_1m", SQL: "SELECT countMerge(n), countIfMerge(failed), length(quantilesIfMerge(0.5, 0.9, 0.95, 0.99)(total_q)) FROM results_1m"},
		{Name: "rum_pageviews_1m", SQL: "SELECT countMerge(pageviews), quantilesIfMerge(0.5, 0.75, 0.9, 0.95, 0.99)(lcp_q)[2] FROM rum_pageviews_1m"},
		{Name: "results FINAL", SQL: "SELECT count() FROM results FINAL"},
		{Name: "retention's today", SQL: store.SQLToday},
		{Name: "retention's table list", SQL: bind(store.SQLTableEngines+" ORDER BY name", o.Database)},
		partitions("results"),
		partitions("rum_pageviews_1m"),
	})
	for i, want := range []string{"8 0 4", "8 1000", "8"} {
		for j, e := range engines {
			if got := flat(a[i][j].Rows); got != want {
				t.Errorf("ClickHouse %s: statement %d gave %q, want %q", e.Name, i, got, want)
			}
		}
	}
	for i := 3; i < len(a); i++ {
		old, cur := firstColumns(a[i][0].Rows, 2), firstColumns(a[i][1].Rows, 2)
		if old != cur || old == "" {
			t.Errorf("statement %d: ClickHouse %s says %q, %s says %q: want the same, not empty", i, engines[0].Name, old, engines[1].Name, cur)
		}
	}
	parts := a[5][0].Rows
	if len(parts) != 4 {
		t.Fatalf("results has partitions %v, want 4 days", parts)
	}
	oldest := parts[0][0]
	after := chtest.Both(t, engines, []chtest.Stmt{
		{Name: "retention's DROP PARTITION", SQL: store.DropPartitionSQL(o.Database, "results", oldest)},
		{Name: "retention's DROP PARTITION on a rollup", SQL: store.DropPartitionSQL(o.Database, "rum_pageviews_1m", oldest)},
		partitions("results"),
		{Name: "rum_pageviews_1m after the drop", SQL: "SELECT countMerge(pageviews) FROM rum_pageviews_1m"},
	})
	for j, e := range engines {
		if got := firstColumns(after[2][j].Rows, 1); len(after[2][j].Rows) != 3 || strings.Contains(got, oldest) {
			t.Errorf("ClickHouse %s: results partitions after dropping %s: %q, want the 3 others", e.Name, oldest, got)
		}
		if got := flat(after[3][j].Rows); got != "6" {
			t.Errorf("ClickHouse %s: page views in the rollup after dropping a day: %s, want 6", e.Name, got)
		}
	}
}

// flat prints rows as one line of space-separated fields.
func flat(rows [][]string) string {
	var f []string
	for _, r := range rows {
		f = append(f, r...)
	}
	return strings.Join(f, " ")
}

// firstColumns prints the first n fields of each row, a row a line.
func firstColumns(rows [][]string, n int) string {
	var b strings.Builder
	for _, r := range rows {
		b.WriteString(strings.Join(r[:min(n, len(r))], "\t") + "\n")
	}
	return b.String()
}

// TestDropDatabaseOnBothEngines: rebuilding a replica starts by dropping its
// database; on current servers only DROP … SYNC frees the replica's
// Keeper metadata at once, and 18.16 refuses SYNC. Each engine takes the
// statement DropDatabase picks for its version.
func TestDropDatabaseOnBothEngines(t *testing.T) {
	o, _ := chtest.New(t)
	engines := chtest.Engines(t, o.Database)
	for _, e := range engines {
		var major, minor uint64
		fmt.Sscanf(e.Name, "%d.%d", &major, &minor)
		scratch := o.Database + "_drop"
		if _, err := e.Exec("CREATE DATABASE " + scratch); err != nil {
			t.Fatal(err)
		}
		sql := store.DropDatabaseSQL(scratch, major, minor)
		if _, err := e.Exec(sql); err != nil {
			t.Errorf("ClickHouse %s refuses %s: %v", e.Name, sql, err)
		}
		if rows, err := e.Query("SELECT count() FROM system.databases WHERE name = '" + scratch + "'"); err != nil || flat(rows) != "0" {
			t.Errorf("ClickHouse %s: after %s, %s still listed (%v, %v)", e.Name, sql, scratch, rows, err)
		}
		if wantSync := major >= 21; strings.HasSuffix(sql, " SYNC") != wantSync {
			t.Errorf("ClickHouse %s: DropDatabase says %q", e.Name, sql)
		}
	}
	if _, err := engines[0].Exec("DROP DATABASE IF EXISTS " + o.Database + "_x SYNC"); err == nil {
		t.Errorf("ClickHouse %s accepts DROP DATABASE … SYNC: DropDatabase could say SYNC there too", engines[0].Name)
	}
}
