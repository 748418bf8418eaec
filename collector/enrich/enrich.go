// Package enrich owns what the collector derives from a browser request
// before dropping its address: the client IP (behind trusted proxies only),
// country/region/city and ASN from MaxMind-format databases, and browser,
// OS, device class and bot flag from the user agent.
package enrich

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"

	"github.com/oschwald/maxminddb-golang/v2"
)

// Options say where the databases are and whom to trust. Empty paths mean
// no database: the fields it would fill stay empty.
type Options struct {
	GeoIPPath      string         // a City (or Country) database: GeoLite2, DB-IP lite, ip-location-db
	ASNPath        string         // an ASN database: GeoLite2-ASN layout
	TrustedProxies []netip.Prefix // peers whose X-Forwarded-For is believed
}

// Enricher looks up visitors. It is safe for concurrent use.
type Enricher struct {
	geo, asn *maxminddb.Reader
	trusted  []netip.Prefix
	// Decoded records by their offset in the database (the same record
	// serves every address of a network, and many networks of a city):
	// decoding was about a twentieth of a beacon's CPU (make bench).
	geoCache *cache[uintptr, geoFields]
	asnCache *cache[uintptr, asnRecord]
}

// geoFields are what Locate keeps of a city record.
type geoFields struct{ country, region, city string }

const recordCacheSize = 16384

// Location is what the databases say of an address.
type Location struct {
	Country string // ISO 3166-1 alpha-2
	Region  string // ISO 3166-2 subdivision code without the country, or the database's region name
	City    string // English name
	ASN     uint32
	ASOrg   string
}

// Open opens the databases named in o.
func Open(o Options) (*Enricher, error) {
	e := &Enricher{trusted: o.TrustedProxies,
		geoCache: newCache[uintptr, geoFields](recordCacheSize), asnCache: newCache[uintptr, asnRecord](recordCacheSize)}
	var err error
	if o.GeoIPPath != "" {
		if e.geo, err = maxminddb.Open(o.GeoIPPath); err != nil {
			return nil, fmt.Errorf("cannot open GeoIP database %q: %w (give a MaxMind-format .mmdb, for example GeoLite2-City.mmdb or dbip-city-lite.mmdb)", o.GeoIPPath, err)
		}
	}
	if o.ASNPath != "" {
		if e.asn, err = maxminddb.Open(o.ASNPath); err != nil {
			e.Close()
			return nil, fmt.Errorf("cannot open ASN database %q: %w (give a MaxMind-format .mmdb, for example GeoLite2-ASN.mmdb)", o.ASNPath, err)
		}
	}
	return e, nil
}

// Close releases the databases.
func (e *Enricher) Close() error {
	if e == nil {
		return nil
	}
	for _, r := range []*maxminddb.Reader{e.geo, e.asn} {
		if r != nil {
			r.Close()
		}
	}
	return nil
}

// ParsePrefixes parses --trusted-proxy values: CIDRs or single addresses.
func ParsePrefixes(values []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, v := range values {
		for _, s := range strings.Split(v, ",") {
			s = strings.TrimSpace(s)
			if s == "" {
				continue
			}
			if p, err := netip.ParsePrefix(s); err == nil {
				out = append(out, p.Masked())
				continue
			}
			a, err := netip.ParseAddr(s)
			if err != nil {
				return nil, fmt.Errorf("cannot parse trusted proxy %q: want a CIDR such as 10.0.0.0/8 or an address", s)
			}
			out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
		}
	}
	return out, nil
}

func (e *Enricher) isTrusted(a netip.Addr) bool {
	for _, p := range e.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// ClientIP returns the address of the browser behind r. X-Forwarded-For is
// read only when the TCP peer is a trusted proxy, and then from the right:
// the first address that is not itself a trusted proxy is the client (the
// ones to its left are whatever the client claimed). An invalid entry stops
// the walk at the last address known good.
func (e *Enricher) ClientIP(r *http.Request) netip.Addr {
	peer := parseHostPort(r.RemoteAddr)
	if !peer.IsValid() || !e.isTrusted(peer) {
		return peer
	}
	var hops []string
	for _, h := range r.Header.Values("X-Forwarded-For") {
		hops = append(hops, strings.Split(h, ",")...)
	}
	client := peer
	for i := len(hops) - 1; i >= 0; i-- {
		a := parseHostPort(strings.TrimSpace(hops[i]))
		if !a.IsValid() {
			break
		}
		client = a
		if !e.isTrusted(a) {
			break
		}
	}
	return client
}

// parseHostPort accepts "1.2.3.4", "1.2.3.4:5", "[::1]:5" and "::1".
func parseHostPort(s string) netip.Addr {
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap().WithZone("")
	}
	host, _, err := net.SplitHostPort(s)
	if err != nil {
		return netip.Addr{}
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap().WithZone("")
}

// geoRecord reads both the GeoLite2/DB-IP layout and ip-location-db's flat
// one ("country_code", "state1", "city" as a string).
type geoRecord struct {
	Country struct {
		ISOCode string `maxminddb:"iso_code"`
	} `maxminddb:"country"`
	Subdivisions []struct {
		ISOCode string            `maxminddb:"iso_code"`
		Names   map[string]string `maxminddb:"names"`
	} `maxminddb:"subdivisions"`
	City        any    `maxminddb:"city"`
	CountryCode string `maxminddb:"country_code"`
	State1      string `maxminddb:"state1"`
}

type asnRecord struct {
	Number uint32 `maxminddb:"autonomous_system_number"`
	Org    string `maxminddb:"autonomous_system_organization"`
}

// decodeGeo reads a city record in either layout (GeoLite2/DB-IP or
// ip-location-db).
func decodeGeo(res maxminddb.Result) (geoFields, bool) {
	var g geoRecord
	if err := res.Decode(&g); err != nil {
		return geoFields{}, false
	}
	f := geoFields{country: firstOf(g.Country.ISOCode, g.CountryCode)}
	if len(g.Subdivisions) > 0 {
		f.region = firstOf(g.Subdivisions[0].ISOCode, g.Subdivisions[0].Names["en"])
	} else {
		f.region = g.State1
	}
	switch c := g.City.(type) {
	case string:
		f.city = c
	case map[string]any:
		if names, ok := c["names"].(map[string]any); ok {
			f.city, _ = names["en"].(string)
		}
	}
	return f, true
}

// Locate looks a up in the databases; a missing database, an address not
// in it, or a record it cannot read leaves fields empty.
func (e *Enricher) Locate(a netip.Addr) Location {
	var loc Location
	if e == nil || !a.IsValid() {
		return loc
	}
	if e.geo != nil {
		if res := e.geo.Lookup(a); res.Found() {
			g, ok := e.geoCache.get(res.Offset())
			if !ok {
				g, ok = decodeGeo(res)
				if ok {
					e.geoCache.put(res.Offset(), g)
				}
			}
			loc.Country, loc.Region, loc.City = g.country, g.region, g.city
		}
	}
	loc.ASN, loc.ASOrg = e.AS(a)
	return loc
}

// AS looks a up in the ASN database alone: its AS number and organisation,
// or 0 and "" when there is no database or a is not in it. Traceroute hops
// need no more than this.
func (e *Enricher) AS(a netip.Addr) (asn uint32, org string) {
	if e == nil || e.asn == nil || !a.IsValid() {
		return 0, ""
	}
	res := e.asn.Lookup(a.Unmap())
	if !res.Found() {
		return 0, ""
	}
	r, ok := e.asnCache.get(res.Offset())
	if !ok {
		if res.Decode(&r) != nil {
			return 0, ""
		}
		e.asnCache.put(res.Offset(), r)
	}
	return r.Number, r.Org
}

func firstOf(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
