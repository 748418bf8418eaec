// Package export renders a published steering decision for routers:
// PowerDNS LUA records, a Route 53 change batch, an NS1 data feed,
// Cloudflare pools, HAProxy runtime commands, and plain JSON or CSV.
//
// Every renderer is pure: the decision gives the weights and states, the
// pool's policy the answers (addresses or CNAMEs), the policy's regions the
// countries of a region scope. The CLI (`meridian steering export`), the
// HTTP API (GET /v1/steering/export) and the pushers all render through
// here, so a router gets the same bytes whichever way it is fed.
//
// Names that identify a scope outside Meridian (NS1 feed labels, Route 53
// set identifiers, Cloudflare pool names) use one label per scope:
// "global", "BR" (country:BR), "BR-AS28573" (country:BR/asn:28573) and
// "region-eu" (region:eu), so they stay the same from one decision to the
// next and a router's configuration can refer to them.
package export

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/meridian-net/meridian/collector/steering"
)

// Formats are the formats Render knows, in the order help texts list them.
var Formats = []string{"json", "csv", "pdns-lua", "pdns-api", "route53", "ns1", "cloudflare", "haproxy"}

// Options are what some formats need beyond the decision and the policy.
type Options struct {
	HostedZoneID string            // route53: the hosted zone holding the pool's dns_name (alias targets live there); required
	Scope        string            // haproxy: the scope one proxy applies (HAProxy is not geo-aware); global when empty
	Backend      string            // haproxy: the backend whose servers are the members; the pool's name when empty
	Servers      map[string]string // haproxy: member name → server name; the member's own name when absent
}

// OptionError is a format or option the caller got wrong (HTTP 400, exit
// 2), as opposed to a decision the policy cannot be rendered with.
type OptionError struct{ msg string }

func (e *OptionError) Error() string { return e.msg }

func optionErrorf(format string, args ...any) error {
	return &OptionError{fmt.Sprintf(format, args...)}
}

type renderer func(d *steering.Decision, pool *steering.Pool, regions map[string][]string, opts Options) ([]byte, error)

var renderers = map[string]renderer{
	"json":       renderJSON,
	"csv":        renderCSV,
	"pdns-lua":   renderPDNSLua,
	"pdns-api":   renderPDNSAPI,
	"route53":    renderRoute53,
	"ns1":        renderNS1,
	"cloudflare": renderCloudflare,
	"haproxy":    renderHAProxy,
}

// Known says whether format is one of Formats.
func Known(format string) bool { _, ok := renderers[format]; return ok }

// ContentType is the media type of format's output.
func ContentType(format string) string {
	switch format {
	case "csv":
		return "text/csv; charset=utf-8"
	case "pdns-lua", "haproxy":
		return "text/plain; charset=utf-8"
	}
	return "application/json"
}

// Render writes pool's decision d in format. regions is the policy's
// Regions (region scopes need their countries); opts is read by the
// formats its fields name.
func Render(format string, d *steering.Decision, pool *steering.Pool, regions map[string][]string, opts Options) ([]byte, error) {
	r, ok := renderers[format]
	if !ok {
		return nil, optionErrorf("unknown export format %q: use one of %s", format, strings.Join(Formats, ", "))
	}
	if err := check(d, pool); err != nil {
		return nil, err
	}
	return r(d, pool, regions, opts)
}

// check refuses a decision the policy no longer matches, as right after a
// policy change that renamed a member, so no export answers with a guess.
func check(d *steering.Decision, pool *steering.Pool) error {
	switch {
	case d == nil || pool == nil:
		return errors.New("cannot export: no decision or no pool")
	case d.Pool != pool.Name:
		return fmt.Errorf("cannot export the decision of pool %s with the policy of pool %s", d.Pool, pool.Name)
	}
	for _, sd := range d.Scopes {
		for _, m := range sd.Members {
			if member(pool, m.Name) == nil {
				return fmt.Errorf("cannot export pool %s: member %s of scope %s is not in the policy (did the policy change? the next decision will match it)", d.Pool, m.Name, sd.Scope)
			}
		}
	}
	return nil
}

func member(pool *steering.Pool, name string) *steering.Member {
	for i := range pool.Members {
		if pool.Members[i].Name == name {
			return &pool.Members[i]
		}
	}
	return nil
}

// scopeLabel names a scope in other systems' identifiers (package comment).
func scopeLabel(s string) (string, error) {
	sc, err := steering.ParseScope(s)
	switch {
	case err != nil:
		return "", fmt.Errorf("cannot export scope %q: %w", s, err)
	case sc == steering.Global:
		return "global", nil
	case sc.Region != "":
		return "region-" + sc.Region, nil
	case sc.ASN != 0:
		return sc.Country + "-AS" + strconv.FormatUint(uint64(sc.ASN), 10), nil
	}
	return sc.Country, nil
}

// scoped is a scope decision with its parsed scope.
type scoped struct {
	scope steering.Scope
	*steering.ScopeDecision
}

// specificFirst lists d's scopes as a router tries them: networks
// (country+ASN), countries, regions, global last; by scope string within
// a level. It fails without a global scope, the fallback of all.
func specificFirst(d *steering.Decision) ([]scoped, error) {
	var out []scoped
	for i := range d.Scopes {
		sc, err := steering.ParseScope(d.Scopes[i].Scope)
		if err != nil {
			return nil, fmt.Errorf("cannot export pool %s: %w", d.Pool, err)
		}
		out = append(out, scoped{sc, &d.Scopes[i]})
	}
	level := func(s steering.Scope) int {
		switch {
		case s.ASN != 0:
			return 0
		case s.Country != "":
			return 1
		case s.Region != "":
			return 2
		}
		return 3
	}
	slices.SortStableFunc(out, func(a, b scoped) int {
		if la, lb := level(a.scope), level(b.scope); la != lb {
			return la - lb
		}
		return strings.Compare(a.Scope, b.Scope)
	})
	if len(out) == 0 || out[len(out)-1].scope != steering.Global {
		return nil, fmt.Errorf("cannot export pool %s: its decision has no global scope", d.Pool)
	}
	return out, nil
}

// regionCountries is region r's countries, sorted, or an error naming the
// fix when the policy has no such region.
func regionCountries(regions map[string][]string, r string) ([]string, error) {
	ccs := slices.Clone(regions[r])
	if len(ccs) == 0 {
		return nil, fmt.Errorf("cannot export scope region:%s: the policy's regions have no %s (pass the policy's regions)", r, r)
	}
	slices.Sort(ccs)
	return ccs, nil
}

// Answer kinds of a pool: every member answers with addresses, or every
// member with a CNAME. A name cannot hold a CNAME beside other records, so
// no DNS export can mix them.
const (
	answerAddresses = "addresses"
	answerCNAME     = "cname"
)

func answerKind(pool *steering.Pool) (string, error) {
	cnames := 0
	for _, m := range pool.Members {
		if m.CNAME != "" {
			cnames++
		}
	}
	switch cnames {
	case 0:
		return answerAddresses, nil
	case len(pool.Members):
		return answerCNAME, nil
	}
	return "", fmt.Errorf("cannot export pool %s as DNS records: some members answer with addresses and some with a cname, and a DNS name cannot hold both; give every member addresses or every member a cname", pool.Name)
}

// addresses splits m's addresses by family, checking each one so that no
// renderer writes text it did not validate into a zone or a program.
func addresses(m *steering.Member) (v4, v6 []string, err error) {
	for _, a := range m.Addresses {
		ip, perr := netip.ParseAddr(a)
		switch {
		case perr != nil || ip.Zone() != "":
			return nil, nil, fmt.Errorf("cannot export member %s: address %q is not an IPv4 or IPv6 address", m.Name, a)
		case ip.Is4() || ip.Is4In6():
			v4 = append(v4, ip.Unmap().String())
		default:
			v6 = append(v6, ip.String())
		}
	}
	return v4, v6, nil
}

// safeName accepts host names (letters, digits, '-', '.', '_'), the only
// text besides addresses that renderers quote.
func safeName(s string) bool {
	return s != "" && !strings.ContainsFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.' || r == '_')
	})
}

// weighted are the members a scope answers with: those with weight, so a
// down member (weight 0) is never answered. A scope whose weights are all
// 0 (the engine never publishes one) answers with every member not down,
// or failing that every member, equally: fail open rather than not answer.
func weighted(sd *steering.ScopeDecision) []steering.MemberDecision {
	var out []steering.MemberDecision
	for _, m := range sd.Members {
		if m.Weight > 0 {
			out = append(out, m)
		}
	}
	if len(out) == 0 {
		out = equally(sd.Members, func(m steering.MemberDecision) bool { return m.State != steering.StateDown })
	}
	if len(out) == 0 {
		out = equally(sd.Members, func(steering.MemberDecision) bool { return true })
	}
	return out
}

func equally(ms []steering.MemberDecision, keep func(steering.MemberDecision) bool) []steering.MemberDecision {
	var out []steering.MemberDecision
	for _, m := range ms {
		if keep(m) {
			m.Weight = 1
			out = append(out, m)
		}
	}
	return out
}

func marshalIndent(v any) ([]byte, error) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// renderJSON is the /v1/steering feed document holding this pool alone.
func renderJSON(d *steering.Decision, _ *steering.Pool, _ map[string][]string, _ Options) ([]byte, error) {
	b, err := marshalIndent(steering.Feed{Version: steering.FeedVersion, Pools: []*steering.Decision{d}})
	if err != nil {
		return nil, fmt.Errorf("cannot encode the decision of pool %s: %w", d.Pool, err)
	}
	return b, nil
}

// renderCSV is one row per scope and member, for scripts and spreadsheets.
func renderCSV(d *steering.Decision, _ *steering.Pool, _ map[string][]string, _ Options) ([]byte, error) {
	var b strings.Builder
	w := csv.NewWriter(&b)
	w.Write([]string{"pool", "scope", "member", "weight", "state", "score_ms", "samples", "rule"})
	for _, sd := range d.Scopes {
		for _, m := range sd.Members {
			score := ""
			if !math.IsNaN(m.ScoreMs) && !math.IsInf(m.ScoreMs, 0) {
				score = strconv.FormatFloat(m.ScoreMs, 'f', 1, 64)
			}
			w.Write([]string{d.Pool, sd.Scope, m.Name, strconv.Itoa(m.Weight), m.State, score,
				strconv.FormatUint(m.Samples, 10), sd.Rule})
		}
	}
	w.Flush()
	return []byte(b.String()), w.Error()
}

// Renderers are the router renderings steering.Pusher sends (steering
// cannot import this package, which imports it).
var Renderers = steering.Renderers{HAProxy: HAProxyCommands, PDNS: PDNSRecords}
