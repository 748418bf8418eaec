// Package dashboards holds Grafana dashboards; its test runs every panel's
// SQL against the real schema so a migration cannot silently break them.
package dashboards

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meridian-net/meridian/internal/chtest"
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

func TestPanelsRunOnTheSchema(t *testing.T) {
	_, conn := chtest.New(t)
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
		queries := map[string]string{}
		for _, v := range d.Templating.List {
			if strings.HasPrefix(v.Query, "SELECT") {
				queries["variable "+v.Name] = v.Query
			}
		}
		for _, p := range d.Panels {
			for _, tg := range p.Targets {
				queries["panel "+p.Title] = tg.RawSQL
			}
		}
		for name, sql := range queries {
			rows, err := conn.Query(context.Background(), grafanaMacros.Replace(sql))
			if err != nil {
				t.Errorf("%s, %s: %v", f, name, err)
				continue
			}
			rows.Close()
		}
	}
}
