package steering

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParsePolicyGood(t *testing.T) {
	p, err := loadPolicy("testdata/good.yml")
	if err != nil {
		t.Fatal(err)
	}
	www, ok := p.Pool("www")
	if !ok || len(p.Pools) != 2 || www.TTL != 20 || len(www.Members) != 3 {
		t.Fatalf("got pools %+v, want www (ttl 20, 3 members) and api", p.Pools)
	}
	if m := www.Members[1]; m.SyntheticName() != "fastly" || m.RUMName() != "Fastly" || www.Members[0].RUMName() != "cdn-a" {
		t.Errorf("got match names %q %q %q, want fastly Fastly cdn-a", m.SyntheticName(), m.RUMName(), www.Members[0].RUMName())
	}
	if www.Members[2].CNAME != "shop.cdn-c.example." || www.Home["region:eu"] != "cdn-a" {
		t.Errorf("got cname %q home %v", www.Members[2].CNAME, www.Home)
	}
	want := DefaultKnobs()
	if p.Defaults != want {
		t.Errorf("good.yml's defaults should be the built-in ones:\ngot  %+v\nwant %+v", p.Defaults, want)
	}
	want.TauMs = 80
	if got := www.Knobs(); got != want {
		t.Errorf("www knobs:\ngot  %+v\nwant %+v", got, want)
	}
	api, _ := p.Pool("api")
	if got := api.Knobs(); got.Scopes != (ScopeLevels{ASN: false, Region: true}) || got.TauMs != 60 || api.TTL != DefaultTTL {
		t.Errorf("api: got scopes %+v tau %v ttl %d, want asn off, region on, tau 60, ttl %d", got.Scopes, got.TauMs, api.TTL, DefaultTTL)
	}
	if p.RegionOf("BR") != "latam" || p.RegionOf("JP") != "" {
		t.Errorf("got regions of BR, JP %q %q, want latam and none", p.RegionOf("BR"), p.RegionOf("JP"))
	}
}

func TestParsePolicyMinimal(t *testing.T) {
	p, err := ParsePolicy("min.yml", []byte(`
pools:
  - name: www
    dns_name: www.shop.example.
    members:
      - {name: cdn-a, addresses: [192.0.2.10]}
      - {name: cdn-b, addresses: [192.0.2.20]}
`))
	if err != nil {
		t.Fatal(err)
	}
	if pl := p.Pools[0]; pl.TTL != DefaultTTL || pl.Knobs() != DefaultKnobs() || (Pool{}).Knobs() != DefaultKnobs() {
		t.Errorf("got ttl %d knobs %+v, want the defaults", pl.TTL, pl.Knobs())
	}
	defaults := DefaultKnobs()
	defaults.MinDwell = time.Minute
	p, err = ParsePolicy("d.yml", []byte("defaults: {min_dwell: 1m}\npools: [{name: a, dns_name: a.example., members: [{name: x, cname: x.example.}]}]\n"))
	if err != nil || p.Pools[0].Knobs() != defaults {
		t.Errorf("got %v, %+v; want defaults with min_dwell 1m", err, p)
	}
}

// Each invalid-*.yml must fail with exactly this message.
func TestParsePolicyInvalid(t *testing.T) {
	want := map[string]string{
		"address":             `testdata/invalid-address.yml:6: pools[0] (www): members[1]: address "192.0.2.300" is not an IPv4 or IPv6 address`,
		"cname-and-addresses": `testdata/invalid-cname-and-addresses.yml:6: pools[0] (www): members[1]: give addresses or a cname, not both (a DNS name cannot have both)`,
		"dns-name":            `testdata/invalid-dns-name.yml:3: pools[0] (www): dns_name "www.shop.example" must be a fully qualified name ending in a dot, such as www.example.com.`,
		"duplicate-member":    `testdata/invalid-duplicate-member.yml:7: pools[0] (www): members[2]: name "cdn-a" is already used by members[0]; names must be unique in a pool`,
		"duplicate-pool":      `testdata/invalid-duplicate-pool.yml:7: pools[1] (www): name "www" is already used by pools[0]; names must be unique`,
		"duration":            "testdata/invalid-duration.yml:2: cannot unmarshal !!int `5` into time.Duration (write durations with a unit, such as 10s)",
		"fast-window":         "testdata/invalid-fast-window.yml:4: pools[0] (www): window 30s must be longer than fast_window 30s: set fast_window shorter, or 0s to turn it off",
		"empty":               `testdata/invalid-empty.yml: the policy is empty (want pools: with at least one pool)`,
		"floor":               `testdata/invalid-floor.yml:8: pools[0] (www): floor_percent 40 × 3 members exceeds 100; lower the floor`,
		"home-asn-off":        `testdata/invalid-home-asn-off.yml:7: pools[0] (www): home "country:BR/asn:28573": ASN scopes are not published (scopes.asn is false)`,
		"home-member":         `testdata/invalid-home-member.yml:7: pools[0] (www): home "country:BR": member "cdn-z" is not in this pool`,
		"home-scope":          `testdata/invalid-home-scope.yml:8: pools[0] (www): home "country:XX": "XX" is not an ISO 3166 alpha-2 country code (write it upper-case, such as BR)`,
		"knob":                `testdata/invalid-knob.yml:2: defaults.tau_ms 0 must be from 1 to 1000000 ms`,
		"metric":              `testdata/invalid-metric.yml:2: defaults.metric "p95" must be ttfb or total`,
		"no-answer":           `testdata/invalid-no-answer.yml:7: pools[0] (www): members[2]: give addresses or a cname for the answer`,
		"no-members":          `testdata/invalid-no-members.yml:2: pools[0] (www): no members: add at least one under members: (a single member is allowed)`,
		"no-pools":            `testdata/invalid-no-pools.yml:1: no pools: add at least one under pools:`,
		"pool-knob":           `testdata/invalid-pool-knob.yml:7: pools[0] (www): alpha 2 must be above 0 and at most 1 (1 turns smoothing off)`,
		"pool-name":           `testdata/invalid-pool-name.yml:2: pools[0] (WWW): name "WWW" must be 1 to 63 of a-z, 0-9 and -`,
		"region-country":      `testdata/invalid-region-country.yml:2: regions.eu: "fr" is not an ISO 3166 alpha-2 country code (write it upper-case, such as DE)`,
		"region-twice":        `testdata/invalid-region-twice.yml:3: regions.west: FR is already in region eu; a country belongs to one region`,
		"several": `testdata/invalid-several.yml:3: pools[0] (www): dns_name "www.shop.example" must be a fully qualified name ending in a dot, such as www.example.com.
testdata/invalid-several.yml:6: pools[0] (www): members[1]: address "not-an-ip" is not an IPv4 or IPv6 address
testdata/invalid-several.yml:7: pools[0] (www): ttl -1 must be from 1 to 86400 seconds`,
		"syntax":        `testdata/invalid-syntax.yml:1: did not find expected '-' indicator`,
		"unknown-field": `testdata/invalid-unknown-field.yml:4: unknown field "membres" in steering.Pool (check the spelling and the indentation)`,
		"unknown-knob":  `testdata/invalid-unknown-knob.yml:2: unknown field "tau" in steering.Knobs (check the spelling and the indentation)`,
		"weights":       `testdata/invalid-weights.yml:2: defaults.rum_weight and synthetic_weight are both 0; give one of them a weight`,
	}
	files, _ := filepath.Glob("testdata/invalid-*.yml")
	if len(files) != len(want) {
		t.Errorf("got %d invalid-*.yml files, want %d (one per case below)", len(files), len(want))
	}
	for _, f := range files {
		name := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(f), "invalid-"), ".yml")
		_, err := loadPolicy(f)
		if err == nil {
			t.Errorf("%s: got no error, want %q", f, want[name])
		} else if err.Error() != want[name] {
			t.Errorf("%s:\ngot  %s\nwant %s", f, err, want[name])
		}
	}
}

func loadPolicy(path string) (*Policy, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParsePolicy(path, b)
}
