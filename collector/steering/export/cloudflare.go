package export

import (
	"math"
	"strconv"
	"strings"

	"github.com/meridian-net/meridian/collector/steering"
)

// CloudflarePools is the decision as Cloudflare Load Balancing objects:
// one pool per scope (named <pool>-<scope label>: www-global, www-BR,
// www-region-eu) with the members as origins, plus the load balancer's
// default_pools and country_pools that route to them. A region scope
// routes each of its countries without a scope of its own. Cloudflare has
// no ASN steering: country+ASN scopes are left out.
type CloudflarePools struct {
	Pools        []CloudflarePool    `json:"pools"`
	DefaultPools []string            `json:"default_pools"`
	CountryPools map[string][]string `json:"country_pools"`
}

// CloudflarePool is one Cloudflare pool.
type CloudflarePool struct {
	Name    string             `json:"name"`
	Origins []CloudflareOrigin `json:"origins"`
}

// CloudflareOrigin is one origin of a pool: Weight is the member's weight
// as a fraction (0–1, two decimals, as the API takes it), shared between
// its addresses; Enabled is false for a down member. A member with several
// addresses (or a CNAME: Address is then the host name) has one origin per
// address, the second named "cdn-a#2" and so on.
type CloudflareOrigin struct {
	Name    string  `json:"name"`
	Address string  `json:"address"`
	Weight  float64 `json:"weight"`
	Enabled bool    `json:"enabled"`
}

// CloudflarePoolsOf renders d with the pool's addresses and the policy's regions.
func CloudflarePoolsOf(d *steering.Decision, pool *steering.Pool, regions map[string][]string) (*CloudflarePools, error) {
	if err := check(d, pool); err != nil {
		return nil, err
	}
	scopes, err := specificFirst(d)
	if err != nil {
		return nil, err
	}
	out := &CloudflarePools{Pools: []CloudflarePool{}, CountryPools: map[string][]string{}}
	for i := len(scopes) - 1; i >= 0; i-- { // global, regions, countries: the order a reader sets them up
		s := scopes[i]
		if s.scope.ASN != 0 {
			continue
		}
		label, err := scopeLabel(s.Scope)
		if err != nil {
			return nil, err
		}
		cp := CloudflarePool{Name: d.Pool + "-" + label, Origins: []CloudflareOrigin{}}
		for _, m := range s.Members {
			origins, err := cloudflareOrigins(member(pool, m.Name), m)
			if err != nil {
				return nil, err
			}
			cp.Origins = append(cp.Origins, origins...)
		}
		out.Pools = append(out.Pools, cp)
		switch {
		case s.scope == steering.Global:
			out.DefaultPools = []string{cp.Name}
		case s.scope.Country != "":
			out.CountryPools[s.scope.Country] = []string{cp.Name}
		default:
			ccs, err := regionCountries(regions, s.scope.Region)
			if err != nil {
				return nil, err
			}
			for _, cc := range ccs {
				if _, own := d.Scope("country:" + cc); !own {
					out.CountryPools[cc] = []string{cp.Name}
				}
			}
		}
	}
	return out, nil
}

func cloudflareOrigins(m *steering.Member, md steering.MemberDecision) ([]CloudflareOrigin, error) {
	addrs := []string{strings.TrimSuffix(m.CNAME, ".")}
	if m.CNAME == "" {
		v4, v6, err := addresses(m)
		if err != nil {
			return nil, err
		}
		addrs = append(v4, v6...)
	}
	up := md.State != steering.StateDown
	w := 0.0
	if up {
		w = math.Round(float64(md.Weight)/float64(len(addrs))) / 100
	}
	var out []CloudflareOrigin
	for i, a := range addrs {
		name := m.Name
		if i > 0 {
			name += "#" + strconv.Itoa(i+1)
		}
		out = append(out, CloudflareOrigin{Name: name, Address: a, Weight: w, Enabled: up})
	}
	return out, nil
}

func renderCloudflare(d *steering.Decision, pool *steering.Pool, regions map[string][]string, _ Options) ([]byte, error) {
	cp, err := CloudflarePoolsOf(d, pool, regions)
	if err != nil {
		return nil, err
	}
	return marshalIndent(cp)
}
