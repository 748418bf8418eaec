package export

import (
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/meridian-net/meridian/collector/steering"
)

// HAProxyWeightFactor turns a decision weight (0–100) into an HAProxy
// server weight (0–256): HAProxy weights are relative, and an integer
// factor keeps the decision's proportions exactly where ×2.56 would round
// them; 100 becomes 200.
const HAProxyWeightFactor = 2

var haproxyNameRE = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,127}$`) // HAProxy's proxy and server names

// HAProxyCommands are the runtime API lines that apply scope (global when
// empty; HAProxy is not geo-aware, so one proxy applies one scope) to
// backend (the pool's name when empty): per member in policy order,
//
//	set server BACKEND/SERVER weight N          (N = HAProxyWeightFactor × weight)
//	set server BACKEND/SERVER state maint|ready  (maint for a down member)
//
// servers maps member names to server names; a member not in it is a
// server of its own name.
func HAProxyCommands(d *steering.Decision, scope, backend string, servers map[string]string) ([]string, error) {
	if scope == "" {
		scope = "global"
	}
	if backend == "" {
		backend = d.Pool
	}
	sd, ok := d.Scope(scope)
	if !ok {
		var have []string
		for _, s := range d.Scopes {
			have = append(have, s.Scope)
		}
		return nil, optionErrorf("pool %s has no scope %q to apply in haproxy: it has %s", d.Pool, scope, strings.Join(have, ", "))
	}
	if !haproxyNameRE.MatchString(backend) {
		return nil, optionErrorf("haproxy backend %q must be 1 to 127 of letters, digits, '.', '_', ':' and '-'", backend)
	}
	for _, name := range sortedKeys(servers) {
		switch {
		case !slices.ContainsFunc(sd.Members, func(m steering.MemberDecision) bool { return m.Name == name }):
			return nil, optionErrorf("haproxy server for %q: pool %s has no such member", name, d.Pool)
		case !haproxyNameRE.MatchString(servers[name]):
			return nil, optionErrorf("haproxy server %q for member %s must be 1 to 127 of letters, digits, '.', '_', ':' and '-'", servers[name], name)
		}
	}
	var lines []string
	for _, m := range sd.Members {
		server := m.Name
		if s, ok := servers[m.Name]; ok {
			server = s
		}
		state := "ready"
		if m.State == steering.StateDown {
			state = "maint"
		}
		at := "set server " + backend + "/" + server
		lines = append(lines, at+" weight "+strconv.Itoa(HAProxyWeightFactor*m.Weight), at+" state "+state)
	}
	return lines, nil
}

func renderHAProxy(d *steering.Decision, _ *steering.Pool, _ map[string][]string, opts Options) ([]byte, error) {
	lines, err := HAProxyCommands(d, opts.Scope, opts.Backend, opts.Servers)
	if err != nil {
		return nil, err
	}
	return []byte(strings.Join(lines, "\n") + "\n"), nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
