package steering

import (
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"

	"github.com/meridian-net/meridian/internal/yamlconf"
)

// Router kinds a pool's decisions can be pushed to.
const (
	RouterHAProxy = "haproxy" // runtime API: server weights and states in one backend
	RouterPDNS    = "pdns"    // PowerDNS HTTP API: LUA records in one zone
)

// Router is somewhere a pool's decisions are pushed after each step (see
// push.go). Which keys apply depends on Kind; the others must be left out.
type Router struct {
	Name string `yaml:"name"` // unique in the pool; names the router in logs, metrics and steering_pushes
	Kind string `yaml:"kind"` // haproxy or pdns

	// haproxy
	Runtime string            `yaml:"runtime"` // "unix:/run/haproxy/admin.sock" or "tcp:127.0.0.1:9999" (stats socket … level admin)
	Backend string            `yaml:"backend"` // the backend whose servers are the pool's members
	Scope   string            `yaml:"scope"`   // the decision scope a single proxy applies; global when left out
	Servers map[string]string `yaml:"servers"` // member name → server name in Backend

	// pdns
	API       string `yaml:"api"`         // base URL of the webserver, such as http://127.0.0.1:8081
	APIKeyEnv string `yaml:"api_key_env"` // environment variable holding the X-API-Key (never the key itself)
	ServerID  string `yaml:"server_id"`   // localhost when left out
	Zone      string `yaml:"zone"`        // the zone holding the pool's dns_name, such as shop.example.
}

// Target says where the router is, for logs and steering_pushes.
func (r Router) Target() string {
	if r.Kind == RouterHAProxy {
		return r.Runtime
	}
	return strings.TrimSuffix(r.API, "/") + "/api/v1/servers/" + r.ServerID + "/zones/" + r.Zone
}

// runtimeAddr splits a runtime address into a net.Dial network and address.
func runtimeAddr(s string) (network, addr string, err error) {
	switch kind, rest, _ := strings.Cut(s, ":"); {
	case kind == "unix" && strings.HasPrefix(rest, "/"):
		return "unix", rest, nil
	case kind == "tcp":
		host, port, err := net.SplitHostPort(rest)
		if n, perr := strconv.Atoi(port); err != nil || host == "" || perr != nil || n < 1 || n > 65535 {
			break
		}
		return "tcp", rest, nil
	}
	return "", "", fmt.Errorf("runtime %q must be unix:/absolute/path.sock or tcp:HOST:PORT", s)
}

var (
	envNameRE    = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	haproxyIDRE  = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,127}$`) // HAProxy's proxy and server names
	pdnsServerRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,63}$`)
)

// validateRouters checks pools[i].routers, filling in the defaults (scope
// global, server_id localhost) as it goes.
func (p *Policy) validateRouters(doc *yamlconf.Doc, i int) []error {
	pl := &p.Pools[i]
	var errs []error
	seen := map[string]int{}
	for j := range pl.Routers {
		r := &pl.Routers[j]
		at := func(msg, key string) {
			prefix := fmt.Sprintf("pools[%d]", i)
			if pl.Name != "" {
				prefix += " (" + pl.Name + ")"
			}
			prefix += fmt.Sprintf(": routers[%d]", j)
			if r.Name != "" {
				prefix += " (" + r.Name + ")"
			}
			errs = append(errs, doc.Errorf(prefix+": "+msg, "pools", strconv.Itoa(i), "routers", strconv.Itoa(j), key))
		}
		switch {
		case !validName(r.Name):
			at(fmt.Sprintf("name %q must be 1 to 63 of a-z, 0-9 and -", r.Name), "name")
		case seen[r.Name] > 0:
			at(fmt.Sprintf("name %q is already used by routers[%d]; names must be unique in a pool", r.Name, seen[r.Name]-1), "name")
		default:
			seen[r.Name] = j + 1
		}
		switch r.Kind {
		case RouterHAProxy:
			checkHAProxy(p, pl, r, at)
		case RouterPDNS:
			checkPDNS(pl, r, at)
		default:
			at(fmt.Sprintf("kind %q must be haproxy or pdns", r.Kind), "kind")
		}
	}
	return errs
}

func checkHAProxy(p *Policy, pl *Pool, r *Router, at func(msg, key string)) {
	for _, kv := range [][2]string{{"api", r.API}, {"api_key_env", r.APIKeyEnv}, {"server_id", r.ServerID}, {"zone", r.Zone}} {
		if kv[1] != "" {
			at(kv[0]+" is for kind pdns; an haproxy router takes runtime, backend, scope and servers", kv[0])
		}
	}
	if _, _, err := runtimeAddr(r.Runtime); err != nil {
		at(err.Error(), "runtime")
	}
	if !haproxyIDRE.MatchString(r.Backend) {
		at(fmt.Sprintf("backend %q must be the name of a backend in the HAProxy configuration", r.Backend), "backend")
	}
	if r.Scope == "" {
		r.Scope = Global.String()
	}
	if sc, err := ParseScope(r.Scope); err != nil {
		at(err.Error(), "scope")
	} else if sc.Region != "" && p.Regions[sc.Region] == nil {
		at(fmt.Sprintf("scope %q: region %q is not under regions:", r.Scope, sc.Region), "scope")
	}
	if len(r.Servers) == 0 {
		at("servers: map each member to its server in the backend, such as {cdn-a: s1}", "servers")
	}
	used := map[string]string{}
	for _, m := range sortedKeys(r.Servers) {
		s := r.Servers[m]
		switch {
		case !pl.hasMember(m):
			at(fmt.Sprintf("servers: member %q is not in this pool", m), "servers")
		case !haproxyIDRE.MatchString(s):
			at(fmt.Sprintf("servers: %q (for %s) must be a server name in backend %s", s, m, r.Backend), "servers")
		case used[s] != "":
			at(fmt.Sprintf("servers: server %q is given to both %s and %s", s, used[s], m), "servers")
		default:
			used[s] = m
		}
	}
}

func checkPDNS(pl *Pool, r *Router, at func(msg, key string)) {
	if r.Runtime != "" || r.Backend != "" || r.Scope != "" || r.Servers != nil {
		at("runtime, backend, scope and servers are for kind haproxy; a pdns router takes api, api_key_env, server_id and zone", "")
	}
	if u, err := url.Parse(r.API); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" {
		at(fmt.Sprintf("api %q must be the webserver's base URL, such as http://127.0.0.1:8081", r.API), "api")
	}
	if !envNameRE.MatchString(r.APIKeyEnv) {
		at(fmt.Sprintf("api_key_env %q must name the environment variable holding the API key, such as PDNS_API_KEY", r.APIKeyEnv), "api_key_env")
	}
	if r.ServerID == "" {
		r.ServerID = "localhost"
	}
	if !pdnsServerRE.MatchString(r.ServerID) {
		at(fmt.Sprintf("server_id %q must be a PowerDNS server id, such as localhost", r.ServerID), "server_id")
	}
	switch {
	case !validFQDN(r.Zone):
		at(fmt.Sprintf("zone %q must be a fully qualified name ending in a dot, such as shop.example.", r.Zone), "zone")
	case !inZone(pl.DNSName, r.Zone):
		at(fmt.Sprintf("zone %q does not hold the pool's dns_name %s", r.Zone, pl.DNSName), "zone")
	}
}

func (pl *Pool) hasMember(name string) bool {
	for _, m := range pl.Members {
		if m.Name == name {
			return true
		}
	}
	return false
}

// inZone says whether name is zone or under it (both fully qualified).
func inZone(name, zone string) bool {
	name, zone = strings.ToLower(name), strings.ToLower(zone)
	return name == zone || strings.HasSuffix(name, "."+zone)
}
