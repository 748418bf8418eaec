package export

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/meridian-net/meridian/collector/steering"
)

// PDNSRecord is one PowerDNS record: Type LUA, Content such as
// `A ";if country('BR') then return pickwhashed({{70,'192.0.2.10'}}) end return …"`.
type PDNSRecord = steering.DNSRecord

// PDNSRecords are LUA records for the pool's dns_name (PowerDNS 4.7,
// enable-lua-records=yes, a GeoIP backend for country() and asnum()):
// one `LUA A` record when members have IPv4 addresses, one `LUA AAAA`
// when they have IPv6 ones, or one `LUA CNAME` when members answer with
// CNAMEs. Each record's program tries the decision's scopes most specific
// first:
//
//	country:CC/asn:N  if country('CC') and asnum(N) then return …
//	country:CC        if country('CC') then return …
//	region:R          if country({'AR','BR',…}) then return …   (R's countries from regions)
//	global            return …
//
// and answers with pickwhashed({{weight,'answer'},…}), which picks by the
// decision's weights, sticky per client (or ECS) address. Only members
// with weight are listed, so a down member is never answered. A member
// with several addresses of a family shares its weight between them (the
// weights are scaled to integers that keep every member's share). A scope
// whose weighted members have no address of the record's family returns
// an empty list: no answer of that family (NODATA), so dual-stack clients
// use the other.
//
// The program uses single quotes only: PowerDNS keeps LUA code in a quoted
// zone-file string, and the JSON API escapes nothing else in it.
func PDNSRecords(d *steering.Decision, pool *steering.Pool, regions map[string][]string) ([]PDNSRecord, error) {
	if err := check(d, pool); err != nil {
		return nil, err
	}
	kind, err := answerKind(pool)
	if err != nil {
		return nil, err
	}
	scopes, err := specificFirst(d)
	if err != nil {
		return nil, err
	}
	answers, types, err := pdnsAnswers(pool, kind)
	if err != nil {
		return nil, err
	}
	var out []PDNSRecord
	for _, t := range types {
		code, err := luaProgram(scopes, regions, answers[t])
		if err != nil {
			return nil, err
		}
		out = append(out, PDNSRecord{Name: d.DNSName, Type: "LUA", TTL: d.TTL, Content: t + ` "` + code + `"`})
	}
	return out, nil
}

// pdnsAnswers maps a record type (A, AAAA, CNAME) to each member's answers
// of that type, and lists the types the pool needs.
func pdnsAnswers(pool *steering.Pool, kind string) (map[string]map[string][]string, []string, error) {
	by := map[string]map[string][]string{"A": {}, "AAAA": {}, "CNAME": {}}
	for i := range pool.Members {
		m := &pool.Members[i]
		if kind == answerCNAME {
			if !safeName(m.CNAME) {
				return nil, nil, fmt.Errorf("cannot export member %s: cname %q is not a host name", m.Name, m.CNAME)
			}
			by["CNAME"][m.Name] = []string{m.CNAME}
			continue
		}
		v4, v6, err := addresses(m)
		if err != nil {
			return nil, nil, err
		}
		by["A"][m.Name], by["AAAA"][m.Name] = v4, v6
	}
	var types []string
	for _, t := range []string{"A", "AAAA", "CNAME"} {
		for _, a := range by[t] {
			if len(a) > 0 {
				types = append(types, t)
				break
			}
		}
	}
	return by, types, nil
}

// luaProgram is a multi-statement LUA record body (leading ';').
func luaProgram(scopes []scoped, regions map[string][]string, answers map[string][]string) (string, error) {
	var b strings.Builder
	b.WriteString(";")
	for _, s := range scopes {
		pick := luaPick(weighted(s.ScopeDecision), answers)
		if s.scope == steering.Global {
			b.WriteString("return " + pick)
			break
		}
		cond, err := luaCondition(s.scope, regions)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "if %s then return %s end ", cond, pick)
	}
	return b.String(), nil
}

func luaCondition(s steering.Scope, regions map[string][]string) (string, error) {
	switch {
	case s.Region != "":
		ccs, err := regionCountries(regions, s.Region)
		if err != nil {
			return "", err
		}
		return "country({'" + strings.Join(ccs, "','") + "'})", nil
	case s.ASN != 0:
		return fmt.Sprintf("country('%s') and asnum(%d)", s.Country, s.ASN), nil
	}
	return "country('" + s.Country + "')", nil
}

// luaPick is pickwhashed over the members' answers, or {} when none has
// one. A member with n answers gives each weight×L/n, L the least common
// multiple of the answer counts, so every member keeps its share.
func luaPick(members []steering.MemberDecision, answers map[string][]string) string {
	l := 1
	for _, m := range members {
		if n := len(answers[m.Name]); n > 0 {
			l = lcm(l, n)
		}
	}
	var entries []string
	for _, m := range members {
		as := answers[m.Name]
		for _, a := range as {
			entries = append(entries, "{"+strconv.Itoa(m.Weight*l/len(as))+",'"+a+"'}")
		}
	}
	if len(entries) == 0 {
		return "{}"
	}
	return "pickwhashed({" + strings.Join(entries, ",") + "})"
}

func lcm(a, b int) int {
	g, h := a, b
	for h != 0 {
		g, h = h, g%h
	}
	return a / g * b
}

// renderPDNSLua is a zone-file fragment for the bind backend or
// `pdnsutil load-zone`.
func renderPDNSLua(d *steering.Decision, pool *steering.Pool, regions map[string][]string, _ Options) ([]byte, error) {
	recs, err := PDNSRecords(d, pool, regions)
	if err != nil {
		return nil, err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "; meridian steering: pool %s, decision computed %s\n", d.Pool, d.ComputedAt.UTC().Format("2006-01-02T15:04:05Z"))
	for _, r := range recs {
		fmt.Fprintf(&b, "%s %d IN %s %s\n", r.Name, r.TTL, r.Type, r.Content)
	}
	return []byte(b.String()), nil
}

// PDNSPatch is the body of PATCH /api/v1/servers/localhost/zones/ZONE that
// replaces the pool's LUA records. A and AAAA LUA records of one name are
// one RRset (type LUA), so one REPLACE carries them all.
type PDNSPatch struct {
	RRSets []PDNSRRSet `json:"rrsets"`
}

// PDNSRRSet is one RRset of a PDNSPatch.
type PDNSRRSet struct {
	Name       string          `json:"name"`
	Type       string          `json:"type"`
	TTL        int             `json:"ttl"`
	ChangeType string          `json:"changetype"`
	Records    []PDNSAPIRecord `json:"records"`
}

// PDNSAPIRecord is one record of a PDNSRRSet.
type PDNSAPIRecord struct {
	Content  string `json:"content"`
	Disabled bool   `json:"disabled"`
}

// NewPDNSPatch groups records into REPLACE changes by name and type.
func NewPDNSPatch(recs []PDNSRecord) PDNSPatch {
	p := PDNSPatch{RRSets: []PDNSRRSet{}}
	for _, r := range recs {
		i := len(p.RRSets) - 1
		if i < 0 || p.RRSets[i].Name != r.Name || p.RRSets[i].Type != r.Type {
			p.RRSets = append(p.RRSets, PDNSRRSet{Name: r.Name, Type: r.Type, TTL: r.TTL, ChangeType: "REPLACE"})
			i++
		}
		p.RRSets[i].Records = append(p.RRSets[i].Records, PDNSAPIRecord{Content: r.Content})
	}
	return p
}

func renderPDNSAPI(d *steering.Decision, pool *steering.Pool, regions map[string][]string, _ Options) ([]byte, error) {
	recs, err := PDNSRecords(d, pool, regions)
	if err != nil {
		return nil, err
	}
	return marshalIndent(NewPDNSPatch(recs))
}
