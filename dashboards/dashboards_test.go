package dashboards

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/meridian-net/meridian/collector/store/chtest"
)

type boardJSON struct {
	UID    string `json:"uid"`
	Panels []struct {
		Title      string         `json:"title"`
		Type       string         `json:"type"`
		Datasource map[string]any `json:"datasource"`
		Targets    []struct {
			RawSQL     string         `json:"rawSql"`
			Datasource map[string]any `json:"datasource"`
		} `json:"targets"`
	} `json:"panels"`
	Templating struct {
		List []struct {
			Name       string         `json:"name"`
			Type       string         `json:"type"`
			Query      any            `json:"query"`
			Datasource map[string]any `json:"datasource"`
		} `json:"list"`
	} `json:"templating"`
}

func loadBoards(t *testing.T) map[string]boardJSON {
	t.Helper()
	files, _ := filepath.Glob("*.json")
	if len(files) == 0 {
		t.Fatal("no dashboards found")
	}
	out := map[string]boardJSON{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var d boardJSON
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out[f] = d
	}
	return out
}

// TestCommittedMatchesGenerated: the JSON in this folder is what
// `go run ./dashboards/gen` writes now.
func TestCommittedMatchesGenerated(t *testing.T) {
	fresh, err := Build()
	if err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob("*.json")
	if len(files) != len(fresh) {
		t.Errorf("dashboards/ holds %v, the generator writes %v: run `go run ./dashboards/gen` and remove strays", files, Names())
	}
	for name, want := range fresh {
		got, err := os.ReadFile(name)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s differs from a fresh generation (%v): run `go run ./dashboards/gen`", name, err)
		}
	}
}

var varRef = regexp.MustCompile(`\$\{(\w+)|\$(\w+)|\[\[(\w+)`)

// TestBoardsAreWellFormed: every panel has a target, every reference names
// a variable the dashboard defines, every datasource is the declared one.
func TestBoardsAreWellFormed(t *testing.T) {
	for f, d := range loadBoards(t) {
		defined := map[string]bool{}
		for _, v := range d.Templating.List {
			defined[v.Name] = true
		}
		if !defined["DS"] || d.Templating.List[0].Type != "datasource" || d.Templating.List[0].Query != PluginType {
			t.Errorf("%s: first variable is not DS, a %s datasource variable", f, PluginType)
		}
		refs := func(where, sql string) {
			for _, m := range varRef.FindAllStringSubmatch(sql, -1) {
				name := m[1] + m[2] + m[3]
				if !strings.HasPrefix(name, "__") && !defined[name] {
					t.Errorf("%s: %s uses $%s, which the dashboard does not define", f, where, name)
				}
			}
		}
		checkDS := func(where string, ref map[string]any) {
			if ref["type"] != PluginType || ref["uid"] != "${DS}" {
				t.Errorf("%s: %s reads datasource %v, want type %s uid ${DS}", f, where, ref, PluginType)
			}
		}
		for _, v := range d.Templating.List[1:] {
			checkDS("variable "+v.Name, v.Datasource)
			s, _ := v.Query.(string)
			refs("variable "+v.Name, s)
		}
		if len(d.Panels) == 0 {
			t.Errorf("%s: no panels", f)
		}
		for _, p := range d.Panels {
			checkDS("panel "+p.Title, p.Datasource)
			if len(p.Targets) == 0 || p.Targets[0].RawSQL == "" {
				t.Errorf("%s: panel %q has no SQL target", f, p.Title)
			}
			for _, tg := range p.Targets {
				checkDS("panel "+p.Title+"'s target", tg.Datasource)
				refs("panel "+p.Title, tg.RawSQL)
			}
		}
	}
}

// TestPanelsAnswerOnBothEngines runs every variable's and panel's SQL,
// expanded as Grafana and the plugin expand it, on ClickHouse 18.16 and
// 26.x over the same known rows: first with every variable at All, then
// with each at one value. Both engines must answer alike, and the panels
// below give the known answers.
func TestPanelsAnswerOnBothEngines(t *testing.T) {
	o, _ := chtest.New(t)
	engines := chtest.Engines(t, o.Database)
	now := time.Now().Truncate(time.Second)
	for _, e := range engines {
		seed(t, e, now)
	}
	q := grafanaQuery{From: now.Add(-time.Hour), To: now.Add(time.Minute), Interval: time.Minute}
	for f, d := range loadBoards(t) {
		q.Vars = map[string]grafanaVar{}
		var stmts []chtest.Stmt
		for _, v := range d.Templating.List[1:] {
			s, _ := v.Query.(string)
			sql := mustExpand(t, s, q)
			stmts = append(stmts, chtest.Stmt{Name: f + ": variable " + v.Name, SQL: sql})
			rows, err := engines[0].Query(sql)
			if err != nil || len(rows) == 0 {
				t.Errorf("%s: variable %s offers %v (%v), want some values", f, v.Name, rows, err)
			}
			var vals []string
			for _, r := range rows {
				vals = append(vals, r[0])
			}
			q.Vars[v.Name] = grafanaVar{Values: vals, All: true}
		}
		one := grafanaQuery{From: q.From, To: q.To, Interval: q.Interval, Vars: map[string]grafanaVar{}}
		for n, v := range q.Vars {
			one.Vars[n] = grafanaVar{Values: v.Values[:min(1, len(v.Values))]}
		}
		for _, p := range d.Panels {
			for _, tg := range p.Targets {
				stmts = append(stmts,
					chtest.Stmt{Name: f + ": panel " + p.Title, SQL: mustExpand(t, tg.RawSQL, q)},
					chtest.Stmt{Name: f + ": panel " + p.Title + " (one value each)", SQL: mustExpand(t, tg.RawSQL, one)})
			}
		}
		answers := chtest.Both(t, engines, stmts)
		for i, s := range stmts {
			old, cur := answers[i][0], answers[i][1]
			if old.Err != nil || cur.Err != nil {
				continue // Both reported it
			}
			if !chtest.SameRows(old.Rows, cur.Rows, 0.15) {
				t.Errorf("%s: ClickHouse %s answers %v, %s answers %v: want the same rows", s.Name, engines[0].Name, old.Rows, engines[1].Name, cur.Rows)
			}
			if !strings.HasSuffix(s.Name, "(one value each)") && len(old.Rows) == 0 {
				t.Errorf("%s: no rows with every variable at All", s.Name)
			}
			if want, ok := known[s.Name]; ok {
				for j, a := range answers[i] {
					if got := rowsText(a.Rows); !match(got, want) {
						t.Errorf("%s on ClickHouse %s:\ngot  %s\nwant %s", s.Name, engines[j].Name, got, want)
					}
				}
			}
		}
	}
}

func mustExpand(t *testing.T, sql string, q grafanaQuery) string {
	t.Helper()
	out, err := expand(sql, q)
	if err != nil {
		t.Fatalf("cannot expand %q: %v", sql, err)
	}
	if strings.Contains(out, "$__") || strings.Contains(out, "${") {
		t.Fatalf("left unexpanded: %s", out)
	}
	return out
}

func rowsText(rows [][]string) string {
	lines := make([]string, len(rows))
	for i, r := range rows {
		lines[i] = strings.Join(r, " ")
	}
	return strings.Join(lines, " | ")
}

// match compares answers field by field (fields apart by one space, rows by
// " | "); a wanted "~x" is a number within 1% of x (quantiles are
// estimates), "-" is the empty string, "*" is anything.
func match(got, want string) bool {
	g, w := strings.Split(got, " "), strings.Split(want, " ")
	if len(g) != len(w) {
		return false
	}
	for i := range w {
		switch {
		case w[i] == "*", w[i] == "-" && g[i] == "":
		case strings.HasPrefix(w[i], "~"):
			x, err1 := strconv.ParseFloat(w[i][1:], 64)
			y, err2 := strconv.ParseFloat(g[i], 64)
			if err1 != nil || err2 != nil || y < x*0.99 || y > x*1.01 {
				return false
			}
		case g[i] != w[i]:
			return false
		}
	}
	return true
}

// known answers, with every variable at All, from seed's rows.
var known = map[string]string{
	"latency-map.json: variable cdn":                                  "cloudflare | fastly",
	"latency-map.json: variable country":                              "BR | US",
	"latency-map.json: variable site":                                 "shop",
	"latency-map.json: variable region":                               "eu | sa",
	"latency-map.json: panel RUM: p75 resource time by country":       "BR ~150.25 200 | US ~77.5 10",
	"latency-map.json: panel agents: p75 total time by agent country": "BR ~214.25 20 | DE ~75.25 100",
	"latency-map.json: panel RUM latency by country":                  "BR ~100.5 ~150.25 ~190.05 200 0.0476 | US ~55 ~77.5 ~95.5 10 0",
	"cdns.json: panel RUM: p75 by country and CDN":                    "BR cloudflare ~75.25 100 0.0909 | BR fastly ~175.25 100 0 | US cloudflare ~77.5 10 0",
	"cdns.json: panel agents: POP and cache hits by region and CDN":   "eu cloudflare GRU 110 0.2455 ~75.25",
	"vitals.json: panel Core Web Vitals, p75":                         "~3637.5 ~291 ~0.073 110",
	"vitals.json: panel vitals by country: p75 and good share":        "BR ~3762.5 0.5 ~301 0.5 ~0.075 1 100 | US ~310 1 ~31 1 ~0.008 1 10",
	"fleet.json: variable region":                                     "eu | na | sa",
	"fleet.json: variable country":                                    "BR | DE",
	"fleet.json: panel agents: last seen and spool":                   "a-br sa BR 0 * * * v1 0 0 - | a-eu eu DE 0 * * * v1 7 0 - | a-us na - 0 \\N \\N - 0 0 -",
	"fleet.json: panel coverage by country":                           "BR 1 1 | DE 1 1",
	"tls.json: panel issuers":                                         "R3 1 28.9",
	"tls.json: panel validity per trust store":                        "eu apple 110 20 | eu mozilla 110 0",
	"steering.json: variable pool":                                    "www",
	"steering.json: panel last decision":                              "www BR cloudflare 40 up * 100 * | www BR fastly 60 up * 100 *",
	"latency.json: variable check":                                    "demo",
}

// seed writes, on engine e, known rows a few minutes before now:
//   - rum_pageviews, site shop: 100 BR views with LCP 50..5000 ms step 50,
//     INP 4..400 step 4, CLS 0.001..0.1; 10 US views with LCP 40..400
//     step 40, INP 4..40, CLS 0.001..0.01; 5 bots (ignored); BR view 1 replayed.
//   - rum_cdn: BR cloudflare 1..100 ms and 10 errors, BR fastly 101..200
//     ms, US cloudflare 10..100 step 10.
//   - results: agent a-eu (region eu, country DE) 100 ok http results of
//     1..100 ms via cloudflare GRU and 10 refused, every 4th of the 110 a
//     cache hit, each showing a certificate by R3 with 30 - i/100 days
//     left, valid for mozilla, for apple but the last 20; agent a-br (region sa, country BR) 20 ok results
//     of 200..219 ms.
//   - agents a-eu, a-br, a-us (na, never seen); heartbeats; two steering
//     decisions for pool www, scope BR.
func seed(t *testing.T, e *chtest.Engine, now time.Time) {
	t.Helper()
	at := func(ago time.Duration) string { return fmt.Sprintf("toDateTime(%d)", now.Add(-ago).Unix()) }
	var pv, cdn, res []string
	for i := 1; i <= 100; i++ {
		pv = append(pv, fmt.Sprintf("(%s, 'shop', 'br%d', 'BR', 0, %d, %d, %g)", at(5*time.Minute), i, i*50, i*4, float64(i)/1000))
	}
	for i := 1; i <= 10; i++ {
		pv = append(pv, fmt.Sprintf("(%s, 'shop', 'us%d', 'US', 0, %d, %d, %g)", at(5*time.Minute), i, i*40, i*4, float64(i)/1000))
	}
	for i := 1; i <= 5; i++ {
		pv = append(pv, fmt.Sprintf("(%s, 'shop', 'bot%d', 'BR', 1, 99999, 9999, 9)", at(5*time.Minute), i))
	}
	for i := 1; i <= 100; i++ {
		cdn = append(cdn,
			fmt.Sprintf("(%s, 'shop', 'br%d', 'BR', 0, 'host', 'cloudflare', %d, 0)", at(5*time.Minute), i, i),
			fmt.Sprintf("(%s, 'shop', 'br%d', 'BR', 0, 'host', 'fastly', %d, 0)", at(5*time.Minute), i, 100+i))
	}
	for i := 1; i <= 10; i++ {
		cdn = append(cdn,
			fmt.Sprintf("(%s, 'shop', 'bre%d', 'BR', 0, 'probe_cold', 'cloudflare', NULL, 1)", at(5*time.Minute), i),
			fmt.Sprintf("(%s, 'shop', 'us%d', 'US', 0, 'host', 'cloudflare', %d, 0)", at(5*time.Minute), i, i*10))
	}
	for i := 1; i <= 110; i++ {
		ok, total, cache, days, apple := 1, fmt.Sprint(i), "miss", fmt.Sprintf("%g", 30-float64(i)/100), 1
		if i%4 == 0 {
			cache = "hit"
		}
		if i > 90 {
			apple = 0
		}
		if i > 100 {
			ok, total = 0, "NULL"
		}
		res = append(res, fmt.Sprintf("(%s, 'a-eu-%d', 'a-eu', 'eu', 'demo', 'http', 'https://example.com/', %d, %s, %s, %s, %s, %s, %s, "+
			"'cloudflare', 'GRU', '%s', 'abc', 'R3', 'example.com', %s, 'TLS 1.3', ['mozilla', 'apple'], [1, %d], '%s')",
			at(2*time.Minute), i, ok, total, phase(i, ok), phase(i, ok), phase(i, ok), phase(i, ok), phase(i, ok), cache, days, apple, errClass(ok)))
	}
	for i := 0; i < 20; i++ {
		res = append(res, fmt.Sprintf("(%s, 'a-br-%d', 'a-br', 'sa', 'demo', 'http', 'https://example.com/', 1, %d, 1, 1, 1, 1, 1, "+
			"'', '', '', '', '', '', NULL, '', [], [], '')", at(3*time.Minute), i, 200+i))
	}
	stmts := []string{
		"INSERT INTO rum_pageviews (ts, site, pv, country, is_bot, lcp_ms, inp_ms, cls) VALUES " + strings.Join(pv, ", "),
		// A replay of the first BR view, in a part of its own, marked as the
		// collector marks what it inserts again: counted once.
		"INSERT INTO rum_pageviews (ts, site, pv, country, is_bot, lcp_ms, inp_ms, cls, replay) VALUES " + strings.TrimSuffix(pv[0], ")") + ", 1)",
		"INSERT INTO rum_cdn (ts, site, pv, country, is_bot, kind, cdn, duration_ms, error) VALUES " + strings.Join(cdn, ", "),
		"INSERT INTO results (ts, id, agent, region, check_name, kind, target, ok, total_ms, dns_ms, connect_ms, tls_ms, ttfb_ms, transfer_ms, " +
			"cdn, cdn_pop, cdn_cache, cert_sha256, cert_issuer, cert_subject, cert_days_left, tls_version, trust_store, trust_valid, error) VALUES " + strings.Join(res, ", "),
		"INSERT INTO agents (name, region, version) VALUES ('a-eu', 'eu', 1), ('a-br', 'sa', 1), ('a-us', 'na', 1)",
		"INSERT INTO agent_countries (agent, country, version) VALUES ('a-eu', 'DE', 1), ('a-br', 'BR', 1)",
		fmt.Sprintf("INSERT INTO agent_heartbeats (agent, ts, version, spool_results) VALUES ('a-eu', %s, 'v1', 5), ('a-eu', %s, 'v1', 7), ('a-br', %s, 'v1', 0)",
			at(2*time.Minute), at(time.Minute), at(time.Minute)),
		steering(now.Add(-30*time.Minute), 70, 30),
		steering(now.Add(-10*time.Minute), 40, 60),
	}
	for _, s := range stmts {
		if _, err := e.Exec(s); err != nil {
			t.Fatalf("ClickHouse %s refuses the seed: %v\n%.300s", e.Name, err, s)
		}
	}
}

func phase(i, ok int) string {
	if ok == 0 {
		return "NULL"
	}
	return fmt.Sprintf("%g", float64(i)/5)
}

func errClass(ok int) string {
	if ok == 0 {
		return "connect_refused"
	}
	return ""
}

func steering(at time.Time, cloudflare, fastly int) string {
	row := func(i int, member string, w int) string {
		return fmt.Sprintf("(toDateTime(%d), %d, 'www', 'BR', %d, '%s', %d, 'up', %d, 100, 'test')", at.Unix(), at.UnixNano(), i, member, w, 50+i)
	}
	return "INSERT INTO steering_history (computed_at, decision, pool, scope, member_index, member, weight, state, score_ms, samples, reason) VALUES " +
		row(0, "cloudflare", cloudflare) + ", " + row(1, "fastly", fastly)
}
