package query_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/meridian-net/meridian/collector/store/chtest"
	"github.com/meridian-net/meridian/query"
)

type seedRow struct {
	id     string
	ms     float64
	replay uint8
}

const seedCols = "ts, id, agent, region, check_name, kind, target, ok, total_ms, replay"

// replayCases are four inserts, in order: 100 results (replay = 0); ten of
// them again, marked replay = 1 (an insert retried after its
// acknowledgement was lost); five results only ever inserted as replays,
// twice (the first insert never landed, two retries did). Every stored
// result counts once: 105.
func replayCases() [][]seedRow {
	var orig, again, lost []seedRow
	for i := range 100 {
		orig = append(orig, seedRow{fmt.Sprint("r", i), float64(i + 1), 0})
		if i < 10 {
			again = append(again, seedRow{fmt.Sprint("r", i), float64(i + 1), 1})
		}
	}
	for i := range 5 {
		lost = append(lost, seedRow{fmt.Sprint("x", i), 1000, 1})
	}
	return [][]seedRow{orig, again, lost, lost}
}

func valuesSQL(at time.Time, rows []seedRow) string {
	var vs []string
	for _, r := range rows {
		vs = append(vs, fmt.Sprintf("(toDateTime(%d), '%s', 'a1', 'eu', 'home', 'http', 'https://example.com/', 1, %g, %d)", at.Unix(), r.id, r.ms, r.replay))
	}
	return "INSERT INTO results (" + seedCols + ") VALUES " + strings.Join(vs, ", ")
}

// TestRowsCountEachRowOnce holds .Rows (query/rows.go) to FINAL's answer
// on both engines, before and after the parts merge (a merge may keep the
// replayed copy and drop the original): 105 results, the five lost ones'
// 1000 ms among them.
func TestRowsCountEachRowOnce(t *testing.T) {
	o, _ := chtest.New(t)
	engines := chtest.Engines(t, o.Database)
	now := time.Now().Truncate(time.Second)
	for _, e := range engines {
		for _, rows := range replayCases() {
			if _, err := e.Exec(valuesSQL(now.Add(-time.Minute), rows)); err != nil {
				t.Fatalf("%s: cannot seed: %v", e.Name, err)
			}
		}
	}
	r, err := query.Render("latency", query.Options{Since: time.Hour, Now: now, By: []string{"region"}})
	if err != nil {
		t.Fatal(err)
	}
	bound, err := chtest.Bind(r.SQL, r.Args...)
	if err != nil {
		t.Fatal(err)
	}
	for _, merged := range []bool{false, true} {
		for _, e := range engines {
			if merged {
				if _, err := e.Exec("OPTIMIZE TABLE " + o.Database + ".results FINAL"); err != nil {
					t.Fatalf("%s: %v", e.Name, err)
				}
			}
			final, err := e.Query("SELECT count() FROM " + o.Database + ".results FINAL")
			if err != nil || len(final) != 1 || final[0][0] != "105" {
				t.Fatalf("%s merged=%v: FINAL counts %v (%v), want 105", e.Name, merged, final, err)
			}
			got, err := e.Query(bound)
			if err != nil {
				t.Fatalf("%s: %v", e.Name, err)
			}
			// region, n, failed, p50, p95, p99: p99 of 100 values 1..100 and five 1000s is 1000.
			if len(got) != 1 || got[0][1] != "105" || got[0][5] != "1000" {
				t.Errorf("%s merged=%v: got %v, want eu with n=105 and p99=1000", e.Name, merged, got)
			}
		}
	}
}

// TestRowsOnCluster runs the same through Run on the two-shard cluster:
// .Rows' subqueries read each shard's own rows (distributed_product_mode
// = 'local'), where a replay lands beside its original (sharded by id).
func TestRowsOnCluster(t *testing.T) {
	o, conns := chtest.NewCluster(t)
	now := time.Now().Truncate(time.Second)
	ctx := context.Background()
	for _, rows := range replayCases() {
		b, err := conns[0].PrepareBatch(ctx, "INSERT INTO "+o.Database+".results ("+seedCols+")")
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rows {
			if err := b.Append(now.Add(-time.Minute), r.id, "a1", "eu", "home", "http", "https://example.com/", uint8(1), &r.ms, r.replay); err != nil {
				t.Fatal(err)
			}
		}
		if err := b.Send(); err != nil {
			t.Fatal(err)
		}
	}
	for i, c := range conns {
		tab, err := query.Run(ctx, c, "latency", query.Options{Since: time.Hour, Now: now, By: []string{"region"}})
		if err != nil {
			t.Fatalf("node %d: %v", i, err)
		}
		if len(tab.Rows) != 1 || fmt.Sprint(tab.Rows[0][1]) != "105" {
			t.Errorf("node %d: got %v, want eu with n=105", i, tab.Rows)
		}
	}
	assertSharded(t, conns, o.Database)
}

// assertSharded makes sure the cluster test means something: both shards
// hold some of the rows.
func assertSharded(t *testing.T, conns []driver.Conn, db string) {
	t.Helper()
	for i, c := range conns {
		var n uint64
		if err := c.QueryRow(context.Background(), "SELECT count() FROM "+db+".results_local").Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			t.Errorf("node %d holds no rows: the test did not spread them over the shards", i)
		}
	}
}
