package store_test

import (
	"context"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/meridian-net/meridian/collector/store"
	"github.com/meridian-net/meridian/collector/store/chtest"
)

// The latency map's rollups as they were before 0080 (q only, fed by
// their first views), taken through 0080-0091: each gets the columns a
// fresh CREATE gives (a replica created later must match), inserts into
// the raw tables keep working, the rows of the old view keep their
// counts, and the new view fills qt.
func TestRollupQtUpgrade(t *testing.T) {
	o, conn := chtest.New(t)
	e := chtest.Server(t, o.Database)
	ctx := context.Background()
	ms, err := store.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	tiers := map[int]string{40: "rum_cdn_1m", 42: "results_member_1m", 53: "rum_cdn_1h", 55: "results_member_1h"}
	views := map[int]string{41: "rum_cdn_1m", 43: "results_member_1m", 54: "rum_cdn_1h", 56: "results_member_1h"}
	qtRE := regexp.MustCompile(`(?s)(q\s+AggregateFunction\(quantilesIf\(0\.5, 0\.75, 0\.95\), Float64, UInt8\)),.*?\n\) ENGINE`)
	var before, upgrade []string
	for _, m := range ms {
		stmts, err := m.Statements(o)
		if err != nil {
			t.Fatal(err)
		}
		s := stmts[0]
		switch {
		case tiers[m.Version] != "":
			s = qtRE.ReplaceAllString(s, "$1\n) ENGINE")
			before = append(before, oldName(s, o.Database, tiers[m.Version]))
		case views[m.Version] != "":
			before = append(before, oldName(s, o.Database, views[m.Version]))
		case m.Version >= 80 && m.Version <= 91:
			for _, tier := range tiers {
				s = oldName(s, o.Database, tier)
			}
			upgrade = append(upgrade, s)
		}
	}
	if len(before) != 8 || len(upgrade) != 12 || strings.Contains(strings.Join(before, ""), " qt ") {
		t.Fatalf("cannot cut the pre-0080 rollups out of the migrations: %d statements before, %d after", len(before), len(upgrade))
	}
	insert := func(ms int) {
		t.Helper()
		for _, q := range []string{
			"INSERT INTO rum_cdn (ts, site, pv, country, kind, cdn, ttfb_ms, error, status, is_bot) VALUES (now(), 's', 'pv', 'BR', 'probe_cold', 'cdn-a', " + strconv.Itoa(ms) + ", 0, 200, 0)",
			"INSERT INTO results (ts, id, agent, region, check_name, kind, target, ok, ttfb_ms) VALUES (now(), 'r', 'a', 'sa', 'www', 'http', 'x', 1, " + strconv.Itoa(ms) + ")",
		} {
			if _, err := e.Exec(q); err != nil {
				t.Fatal(err)
			}
		}
	}
	run(t, conn, before)
	insert(100) // through the old views: q only
	run(t, conn, upgrade)
	insert(300) // through the new ones: qt only
	for _, tier := range tiers {
		if got, want := columnsOf(t, conn, o.Database, tier+"_old"), columnsOf(t, conn, o.Database, tier); !reflect.DeepEqual(got, want) {
			t.Errorf("%s altered: columns %v, want a fresh table's %v", tier, got, want)
		}
		var n uint64
		var q []float32
		sql := "SELECT countMerge(samples), quantilesTimingIfMerge(0.5, 0.75, 0.95)(qt) FROM " + o.Database + "." + tier + "_old"
		if err := conn.QueryRow(ctx, sql).Scan(&n, &q); err != nil {
			t.Fatal(err)
		}
		if n != 2 || len(q) != 3 || q[0] != 300 {
			t.Errorf("%s after the upgrade: %d samples, quantiles %v; want 2 (one from each view) and 300 (the new view's only)", tier, n, q)
		}
	}
}

// oldName renames table (and its view) in a rendered statement to
// table_old (table_old_mv), so the pre-0080 rollups stand beside the
// migrated ones, fed by the same raw tables.
func oldName(s, db, table string) string {
	s = strings.ReplaceAll(s, db+"."+table+"_mv", db+"."+table+"_old_mv")
	s = strings.ReplaceAll(s, db+"."+table+" ", db+"."+table+"_old ")
	return strings.ReplaceAll(s, db+"."+table+"\n", db+"."+table+"_old\n")
}

func run(t *testing.T, conn driver.Conn, stmts []string) {
	t.Helper()
	for _, s := range stmts {
		if err := conn.Exec(context.Background(), s); err != nil {
			t.Fatalf("%v\n%s", err, s)
		}
	}
}
