package export

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/meridian-net/meridian/collector/steering"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the renderers")

// fixture is one decision: two members, global, country:BR and
// country:BR/asn:28573 where cdn-b is down.
func fixture() (*steering.Decision, *steering.Pool, map[string][]string) {
	at := time.Date(2026, 12, 7, 10, 30, 0, 0, time.UTC)
	m := func(name string, w int, state string, score float64) steering.MemberDecision {
		return steering.MemberDecision{Name: name, Weight: w, State: state, ScoreMs: score, RawMs: score, Q: score, Samples: 400, RUMSamples: 200, SyntheticSamples: 200, Reason: "fixture"}
	}
	d := &steering.Decision{Pool: "www", DNSName: "www.shop.example.", ComputedAt: at, TTL: 30, Scopes: []steering.ScopeDecision{
		{Scope: "global", FiguresFrom: "global", Rule: steering.RuleScore, ChangedAt: at,
			Members: []steering.MemberDecision{m("cdn-a", 60, steering.StateUp, 80), m("cdn-b", 40, steering.StateUp, 105)}},
		{Scope: "country:BR", FiguresFrom: "country:BR", Rule: steering.RuleScore, ChangedAt: at,
			Members: []steering.MemberDecision{m("cdn-a", 70, steering.StateUp, 60), m("cdn-b", 30, steering.StateDegraded, 110)}},
		{Scope: "country:BR/asn:28573", FiguresFrom: "country:BR/asn:28573", Rule: steering.RuleScore, Changed: true, ChangedAt: at,
			Members: []steering.MemberDecision{m("cdn-a", 100, steering.StateUp, 55), m("cdn-b", 0, steering.StateDown, 1050)}},
	}}
	pool := &steering.Pool{Name: "www", DNSName: "www.shop.example.", TTL: 30, Members: []steering.Member{
		{Name: "cdn-a", Addresses: []string{"192.0.2.10", "2001:db8::10"}},
		{Name: "cdn-b", Addresses: []string{"192.0.2.20", "192.0.2.21"}},
	}}
	return d, pool, map[string][]string{"sa": {"BR", "AR", "CL"}}
}

var fixtureOpts = Options{HostedZoneID: "Z0123456789EXAMPLE", Scope: "country:BR/asn:28573", Backend: "be_www", Servers: map[string]string{"cdn-a": "cdn_a_1"}}

func render(t *testing.T, format string, d *steering.Decision, pool *steering.Pool, regions map[string][]string, opts Options) []byte {
	t.Helper()
	b, err := Render(format, d, pool, regions, opts)
	if err != nil {
		t.Fatalf("Render(%s): %v", format, err)
	}
	return b
}

func TestGolden(t *testing.T) {
	d, pool, regions := fixture()
	for _, f := range Formats {
		got := render(t, f, d, pool, regions, fixtureOpts)
		path := filepath.Join("testdata", f+".golden")
		if *update {
			if err := os.WriteFile(path, got, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run go test -update to write it)", err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: got\n%s\nwant (%s; go test -update rewrites it)\n%s", f, got, path, want)
		}
	}
}

func TestUnknownFormat(t *testing.T) {
	d, pool, regions := fixture()
	_, err := Render("yaml", d, pool, regions, Options{})
	var oe *OptionError
	if !errors.As(err, &oe) {
		t.Fatalf("Render(yaml): got %v, want an *OptionError", err)
	}
	for _, f := range Formats {
		if !strings.Contains(err.Error(), f) {
			t.Errorf("Render(yaml): %q does not name format %s", err, f)
		}
	}
	if Known("yaml") || !Known("pdns-lua") {
		t.Errorf("Known: yaml %v, pdns-lua %v", Known("yaml"), Known("pdns-lua"))
	}
}

func TestMismatchedPolicy(t *testing.T) {
	d, pool, regions := fixture()
	pool.Members[1].Name = "cdn-c"
	for _, f := range Formats {
		if _, err := Render(f, d, pool, regions, fixtureOpts); err == nil || !strings.Contains(err.Error(), "cdn-b") {
			t.Errorf("%s with a policy lacking cdn-b: got %v, want an error naming cdn-b", f, err)
		}
	}
}

var (
	branchRE = regexp.MustCompile(`(?:if (.*?) then )?return (pickwhashed\(\{(.*?)\}\)|\{\})`)
	entryRE  = regexp.MustCompile(`\{(\d+),'([^']+)'\}`)
)

// luaBranches reads a LUA record's program back: condition ("" for the
// fall-through) → address → weight.
func luaBranches(t *testing.T, content string) ([]string, map[string]map[string]int) {
	t.Helper()
	typ, rest, _ := strings.Cut(content, " ")
	code, ok := strings.CutPrefix(rest, `";`)
	if !ok || !strings.HasSuffix(code, `"`) || strings.Count(code, `"`) != 1 || strings.Contains(code, `\`) {
		t.Fatalf("%s LUA content %q: want one double-quoted program starting with ';' and no other \" or \\", typ, content)
	}
	var conds []string
	out := map[string]map[string]int{}
	for _, m := range branchRE.FindAllStringSubmatch(code, -1) {
		conds = append(conds, m[1])
		out[m[1]] = map[string]int{}
		for _, e := range entryRE.FindAllStringSubmatch(m[3], -1) {
			w, _ := strconv.Atoi(e[1])
			out[m[1]][e[2]] += w
		}
	}
	return conds, out
}

func TestPDNSRecords(t *testing.T) {
	d, pool, regions := fixture()
	recs, err := PDNSRecords(d, pool, regions)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 || recs[0].Type != "LUA" || !strings.HasPrefix(recs[0].Content, "A ") || !strings.HasPrefix(recs[1].Content, "AAAA ") {
		t.Fatalf("got %+v, want an A and an AAAA LUA record", recs)
	}
	conds, v4 := luaBranches(t, recs[0].Content)
	wantConds := []string{"country('BR') and asnum(28573)", "country('BR')", ""}
	if strings.Join(conds, "|") != strings.Join(wantConds, "|") {
		t.Errorf("A branches %q, want %q (most specific first, global last)", conds, wantConds)
	}
	// cdn-b's two addresses share its weight: per member the picks keep the decision's proportions.
	for cond, want := range map[string][2]int{"country('BR') and asnum(28573)": {100, 0}, "country('BR')": {70, 30}, "": {60, 40}} {
		a, b := v4[cond]["192.0.2.10"], v4[cond]["192.0.2.20"]+v4[cond]["192.0.2.21"]
		if a*want[1] != b*want[0] || a == 0 {
			t.Errorf("A branch %q: cdn-a %d, cdn-b %d; want the proportion %d:%d", cond, a, b, want[0], want[1])
		}
		if v4[cond]["192.0.2.20"] != v4[cond]["192.0.2.21"] {
			t.Errorf("A branch %q: cdn-b's addresses weigh %v, want equal", cond, v4[cond])
		}
	}
	if _, down := v4["country('BR') and asnum(28573)"]["192.0.2.20"]; down {
		t.Errorf("the down cdn-b is a pick in its ASN scope: %s", recs[0].Content)
	}
	_, v6 := luaBranches(t, recs[1].Content)
	for cond, picks := range v6 {
		if len(picks) != 1 || picks["2001:db8::10"] == 0 {
			t.Errorf("AAAA branch %q: %v, want cdn-a's address alone (cdn-b has no IPv6)", cond, picks)
		}
	}
}

func TestPDNSAPIShape(t *testing.T) {
	d, pool, regions := fixture()
	// The PATCH body as the PowerDNS API documents it (RRSet, Record).
	var body struct {
		RRSets []struct {
			Name       string `json:"name"`
			Type       string `json:"type"`
			TTL        int    `json:"ttl"`
			ChangeType string `json:"changetype"`
			Records    []struct {
				Content  string `json:"content"`
				Disabled bool   `json:"disabled"`
			} `json:"records"`
		} `json:"rrsets"`
	}
	strict(t, render(t, "pdns-api", d, pool, regions, Options{}), &body)
	if len(body.RRSets) != 1 || body.RRSets[0].Type != "LUA" || body.RRSets[0].ChangeType != "REPLACE" || len(body.RRSets[0].Records) != 2 || body.RRSets[0].TTL != 30 {
		t.Fatalf("got %+v, want one LUA RRset replacing an A and an AAAA record", body)
	}
	recs, _ := PDNSRecords(d, pool, regions)
	if body.RRSets[0].Records[0].Content != recs[0].Content {
		t.Errorf("API content %q differs from the record %q", body.RRSets[0].Records[0].Content, recs[0].Content)
	}
	zone := string(render(t, "pdns-lua", d, pool, regions, Options{}))
	if !strings.Contains(zone, "\nwww.shop.example. 30 IN LUA A \";if country('BR') and asnum(28573) then return pickwhashed(") {
		t.Errorf("zone fragment:\n%s", zone)
	}
}

func TestPDNSRegionsAndCNAMEs(t *testing.T) {
	d, pool, regions := fixture()
	d.Scopes = append(d.Scopes, steering.ScopeDecision{Scope: "region:sa", Members: []steering.MemberDecision{
		{Name: "cdn-a", Weight: 20, State: steering.StateUp}, {Name: "cdn-b", Weight: 80, State: steering.StateUp}}})
	recs, err := PDNSRecords(d, pool, regions)
	if err != nil {
		t.Fatal(err)
	}
	if conds, _ := luaBranches(t, recs[0].Content); len(conds) != 4 || conds[2] != "country({'AR','BR','CL'})" {
		t.Errorf("branches %q: want the region's countries third, before global", conds)
	}
	if _, err := PDNSRecords(d, pool, nil); err == nil || !strings.Contains(err.Error(), "region:sa") {
		t.Errorf("a region scope without the policy's regions: got %v, want an error naming region:sa", err)
	}

	d, pool, regions = fixture()
	pool.Members[0] = steering.Member{Name: "cdn-a", CNAME: "shop.cdn-a.example."}
	if _, err := PDNSRecords(d, pool, regions); err == nil || !strings.Contains(err.Error(), "cname") {
		t.Errorf("a pool mixing addresses and cnames: got %v, want an error", err)
	}
	pool.Members[1] = steering.Member{Name: "cdn-b", CNAME: "shop.cdn-b.example."}
	recs, err = PDNSRecords(d, pool, regions)
	if err != nil || len(recs) != 1 || !strings.HasPrefix(recs[0].Content, "CNAME ") {
		t.Fatalf("a CNAME pool: got %+v, %v; want one LUA CNAME record", recs, err)
	}
	if _, picks := luaBranches(t, recs[0].Content); picks[""]["shop.cdn-a.example."] != 60 || picks[""]["shop.cdn-b.example."] != 40 {
		t.Errorf("CNAME global picks %v, want 60/40", picks[""])
	}
}

func TestWeightedFailsOpen(t *testing.T) {
	sd := &steering.ScopeDecision{Members: []steering.MemberDecision{
		{Name: "a", Weight: 0, State: steering.StateDown}, {Name: "b", Weight: 0, State: steering.StateUp}, {Name: "c", Weight: 0, State: steering.StateDegraded}}}
	if got := weighted(sd); len(got) != 2 || got[0].Name != "b" || got[0].Weight != 1 || got[1].Weight != 1 {
		t.Errorf("all-zero weights: got %+v, want b and c at 1", got)
	}
	for i := range sd.Members {
		sd.Members[i].State = steering.StateDown
	}
	if got := weighted(sd); len(got) != 3 {
		t.Errorf("all-zero and all down: got %+v, want every member", got)
	}
}

func TestHAProxyCommands(t *testing.T) {
	d, _, _ := fixture()
	got, err := HAProxyCommands(d, "country:BR/asn:28573", "be_www", map[string]string{"cdn-a": "cdn_a_1"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"set server be_www/cdn_a_1 weight 200", "set server be_www/cdn_a_1 state ready",
		"set server be_www/cdn-b weight 0", "set server be_www/cdn-b state maint",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	got, _ = HAProxyCommands(d, "", "", nil)
	if got[0] != "set server www/cdn-a weight 120" || got[2] != "set server www/cdn-b weight 80" || got[3] != "set server www/cdn-b state ready" {
		t.Errorf("defaults (global, backend = pool, server = member): got %q", got)
	}
	for _, c := range []struct {
		scope, backend string
		servers        map[string]string
		want           string
	}{
		{"country:DE", "", nil, "country:BR"},
		{"", "be www", nil, "be www"},
		{"", "", map[string]string{"cdn-z": "z"}, "cdn-z"},
		{"", "", map[string]string{"cdn-a": "a\nshutdown"}, "cdn-a"},
	} {
		_, err := HAProxyCommands(d, c.scope, c.backend, c.servers)
		var oe *OptionError
		if !errors.As(err, &oe) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("scope %q backend %q servers %v: got %v, want an option error naming %q", c.scope, c.backend, c.servers, err, c.want)
		}
	}
}

// strict decodes b into v, refusing fields v does not have.
func strict(t *testing.T, b []byte, v any) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("decode %T: %v\n%s", v, err, b)
	}
}

func TestNS1(t *testing.T) {
	d, pool, regions := fixture()
	var feed map[string]struct { // NS1's data feed body: label → {weight, up}
		Weight int  `json:"weight"`
		Up     bool `json:"up"`
	}
	strict(t, render(t, "ns1", d, pool, regions, Options{}), &feed)
	if len(feed) != 6 {
		t.Errorf("got %d labels, want 6 (3 scopes × 2 members): %v", len(feed), feed)
	}
	sums := map[string]int{}
	for label, m := range feed {
		sums[label[:strings.LastIndex(label, "-cdn-")]] += m.Weight
	}
	for _, s := range []string{"www-global", "www-BR", "www-BR-AS28573"} {
		if sums[s] != 100 {
			t.Errorf("scope %s: weights sum to %d, want 100 (%v)", s, sums[s], feed)
		}
	}
	if b := feed["www-BR-AS28573-cdn-b"]; b.Up || b.Weight != 0 {
		t.Errorf("down cdn-b in the ASN scope: got %+v, want up false, weight 0", b)
	}
	if a := feed["www-BR-cdn-a"]; !a.Up || a.Weight != 70 {
		t.Errorf("www-BR-cdn-a: got %+v", a)
	}
}

func TestCloudflare(t *testing.T) {
	d, pool, regions := fixture()
	d.Scopes = append(d.Scopes, steering.ScopeDecision{Scope: "region:sa", Members: []steering.MemberDecision{
		{Name: "cdn-a", Weight: 35, State: steering.StateUp}, {Name: "cdn-b", Weight: 65, State: steering.StateUp}}})
	var doc struct { // Cloudflare pools with origins, and the load balancer's routing
		Pools []struct {
			Name    string `json:"name"`
			Origins []struct {
				Name    string  `json:"name"`
				Address string  `json:"address"`
				Weight  float64 `json:"weight"`
				Enabled bool    `json:"enabled"`
			} `json:"origins"`
		} `json:"pools"`
		DefaultPools []string            `json:"default_pools"`
		CountryPools map[string][]string `json:"country_pools"`
	}
	strict(t, render(t, "cloudflare", d, pool, regions, Options{}), &doc)
	var names []string
	for _, p := range doc.Pools {
		names = append(names, p.Name)
		sum := 0.0
		for _, o := range p.Origins {
			if o.Weight < 0 || o.Weight > 1 || o.Weight*100 != float64(int(o.Weight*100+0.5)) {
				t.Errorf("pool %s origin %s: weight %v is not 0–1 in hundredths", p.Name, o.Name, o.Weight)
			}
			sum += o.Weight
		}
		if sum < 0.98 || sum > 1.02 {
			t.Errorf("pool %s: weights sum to %v, want about 1", p.Name, sum)
		}
	}
	if strings.Join(names, " ") != "www-global www-region-sa www-BR" {
		t.Errorf("pools %q: want global, region, country (no ASN pool)", names)
	}
	if doc.DefaultPools[0] != "www-global" || doc.CountryPools["BR"][0] != "www-BR" || doc.CountryPools["AR"][0] != "www-region-sa" {
		t.Errorf("routing: default %v, countries %v", doc.DefaultPools, doc.CountryPools)
	}
	o := doc.Pools[0].Origins
	if len(o) != 4 || o[0].Weight != 0.3 || o[2].Name != "cdn-b" || o[3].Name != "cdn-b#2" || o[3].Weight != 0.2 {
		t.Errorf("global origins %+v: want cdn-a's two addresses at 0.3 and cdn-b's at 0.2", o)
	}

	// A down member: disabled, weight 0.
	d.Scopes[0].Members[1] = steering.MemberDecision{Name: "cdn-b", Weight: 0, State: steering.StateDown}
	cp, err := CloudflarePoolsOf(d, pool, regions)
	if err != nil {
		t.Fatal(err)
	}
	if b := cp.Pools[0].Origins[2]; b.Enabled || b.Weight != 0 {
		t.Errorf("down cdn-b: got %+v, want disabled at 0", b)
	}
}
