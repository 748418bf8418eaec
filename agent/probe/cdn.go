package probe

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"

	checkdef "github.com/meridian-net/meridian/internal/probe"
	"github.com/meridian-net/meridian/internal/result"
)

// CDNInfo is what response headers say about the CDN that served them.
// Each field is empty when the headers do not say.
type CDNInfo struct {
	Vendor string // a slug from cdnVendors: cloudflare, cloudfront, fastly, …
	PoP    string // the edge location, as the vendor writes it (AMS, FRA56, fra1)
	Cache  string // hit, miss, expired, stale, bypass, dynamic or other
}

// cdnVendor says how to recognise one CDN from its response headers and
// where it writes its POP and cache status. The table below is data: adding
// a vendor adds a row, not a branch.
type cdnVendor struct {
	name   string
	detect []headerRule // any one of them identifies the vendor
	pop    []popRule    // first match wins
	cache  []string     // headers holding the cache status, first present wins
}

// headerRule matches when the header is present and its value (all values,
// lower-cased, joined by ", ") contains the text; empty text means "present".
type headerRule struct {
	header   string
	contains string
}

// popRule extracts the POP from a header: the first submatch of re.
type popRule struct {
	header string
	re     *regexp.Regexp
}

// Shorthands that keep the table below readable.
func hdrPresent(h string) headerRule        { return headerRule{h, ""} }
func hdrContains(h, text string) headerRule { return headerRule{h, text} }
func popFrom(h, expr string) popRule        { return popRule{h, regexp.MustCompile(expr)} }

// cdnVendors in the order they are tried. A response can carry headers of
// two CDNs when one fronts the other (Cloudflare in front of Vercel, say);
// the big edge networks come first because they are usually the outer one,
// the hosting platforms, whose headers pass through a fronting CDN, last.
var cdnVendors = []cdnVendor{
	{name: "cloudflare",
		detect: []headerRule{hdrPresent("cf-ray"), hdrPresent("cf-cache-status"), hdrContains("server", "cloudflare")},
		// cf-ray: 8a1b2c3d4e5f6789-AMS
		pop:   []popRule{popFrom("cf-ray", `-([A-Za-z]{3})$`)},
		cache: []string{"cf-cache-status"}},
	{name: "akamai",
		detect: []headerRule{hdrPresent("akamai-cache-status"), hdrPresent("akamai-grn"), hdrPresent("x-akamai-request-id"),
			hdrPresent("x-akamai-transformed"), hdrPresent("x-akamai-staging"), hdrContains("server", "akamaighost"),
			hdrContains("server", "akamainetstorage"), hdrContains("x-cache", "akamaighost")},
		// x-cache: TCP_MEM_HIT from a23-1-2-3.deploy.akamaitechnologies.com (AkamaiGHost/…) (-)
		cache: []string{"akamai-cache-status", "x-cache"}},
	{name: "cloudfront",
		detect: []headerRule{hdrPresent("x-amz-cf-pop"), hdrPresent("x-amz-cf-id"), hdrContains("via", "cloudfront"),
			hdrContains("x-cache", "cloudfront"), hdrContains("server", "cloudfront")},
		// x-amz-cf-pop: FRA56-C1
		pop:   []popRule{popFrom("x-amz-cf-pop", `^([A-Za-z]{3}\d+)`)},
		cache: []string{"x-cache"}},
	{name: "fastly",
		detect: []headerRule{hdrPresent("x-fastly-request-id"), hdrContains("x-served-by", "cache-"), hdrPresent("fastly-debug-digest"),
			hdrContains("server", "fastly")},
		// x-served-by: cache-fra-eddf8230044-FRA (a shielded request lists the
		// shield first and the edge last: take the last)
		pop:   []popRule{popFrom("x-served-by", `-([A-Za-z]{3})\s*$`)},
		cache: []string{"x-cache"}},
	{name: "azure",
		detect: []headerRule{hdrPresent("x-azure-ref"), hdrPresent("x-azure-ref-originshield"), hdrPresent("x-msedge-ref"),
			hdrPresent("x-fd-healthprobe"), hdrPresent("x-fd-int-roxy-purgeid")},
		// x-msedge-ref: Ref A: … Ref B: AMS04EDGE0817 Ref C: …
		pop:   []popRule{popFrom("x-msedge-ref", `Ref B: ([A-Za-z]{3}\d*)EDGE`)},
		cache: []string{"x-cache"}},
	{name: "google",
		detect: []headerRule{hdrContains("via", "1.1 google"), hdrContains("server", "google frontend"), hdrContains("server", "gws"),
			hdrContains("server", "sffe"), hdrContains("server", "esf")},
		cache: []string{"x-cache", "cdn-cache-status"}},
	{name: "bunny",
		detect: []headerRule{hdrContains("server", "bunnycdn"), hdrPresent("cdn-pullzone"), hdrPresent("cdn-requestid")},
		// server: BunnyCDN-DE1-1042
		pop:   []popRule{popFrom("server", `(?i)^bunnycdn-([a-z]+\d*)-`)},
		cache: []string{"cdn-cache"}},
	{name: "cdn77",
		detect: []headerRule{hdrContains("server", "cdn77"), hdrPresent("x-77-pop"), hdrPresent("x-77-cache"), hdrPresent("x-77-nzt")},
		// x-77-pop: frankfurtDE
		pop:   []popRule{popFrom("x-77-pop", `^\s*(\S+)`)},
		cache: []string{"x-77-cache", "x-cache"}},
	{name: "keycdn",
		detect: []headerRule{hdrContains("server", "keycdn"), hdrPresent("x-edge-location")},
		// x-edge-location: defr
		pop:   []popRule{popFrom("x-edge-location", `^\s*(\S+)`)},
		cache: []string{"x-cache"}},
	{name: "sucuri",
		detect: []headerRule{hdrPresent("x-sucuri-id"), hdrPresent("x-sucuri-cache"), hdrContains("server", "sucuri")},
		cache:  []string{"x-sucuri-cache"}},
	{name: "imperva",
		detect: []headerRule{hdrPresent("x-iinfo"), hdrContains("x-cdn", "imperva"), hdrContains("x-cdn", "incapsula")},
		cache:  []string{"x-cache"}},
	{name: "vercel",
		detect: []headerRule{hdrPresent("x-vercel-id"), hdrPresent("x-vercel-cache"), hdrContains("server", "vercel")},
		// x-vercel-id: fra1::iad1::abcde-1700000000000-0123456789ab (edge first)
		pop:   []popRule{popFrom("x-vercel-id", `^([a-z]{3}\d+)::`)},
		cache: []string{"x-vercel-cache"}},
	{name: "netlify",
		detect: []headerRule{hdrPresent("x-nf-request-id"), hdrContains("server", "netlify")},
		cache:  []string{"cache-status"}},
}

// genericCache are the cache headers read when no vendor is recognised: a
// plain Varnish, nginx or RFC 9211 cache still says hit or miss.
var genericCache = []string{"cache-status", "x-cache", "x-cache-status", "x-proxy-cache"}

// IdentifyCDN reads the CDN vendor, POP and cache status from response
// headers. Without a cache-status header, a positive Age means a cache
// served a stored copy: a hit.
func IdentifyCDN(h http.Header) CDNInfo {
	var info CDNInfo
	cache := genericCache
	if v := matchVendor(h); v != nil {
		info.Vendor, info.PoP, cache = v.name, v.popOf(h), v.cache
	}
	info.Cache = cacheOf(h, cache)
	if info.Cache == "" && ageHit(h) {
		info.Cache = "hit"
	}
	return info
}

func matchVendor(h http.Header) *cdnVendor {
	for i := range cdnVendors {
		for _, r := range cdnVendors[i].detect {
			if v, ok := headerValue(h, r.header); ok && strings.Contains(strings.ToLower(v), r.contains) {
				return &cdnVendors[i]
			}
		}
	}
	return nil
}

func (v *cdnVendor) popOf(h http.Header) string {
	for _, r := range v.pop {
		if val, ok := headerValue(h, r.header); ok {
			if m := r.re.FindStringSubmatch(val); m != nil {
				return m[1]
			}
		}
	}
	return ""
}

// headerValue joins every value of a header, as a list header would read.
func headerValue(h http.Header, name string) (string, bool) {
	vs := h.Values(name)
	return strings.Join(vs, ", "), len(vs) > 0
}

func cacheOf(h http.Header, headers []string) string {
	for _, name := range headers {
		if v, ok := headerValue(h, name); ok && strings.TrimSpace(v) != "" {
			return NormalizeCacheStatus(v)
		}
	}
	return ""
}

func ageHit(h http.Header) bool {
	age, err := strconv.Atoi(strings.TrimSpace(h.Get("Age")))
	return err == nil && age > 0
}

// cacheWords maps a vendor's cache word (upper case, TCP_ prefix removed)
// to the normalized status.
var cacheWords = map[string]string{
	"HIT": "hit", "MEM_HIT": "hit", "IMS_HIT": "hit", "REMOTE_HIT": "hit", "NEGATIVE_HIT": "hit",
	"HIT-CLUSTER": "hit", "PRERENDER": "hit", "CLIENT_HIT": "hit",
	"MISS": "miss", "REMOTE_MISS": "miss", "MISS-CLUSTER": "miss",
	"EXPIRED": "expired", "REVALIDATED": "expired", "REFRESHHIT": "expired", "REFRESH_HIT": "expired",
	"REFRESH_MISS": "expired", "EXPIRED_HIT": "expired", "EXPIRED_MISS": "expired", "REFRESH_FAIL_HIT": "stale",
	"STALE": "stale", "UPDATING": "stale", "HIT-STALE": "stale", "STALE_HIT": "stale", "HIT-STALE-PROCESSING": "stale",
	"BYPASS": "bypass", "PASS": "bypass", "CONFIG_NOCACHE": "bypass", "PRIVATE_NOSTORE": "bypass",
	"COOKIE_DENY": "bypass", "NOCACHE": "bypass",
	"DYNAMIC": "dynamic", "UNCACHEABLE": "dynamic",
}

// NormalizeCacheStatus maps a cache-status header value to hit, miss,
// expired, stale, bypass, dynamic or other. A list ("MISS, HIT" from a
// shielded Fastly request, or RFC 9211 Cache-Status) is read by its last
// member: the cache nearest the client.
func NormalizeCacheStatus(v string) string {
	parts := strings.Split(v, ",")
	last := strings.TrimSpace(parts[len(parts)-1])
	if strings.HasPrefix(last, `"`) || strings.Contains(last, ";") {
		return rfc9211Status(last)
	}
	word, _, _ := strings.Cut(strings.ToUpper(last), " ")
	word = strings.TrimPrefix(word, "TCP_")
	if s, ok := cacheWords[word]; ok {
		return s
	}
	return "other"
}

// rfc9211Status reads one Cache-Status member: `"Netlify Edge"; hit`,
// `"Netlify Edge"; fwd=miss`, `ExampleCache; hit; ttl=-5`.
func rfc9211Status(member string) string {
	params := map[string]string{}
	for i, p := range strings.Split(member, ";") {
		if i == 0 {
			continue // the cache's name
		}
		k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
		params[strings.ToLower(k)] = strings.Trim(strings.ToLower(v), `"`)
	}
	if _, hit := params["hit"]; hit {
		if strings.HasPrefix(params["ttl"], "-") {
			return "stale"
		}
		return "hit"
	}
	switch params["fwd"] {
	case "uri-miss", "vary-miss", "miss", "method":
		return "miss"
	case "stale":
		return "expired"
	case "bypass", "request":
		return "bypass"
	}
	return "other"
}

// setCDN fills the CDN fields of an http result from its response headers.
func setCDN(h *result.HTTP, headers http.Header) {
	info := IdentifyCDN(headers)
	h.CDN, h.CDNPoP, h.CDNCache = info.Vendor, info.PoP, info.Cache
}

// DefaultCDNConcurrency bounds a cdn check's simultaneous fetches.
const DefaultCDNConcurrency = 4

// CDN fetches the object through every member and returns their http
// results, members in name order, each naming its member in cdn_member
// (cdn stays what the response headers say).
func CDN(ctx context.Context, c *Check) ([]*result.Result, error) {
	names, err := cdnMembers(c)
	if err != nil {
		return nil, err
	}
	if c.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.Timeout)
		defer cancel()
	}
	limit := c.CDN.Concurrency
	if limit <= 0 {
		limit = DefaultCDNConcurrency
	}
	out := make([][]*result.Result, len(names))
	sem := make(chan struct{}, limit)
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			out[i] = fetchMember(ctx, c, name)
		})
	}
	wg.Wait()
	var all []*result.Result
	for _, rs := range out {
		all = append(all, rs...)
	}
	return all, nil
}

// cdnMembers validates the members and returns their names, sorted.
func cdnMembers(c *Check) ([]string, error) {
	if len(c.CDN.Members) == 0 {
		return nil, fmt.Errorf("cannot run cdn check %q: no members; list them under cdn.members as NAME: URL", c.Name)
	}
	names := make([]string, 0, len(c.CDN.Members))
	for name, target := range c.CDN.Members {
		if _, err := checkdef.ParseHTTPTarget(target); err != nil {
			return nil, fmt.Errorf("cannot run cdn check %q: member %q: %w", c.Name, name, err)
		}
		if _, err := newHTTPCheck(&Check{Name: c.Name, Target: target, HTTP: c.CDN.HTTPOptions}); err != nil {
			return nil, fmt.Errorf("cannot run cdn check %q: member %q: %w", c.Name, name, err)
		}
		names = append(names, name)
	}
	sort.Strings(names)
	return names, nil
}

func fetchMember(ctx context.Context, c *Check, name string) []*result.Result {
	sub := &Check{Name: c.Name, Kind: result.KindHTTP, Target: c.CDN.Members[name], HTTP: c.CDN.HTTPOptions}
	hc, err := newHTTPCheck(sub)
	if err != nil { // validated in cdnMembers
		return nil
	}
	rs := hc.run(ctx)
	for _, r := range rs {
		if r.HTTP == nil {
			r.HTTP = &result.HTTP{}
		}
		r.HTTP.CDNMember = name
	}
	return rs
}
