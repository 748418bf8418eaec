// Package dashboards holds Grafana dashboards; its test runs every panel's
// SQL against the real schema so a migration cannot silently break them.
package dashboards

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/meridian-net/meridian/collector/store"
	"github.com/meridian-net/meridian/internal/chtest"
	"github.com/meridian-net/meridian/internal/result"
)

type dashboard struct {
	Panels []struct {
		Title   string `json:"title"`
		Targets []struct {
			RawSQL string `json:"rawSql"`
		} `json:"targets"`
	} `json:"panels"`
	Templating struct {
		List []struct {
			Name  string `json:"name"`
			Query string `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

// grafanaMacros stands in for what the ClickHouse datasource expands.
var grafanaMacros = strings.NewReplacer(
	"$__timeFilter(ts)", "ts >= now() - 3600 AND ts <= now()",
	"${check:singlequote}", "'demo'",
)

// TestPanelsRunOnTheSchema runs every panel's and variable's SQL on both
// engines (the 18.16 server and ClickHouse 26.x through chDB) over the same
// known rows: each must answer, with rows, and the same rows on both.
func TestPanelsRunOnTheSchema(t *testing.T) {
	o, conn := chtest.New(t)
	seed(t, conn)
	engines := chtest.Engines(t, o.Database)
	chtest.CopyTables(t, engines[0], engines[1], "results")
	files, _ := filepath.Glob("*.json")
	if len(files) == 0 {
		t.Fatal("no dashboards found")
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var d dashboard
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		var stmts []chtest.Stmt
		for _, v := range d.Templating.List {
			if strings.HasPrefix(v.Query, "SELECT") {
				stmts = append(stmts, chtest.Stmt{Name: f + ": variable " + v.Name, SQL: v.Query})
			}
		}
		for _, p := range d.Panels {
			for _, tg := range p.Targets {
				stmts = append(stmts, chtest.Stmt{Name: f + ": panel " + p.Title, SQL: grafanaMacros.Replace(tg.RawSQL)})
			}
		}
		answers := chtest.Both(t, engines, stmts)
		for i, s := range stmts {
			old, cur := answers[i][0], answers[i][1]
			if old.Err != nil || cur.Err != nil {
				continue // Both reported it
			}
			if len(old.Rows) == 0 || !chtest.SameRows(old.Rows, cur.Rows, 0.1) {
				t.Errorf("%s: ClickHouse %s answers %v, %s answers %v: want the same rows, some", s.Name, engines[0].Name, old.Rows, engines[1].Name, cur.Rows)
			}
		}
	}
	// One known answer: the failures panel counts the 10 failed results.
	rows, err := engines[1].Query(grafanaMacros.Replace("SELECT count() FROM results FINAL WHERE $__timeFilter(ts) AND ok = 0 AND check_name IN (${check:singlequote})"))
	if err != nil || fmt.Sprint(rows) != "[[10]]" {
		t.Errorf("failures on the current engine: %v (%v), want 10", rows, err)
	}
}

// seed stores, a minute ago, 100 successful http results of check demo in
// region eu taking 1..100 ms (every phase timed), and 10 refused ones.
func seed(t *testing.T, conn driver.Conn) {
	t.Helper()
	w, err := store.NewWriter(conn, store.WriterOptions{MaxDelay: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	now := time.Now()
	var rows []store.Row
	for i := 1; i <= 110; i++ {
		r := result.New("a-eu", "demo", result.KindHTTP, "https://example.com/", now.Add(-time.Minute))
		if i <= 100 {
			ms, phase := float64(i), float64(i)/5
			r.OK, r.TotalMs = true, &ms
			r.DNSMs, r.ConnectMs, r.TLSMs, r.TTFBMs, r.TransferMs = &phase, &phase, &phase, &phase, &phase
		} else {
			r.Fail(result.ErrConnectRefused, nil)
		}
		rows = append(rows, store.Row{Result: *r, Region: "eu", ReceivedAt: now})
	}
	if err := w.Write(context.Background(), rows); err != nil {
		t.Fatal(err)
	}
}
