package steering

import (
	"testing"
)

const routersPolicy = `pools:
  - name: www
    dns_name: www.shop.example.
    members:
      - {name: cdn-a, addresses: [192.0.2.10]}
      - {name: cdn-b, addresses: [192.0.2.20]}
    routers:
`

func TestRoutersGood(t *testing.T) {
	p, err := ParsePolicy("r.yml", []byte(routersPolicy+`      - {name: edge, kind: haproxy, runtime: "unix:/run/haproxy/admin.sock", backend: www, servers: {cdn-a: s1, cdn-b: s2}}
      - {name: edge-br, kind: haproxy, runtime: "tcp:127.0.0.1:9999", backend: www, scope: "country:BR", servers: {cdn-a: s1}}
      - {name: dns, kind: pdns, api: "http://127.0.0.1:8081", api_key_env: PDNS_API_KEY, zone: "shop.example."}
`))
	if err != nil {
		t.Fatal(err)
	}
	rs := p.Pools[0].Routers
	if len(rs) != 3 || rs[0].Scope != "global" || rs[2].ServerID != "localhost" || rs[1].Servers["cdn-a"] != "s1" {
		t.Fatalf("got routers %+v, want three, with scope global and server_id localhost filled in", rs)
	}
	if got, want := rs[2].Target(), "http://127.0.0.1:8081/api/v1/servers/localhost/zones/shop.example."; got != want {
		t.Errorf("got target %q, want %q", got, want)
	}
}

// Each bad router must fail with exactly this message, at its line.
func TestRoutersInvalid(t *testing.T) {
	for _, c := range []struct{ router, want string }{
		{`{name: Edge, kind: haproxy, runtime: "tcp:127.0.0.1:1", backend: www, servers: {cdn-a: s1}}`,
			`r.yml:8: pools[0] (www): routers[0] (Edge): name "Edge" must be 1 to 63 of a-z, 0-9 and -`},
		{`{name: edge, kind: nginx}`, `r.yml:8: pools[0] (www): routers[0] (edge): kind "nginx" must be haproxy or pdns`},
		{`{name: edge, kind: haproxy, runtime: "/run/admin.sock", backend: www, servers: {cdn-a: s1}}`,
			`r.yml:8: pools[0] (www): routers[0] (edge): runtime "/run/admin.sock" must be unix:/absolute/path.sock or tcp:HOST:PORT`},
		{`{name: edge, kind: haproxy, runtime: "tcp:127.0.0.1:1", backend: www, servers: {cdn-z: s1}}`,
			`r.yml:8: pools[0] (www): routers[0] (edge): servers: member "cdn-z" is not in this pool`},
		{`{name: edge, kind: haproxy, runtime: "tcp:127.0.0.1:1", backend: www, scope: "country:XX", servers: {cdn-a: s1}}`,
			`r.yml:8: pools[0] (www): routers[0] (edge): cannot parse scope "country:XX": "XX" is not an ISO 3166 alpha-2 country code (write it upper-case, such as BR)`},
		{`{name: edge, kind: haproxy, runtime: "tcp:127.0.0.1:1", backend: www, servers: {cdn-a: s1}, zone: shop.example.}`,
			`r.yml:8: pools[0] (www): routers[0] (edge): zone is for kind pdns; an haproxy router takes runtime, backend, scope and servers`},
		{`{name: dns, kind: pdns, api: "127.0.0.1:8081", api_key_env: PDNS_API_KEY, zone: shop.example.}`,
			`r.yml:8: pools[0] (www): routers[0] (dns): api "127.0.0.1:8081" must be the webserver's base URL, such as http://127.0.0.1:8081`},
		{`{name: dns, kind: pdns, api: "http://127.0.0.1:8081", api_key_env: "secret key", zone: shop.example.}`,
			`r.yml:8: pools[0] (www): routers[0] (dns): api_key_env "secret key" must name the environment variable holding the API key, such as PDNS_API_KEY`},
		{`{name: dns, kind: pdns, api: "http://127.0.0.1:8081", api_key_env: K, zone: other.example.}`,
			`r.yml:8: pools[0] (www): routers[0] (dns): zone "other.example." does not hold the pool's dns_name www.shop.example.`},
	} {
		_, err := ParsePolicy("r.yml", []byte(routersPolicy+"      - "+c.router+"\n"))
		if err == nil || err.Error() != c.want {
			t.Errorf("router %s:\ngot  %v\nwant %s", c.router, err, c.want)
		}
	}
	_, err := ParsePolicy("r.yml", []byte(routersPolicy+`      - {name: edge, kind: pdns, api: "http://x:1", api_key_env: K, zone: shop.example.}
      - {name: edge, kind: pdns, api: "http://x:1", api_key_env: K, zone: shop.example.}
`))
	if want := `r.yml:9: pools[0] (www): routers[1] (edge): name "edge" is already used by routers[0]; names must be unique in a pool`; err == nil || err.Error() != want {
		t.Errorf("duplicate router:\ngot  %v\nwant %s", err, want)
	}
}
