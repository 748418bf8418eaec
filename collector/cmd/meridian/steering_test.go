package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/meridian-net/meridian/collector/steering"
	"github.com/meridian-net/meridian/collector/store"
	"github.com/meridian-net/meridian/collector/store/chtest"
)

const minimalPolicy = `pools:
  - name: www
    dns_name: www.shop.example.
    members:
      - {name: cdn-a, addresses: [192.0.2.10]}
      - {name: cdn-b, addresses: [192.0.2.20]}
`

func writeFile(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// lastLine is the last non-empty line of out.
func lastLine(out string) string {
	out = strings.TrimSpace(out)
	return out[strings.LastIndex(out, "\n")+1:]
}

// TestSteeringPolicy: a valid policy is stored and shown; an invalid one is
// refused with its file and line and the stored one stays.
func TestSteeringPolicy(t *testing.T) {
	o, _ := chtest.New(t)
	if out, code := meridian(t, o, "steering", "policy", "show"); code != 1 || !strings.Contains(out, "policy set") {
		t.Errorf("policy show before any set: exit %d, %q; want exit 1 naming `policy set`", code, out)
	}
	good := writeFile(t, "steering.yml", minimalPolicy)
	if out := mustRun(t, o, "steering", "policy", "set", "--file", good); !strings.Contains(out, "1 pools") {
		t.Errorf("policy set: got %q", out)
	}
	show := mustRun(t, o, "steering", "policy", "show")
	if !strings.Contains(show, minimalPolicy) || !strings.Contains(show, "# steering policy v") {
		t.Errorf("policy show: want the YAML and a version header, got:\n%s", show)
	}

	bad := writeFile(t, "bad.yml", strings.Replace(minimalPolicy, "{name: cdn-b, addresses: [192.0.2.20]}", "{name: cdn-b}", 1))
	out, code := meridian(t, o, "steering", "policy", "set", "--file", bad)
	if code != 1 || !strings.Contains(out, bad+":6:") {
		t.Errorf("policy set of a member without addresses: exit %d, %q; want exit 1 naming %s:6", code, out, bad)
	}
	if again := mustRun(t, o, "steering", "policy", "show"); !strings.Contains(again, minimalPolicy) {
		t.Errorf("a refused policy replaced the stored one:\n%s", again)
	}
}

func TestAgentsAddCountry(t *testing.T) {
	o, conn := chtest.New(t)
	ctx := context.Background()
	out := mustRun(t, o, "agents", "add", "sp-1", "--region", "sa-east", "--country", "br")
	if tok := lastLine(out); !strings.HasPrefix(tok, store.TokenPrefix) {
		t.Errorf("agents add --country: last line %q is not a token:\n%s", tok, out)
	}
	out, code := meridian(t, o, "agents", "add", "xx-1", "--region", "sa-east", "--country", "XX")
	if code != 2 || !strings.Contains(out, `"XX"`) {
		t.Errorf("agents add --country XX: exit %d, %q; want a usage error naming XX", code, out)
	}
	countries, err := store.AgentCountries(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	if len(countries) != 1 || countries["sp-1"] != "BR" {
		t.Errorf("agent countries: got %v, want only sp-1: BR", countries)
	}
	agents, err := store.ListAgents(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	if len(agents) != 1 {
		t.Errorf("a refused agents add added an agent: %v", agents)
	}
	list := mustRun(t, o, "agents", "list")
	if lines := strings.Split(strings.TrimSpace(list), "\n"); len(lines) != 2 || !strings.Contains(lines[0], "country") || !strings.HasPrefix(strings.Join(strings.Fields(lines[1]), " "), "sp-1 sa-east BR ") {
		t.Errorf("agents list: want sp-1's country BR in its row:\n%s", list)
	}
}

func TestTokens(t *testing.T) {
	o, _ := chtest.New(t)
	out := mustRun(t, o, "tokens", "add", "pdns", "--role", "steering-reader")
	if tok := lastLine(out); !strings.HasPrefix(tok, store.TokenPrefix) {
		t.Errorf("tokens add: last line %q is not a token:\n%s", tok, out)
	}
	if list := mustRun(t, o, "tokens", "list"); !strings.Contains(list, "pdns") || !strings.Contains(list, "steering-reader") {
		t.Errorf("tokens list: got\n%s", list)
	}
	if out, code := meridian(t, o, "tokens", "add", "x", "--role", "admin"); code != 2 || !strings.Contains(out, "steering-reader") {
		t.Errorf("tokens add --role admin: exit %d, %q; want a usage error naming the roles", code, out)
	}
}

// seedCDNs stores 40 successful RUM probe fetches per member from Brazil,
// cdn-a faster than cdn-b.
func seedCDNs(t *testing.T, db string) {
	t.Helper()
	ts := time.Now().Add(-30 * time.Second).Unix()
	var rows []string
	for i := range 40 {
		for _, m := range []struct {
			cdn string
			ms  int
		}{{"cdn-a", 50}, {"cdn-b", 120}} {
			rows = append(rows, fmt.Sprintf("(toDateTime(%d), 's', '%s-%d', 'BR', 28573, 'probe_cold', '%s', %d, 0, 200, 0)", ts, m.cdn, i, m.cdn, m.ms+i))
		}
	}
	if _, err := chtest.Server(t, db).Exec("INSERT INTO rum_cdn (ts, site, pv, country, asn, kind, cdn, ttfb_ms, error, status, is_bot) VALUES " + strings.Join(rows, ", ")); err != nil {
		t.Fatal(err)
	}
}

// TestSteeringDecisions publishes one decision as `steering run` would and
// reads it through show, export and explain.
func TestSteeringDecisions(t *testing.T) {
	o, conn := chtest.New(t)
	mustRun(t, o, "steering", "policy", "set", "--file", writeFile(t, "steering.yml", minimalPolicy))
	if out, code := meridian(t, o, "steering", "show"); code != 1 || !strings.Contains(out, "meridian serve --steering") {
		t.Errorf("steering show before any decision: exit %d, %q; want exit 1 naming `meridian serve --steering`", code, out)
	}
	seedCDNs(t, o.Database)
	r := &steering.Runner{Conn: conn, AgentCountry: func(context.Context) (map[string]string, error) { return nil, nil }}
	if _, err := r.Step(context.Background(), time.Now()); err != nil {
		t.Fatal(err)
	}

	for _, args := range [][]string{{"steering", "show"}, {"steering", "show", "--fresh"}} {
		sums := map[string]int{}
		for _, line := range strings.Split(strings.TrimSpace(mustRun(t, o, args...)), "\n")[1:] {
			f := strings.Fields(line)
			w, err := strconv.Atoi(f[3])
			if f[0] != "www" || err != nil {
				t.Fatalf("%s: bad row %q", strings.Join(args, " "), line)
			}
			sums[f[1]+" "+f[2]] = w
			sums[f[1]] += w
		}
		for _, k := range []string{"global cdn-a", "global cdn-b", "country:BR cdn-a", "country:BR cdn-b"} {
			if _, ok := sums[k]; !ok {
				t.Errorf("%s: no row for %s: %v", strings.Join(args, " "), k, sums)
			}
		}
		if sums["global"] != 100 || sums["country:BR"] != 100 {
			t.Errorf("%s: weights sum to %d (global) and %d (country:BR), want 100", strings.Join(args, " "), sums["global"], sums["country:BR"])
		}
		if sums["country:BR cdn-a"] <= sums["country:BR cdn-b"] {
			t.Errorf("%s: the faster cdn-a has weight %d, cdn-b %d", strings.Join(args, " "), sums["country:BR cdn-a"], sums["country:BR cdn-b"])
		}
	}
	if out := mustRun(t, o, "steering", "show", "--scope", "country:BR"); strings.Contains(out, "global") {
		t.Errorf("steering show --scope country:BR shows other scopes:\n%s", out)
	}

	var feed steering.Feed
	if err := json.Unmarshal([]byte(mustRun(t, o, "steering", "export", "--pool", "www", "--format", "json")), &feed); err != nil {
		t.Fatalf("export --format json: %v", err)
	}
	if feed.Version != steering.FeedVersion || len(feed.Pools) != 1 || feed.Pools[0].Pool != "www" {
		t.Errorf("export --format json: got %+v", feed)
	}
	recs, err := csv.NewReader(strings.NewReader(mustRun(t, o, "steering", "export", "--pool", "www", "--format", "csv"))).ReadAll()
	if err != nil || len(recs) < 5 || strings.Join(recs[0], ",") != "pool,scope,member,weight,state,score_ms,samples,rule" {
		t.Errorf("export --format csv: err %v, records %q", err, recs)
	}
	testSteeringExportFormats(t, o)
	if out := mustRun(t, o, "steering", "explain", "--pool", "www", "--scope", "country:BR"); !strings.Contains(out, "scope country:BR") {
		t.Errorf("explain: got\n%s", out)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"steering", "show", "--pool", "nope"}, "www"},
		{[]string{"steering", "show", "--pool", "www", "--scope", "country:DE"}, "country:BR"},
		{[]string{"steering", "explain", "--pool", "www", "--scope", "country:DE"}, "country:BR"},
		{[]string{"steering", "export", "--pool", "www", "--format", "route53"}, "--hosted-zone-id"},
		{[]string{"steering", "export", "--pool", "www", "--format", "yaml"}, "pdns-lua, pdns-api, route53, ns1, cloudflare, haproxy"},
		{[]string{"steering", "export", "--pool", "www", "--format", "haproxy", "--scope", "country:DE"}, "country:BR"},
		{[]string{"steering", "export", "--pool", "www", "--format", "haproxy", "--server", "cdn-a"}, "MEMBER=SERVER"},
		{[]string{"steering", "export", "--pool", "www", "--format", "haproxy", "--server", "cdn-z=z"}, "cdn-z"},
	} {
		if out, code := meridian(t, o, tc.args...); code != 2 || !strings.Contains(out, tc.want) {
			t.Errorf("meridian %s: exit %d, %q; want exit 2 mentioning %q", strings.Join(tc.args, " "), code, out, tc.want)
		}
	}
}

// TestSteeringRun: `steering run` publishes at once and stops with its context.
func TestSteeringRun(t *testing.T) {
	o, conn := chtest.New(t)
	mustRun(t, o, "steering", "policy", "set", "--file", writeFile(t, "steering.yml", minimalPolicy))
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	var out bytes.Buffer
	if err := run(ctx, []string{"meridian", "steering", "run", "--every", "1h", "--clickhouse", o.Addr, "--database", o.Database}, &out, &out); err != nil {
		t.Fatalf("steering run: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "published 1 pools") {
		t.Errorf("steering run: want a published line, got %q", out.String())
	}
	last, err := steering.Latest(context.Background(), conn, "www")
	if err != nil || last.Decisions["www"] == nil {
		t.Errorf("after steering run: no decision for www (err %v)", err)
	}
}

// testSteeringExportFormats: every router format renders the published
// decision with the policy's addresses and the options given.
func testSteeringExportFormats(t *testing.T, o store.Options) {
	t.Helper()
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"--format", "pdns-lua"}, []string{"www.shop.example. 30 IN LUA A \";if country('BR') and asnum(28573) then return pickwhashed({{", "end if country('BR') then return pickwhashed(", "'192.0.2.20'}"}},
		{[]string{"--format", "pdns-api"}, []string{`"changetype": "REPLACE"`, `"type": "LUA"`}},
		{[]string{"--format", "route53", "--hosted-zone-id", "Z123"}, []string{`"HostedZoneId": "Z123"`, `"SetIdentifier": "meridian-www-BR-cdn-a"`}},
		{[]string{"--format", "ns1"}, []string{`"www-BR-cdn-b": {`}},
		{[]string{"--format", "cloudflare"}, []string{`"name": "www-BR"`, `"address": "192.0.2.10"`}},
		{[]string{"--format", "haproxy", "--scope", "country:BR", "--backend", "be", "--server", "cdn-b=b1"}, []string{"set server be/cdn-a weight ", "set server be/b1 state ready"}},
	} {
		out := mustRun(t, o, append([]string{"steering", "export", "--pool", "www"}, tc.args...)...)
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("steering export %s: output lacks %q:\n%s", strings.Join(tc.args, " "), w, out)
			}
		}
	}
}

// TestSteeringRunPushes: `steering run` pushes to the pool's routers; a
// router that cannot be reached fails loudly (a logged error, a failed
// push in `steering show`) and the decision is published all the same.
func TestSteeringRunPushes(t *testing.T) {
	o, conn := chtest.New(t)
	sock := filepath.Join(t.TempDir(), "no-haproxy.sock")
	policy := minimalPolicy + "    routers: [{name: edge, kind: haproxy, runtime: \"unix:" + sock + "\", backend: be_www, servers: {cdn-a: s1, cdn-b: s2}}]\n"
	mustRun(t, o, "steering", "policy", "set", "--file", writeFile(t, "steering.yml", policy))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var out bytes.Buffer
	if err := run(ctx, []string{"meridian", "steering", "run", "--every", "1h", "--clickhouse", o.Addr, "--database", o.Database}, &out, &out); err != nil {
		t.Fatalf("steering run: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "edge") || !strings.Contains(out.String(), "no-haproxy.sock") {
		t.Errorf("steering run: want the failed push to router edge logged, got %q", out.String())
	}
	if last, err := steering.Latest(context.Background(), conn, "www"); err != nil || last.Decisions["www"] == nil {
		t.Errorf("a failed push: no decision for www (err %v), want it published all the same", err)
	}
	show := mustRun(t, o, "steering", "show", "--pool", "www")
	if !strings.Contains(show, "router www/edge (haproxy unix:"+sock+"): FAILED") {
		t.Errorf("steering show: want a FAILED line for router edge, got\n%s", show)
	}
}
