package probe

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/meridian-net/meridian/internal/result"
)

// headers builds an http.Header from "Name: value" lines.
func headers(lines ...string) http.Header {
	h := http.Header{}
	for _, l := range lines {
		k, v, _ := strings.Cut(l, ":")
		h.Add(k, strings.TrimSpace(v))
	}
	return h
}

// Header sets as the vendors send them (taken from real responses, ids
// changed).
func TestIdentifyCDN(t *testing.T) {
	for _, tc := range []struct {
		name string
		h    http.Header
		want CDNInfo
	}{
		{"cloudflare", headers("Server: cloudflare", "CF-RAY: 8a1b2c3d4e5f6789-AMS", "CF-Cache-Status: HIT", "Age: 1234"),
			CDNInfo{"cloudflare", "AMS", "hit"}},
		{"cloudflare dynamic", headers("Server: cloudflare", "CF-RAY: 8a1b2c3d4e5f6789-SIN", "CF-Cache-Status: DYNAMIC"),
			CDNInfo{"cloudflare", "SIN", "dynamic"}},
		{"cloudflare revalidated", headers("CF-RAY: 8a1b2c3d4e5f6789-FRA", "CF-Cache-Status: REVALIDATED"),
			CDNInfo{"cloudflare", "FRA", "expired"}},
		{"cloudfront hit", headers("Via: 1.1 0123456789abcdef.cloudfront.net (CloudFront)", "X-Cache: Hit from cloudfront",
			"X-Amz-Cf-Pop: FRA56-C1", "X-Amz-Cf-Id: abcDEF123=="), CDNInfo{"cloudfront", "FRA56", "hit"}},
		{"cloudfront refresh", headers("X-Cache: RefreshHit from cloudfront", "X-Amz-Cf-Pop: IAD89-P3"),
			CDNInfo{"cloudfront", "IAD89", "expired"}},
		{"cloudfront error", headers("X-Cache: Error from cloudfront", "X-Amz-Cf-Pop: NRT57-P2"),
			CDNInfo{"cloudfront", "NRT57", "other"}},
		{"fastly", headers("X-Served-By: cache-fra-eddf8230044-FRA", "X-Cache: HIT", "X-Cache-Hits: 3",
			"X-Timer: S1700000000.123,VS0,VE0", "Via: 1.1 varnish"), CDNInfo{"fastly", "FRA", "hit"}},
		{"fastly shielded", headers("X-Served-By: cache-iad-kiad7000025-IAD, cache-ams21080-AMS", "X-Cache: MISS, HIT",
			"X-Cache-Hits: 0, 1"), CDNInfo{"fastly", "AMS", "hit"}},
		{"fastly pass", headers("X-Served-By: cache-lhr7356-LHR", "X-Cache: MISS", "Fastly-Debug-Digest: abc"),
			CDNInfo{"fastly", "LHR", "miss"}},
		{"akamai", headers("Server: AkamaiGHost", "X-Cache: TCP_MEM_HIT from a23-45-67-89.deploy.akamaitechnologies.com (AkamaiGHost/11.0.0-1) (-)"),
			CDNInfo{"akamai", "", "hit"}},
		{"akamai cache status", headers("Akamai-Cache-Status: Miss from child, Hit from parent", "Akamai-GRN: 0.1a2b3c4d.1700000000.abc"),
			CDNInfo{"akamai", "", "hit"}},
		{"akamai refresh", headers("X-Akamai-Request-ID: 1a2b3c", "X-Cache: TCP_REFRESH_MISS from a1.deploy.akamaitechnologies.com"),
			CDNInfo{"akamai", "", "expired"}},
		{"google", headers("Via: 1.1 google", "Age: 120", "Server: Google Frontend"), CDNInfo{"google", "", "hit"}},
		{"google miss", headers("Via: 1.1 google", "Server: sffe"), CDNInfo{"google", "", ""}},
		{"azure front door", headers("X-Azure-Ref: 20261125T075500Z-abcdef0123456789abcdef0123", "X-Cache: TCP_HIT",
			"X-Fd-Int-Roxy-Purgeid: 0"), CDNInfo{"azure", "", "hit"}},
		{"azure uncacheable", headers("X-Azure-Ref: 0abc", "X-Cache: CONFIG_NOCACHE"), CDNInfo{"azure", "", "bypass"}},
		{"azure edge ref", headers("X-MSEdge-Ref: Ref A: 0123ABCD Ref B: AMS04EDGE0817 Ref C: 2026-11-25T07:55:00Z", "X-Cache: TCP_REMOTE_HIT"),
			CDNInfo{"azure", "AMS04", "hit"}},
		{"bunny", headers("Server: BunnyCDN-DE1-1042", "CDN-PullZone: 123456", "CDN-Cache: HIT", "CDN-RequestId: abc"),
			CDNInfo{"bunny", "DE1", "hit"}},
		{"bunny expired", headers("Server: BunnyCDN-NY-912", "CDN-Cache: EXPIRED"), CDNInfo{"bunny", "NY", "expired"}},
		{"cdn77", headers("Server: CDN77-Turbo", "X-77-POP: frankfurtDE", "X-77-Cache: MISS", "X-77-NZT: AbCd"),
			CDNInfo{"cdn77", "frankfurtDE", "miss"}},
		{"keycdn", headers("Server: keycdn-engine", "X-Edge-Location: defr", "X-Cache: HIT"), CDNInfo{"keycdn", "defr", "hit"}},
		{"vercel", headers("Server: Vercel", "X-Vercel-Id: fra1::iad1::abcde-1700000000000-0123456789ab", "X-Vercel-Cache: STALE"),
			CDNInfo{"vercel", "fra1", "stale"}},
		{"vercel prerender", headers("X-Vercel-Id: cdg1::xyz-1", "X-Vercel-Cache: PRERENDER"), CDNInfo{"vercel", "cdg1", "hit"}},
		{"netlify", headers("Server: Netlify", "X-Nf-Request-Id: 01ABC", `Cache-Status: "Netlify Edge"; fwd=miss`),
			CDNInfo{"netlify", "", "miss"}},
		{"netlify hit", headers("Server: Netlify", `Cache-Status: "Netlify Durable"; fwd=uri-miss, "Netlify Edge"; hit`),
			CDNInfo{"netlify", "", "hit"}},
		{"sucuri", headers("X-Sucuri-ID: 17001", "X-Sucuri-Cache: HIT", "Server: Sucuri/Cloudproxy"), CDNInfo{"sucuri", "", "hit"}},
		{"imperva", headers("X-CDN: Imperva", "X-Iinfo: 1-2345-0 0CNN RT(1700000000 0) q(0 -1 -1 0) r(0 -1)"), CDNInfo{"imperva", "", ""}},
		// Cloudflare in front of Vercel: the outer CDN wins.
		{"cloudflare fronting vercel", headers("Server: cloudflare", "CF-RAY: 8a1b-LHR", "CF-Cache-Status: MISS",
			"X-Vercel-Id: lhr1::abc", "X-Vercel-Cache: HIT"), CDNInfo{"cloudflare", "LHR", "miss"}},
		{"plain varnish", headers("Via: 1.1 varnish (Varnish/7.4)", "X-Cache: HIT"), CDNInfo{"", "", "hit"}},
		{"rfc 9211 proxy", headers(`Cache-Status: ExampleCache; hit; ttl=-30`), CDNInfo{"", "", "stale"}},
		{"age only", headers("Age: 5"), CDNInfo{"", "", "hit"}},
		{"age zero", headers("Age: 0", "Server: nginx"), CDNInfo{}},
		{"nothing", headers("Server: nginx", "Content-Type: text/html"), CDNInfo{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := IdentifyCDN(tc.h); got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestNormalizeCacheStatus(t *testing.T) {
	for in, want := range map[string]string{
		"HIT": "hit", "hit": "hit", "Hit from cloudfront": "hit", "TCP_IMS_HIT from x": "hit",
		"MISS": "miss", "Miss from cloudfront": "miss", "HIT, MISS": "miss", "MISS, HIT": "hit",
		"EXPIRED": "expired", "TCP_EXPIRED_HIT": "expired", "RefreshHit from cloudfront": "expired",
		"STALE": "stale", "UPDATING": "stale", "HIT-STALE": "stale",
		"BYPASS": "bypass", "PASS": "bypass", "PRIVATE_NOSTORE": "bypass",
		"DYNAMIC": "dynamic", "UNCACHEABLE": "dynamic",
		"NONE": "other", "LimitExceeded from cloudfront": "other",
		`"Netlify Edge"; fwd=stale`: "expired", `Cache; fwd=bypass`: "bypass", `Cache; fwd=vary-miss; stored`: "miss",
	} {
		if got := NormalizeCacheStatus(in); got != want {
			t.Errorf("NormalizeCacheStatus(%q): got %q, want %q", in, got, want)
		}
	}
}

func TestCDNTableIsWellFormed(t *testing.T) {
	seen := map[string]bool{}
	for _, v := range cdnVendors {
		if v.name == "" || seen[v.name] || len(v.detect) == 0 || len(v.cache) == 0 {
			t.Errorf("vendor %+v: want a unique name, detection rules and cache headers", v.name)
		}
		seen[v.name] = true
		for _, r := range v.detect {
			if r.contains != strings.ToLower(r.contains) || r.header != strings.ToLower(r.header) {
				t.Errorf("vendor %s: rule %+v must be lower case (values are compared lower-cased)", v.name, r)
			}
		}
		for _, p := range v.pop {
			if p.re.NumSubexp() != 1 {
				t.Errorf("vendor %s: pop rule %s needs exactly one group", v.name, p.re)
			}
		}
	}
}

func TestCDNCheck(t *testing.T) {
	edge := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Served-By", "cache-fra-eddf8230044-FRA")
		w.Header().Set("X-Cache", "MISS")
		fmt.Fprint(w, "object")
	}))
	defer edge.Close()
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "object")
	}))
	defer origin.Close()
	broken := closedURL(t)
	c := &Check{Name: "obj", Kind: KindCDN, Timeout: 5 * time.Second, CDN: CDNOptions{
		Members:     map[string]string{"origin": origin.URL + "/obj.bin", "fastly": edge.URL + "/obj.bin", "zzz": broken},
		HTTPOptions: HTTPOptions{BodyContains: "object", CacheBust: true},
	}}
	rs, err := Run(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 3 {
		t.Fatalf("got %d results, want one per member (3)", len(rs))
	}
	for i, want := range []struct{ target, member, cdn, pop, class string }{
		{edge.URL + "/obj.bin", "fastly", "fastly", "FRA", ""},
		{origin.URL + "/obj.bin", "origin", "", "", ""},
		{broken, "zzz", "", "", result.ErrConnectRefused},
	} {
		res := rs[i]
		if err := res.Validate(); err != nil {
			t.Errorf("result %d does not validate: %v", i, err)
		}
		wantHTTPClass(t, res, want.class)
		if res.Kind != result.KindHTTP || res.Check != "obj" || res.Target != want.target ||
			res.HTTP.CDNMember != want.member || res.HTTP.CDN != want.cdn || res.HTTP.CDNPoP != want.pop {
			t.Errorf("result %d: got kind %s check %s target %s member %q cdn %q pop %q, want http obj %s %q %q %q",
				i, res.Kind, res.Check, res.Target, res.HTTP.CDNMember, res.HTTP.CDN, res.HTTP.CDNPoP, want.target, want.member, want.cdn, want.pop)
		}
		if !strings.Contains(res.HTTP.URL, cacheBustParam+"=") {
			t.Errorf("result %d: got url %q, want the cache buster applied", i, res.HTTP.URL)
		}
	}
}

func closedURL(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL + "/obj.bin"
	srv.Close()
	return url
}

func TestCDNCheckBadConfig(t *testing.T) {
	for name, o := range map[string]CDNOptions{
		"no members": {},
		"bad url":    {Members: map[string]string{"a": "cf.example/obj"}},
		"bad family": {Members: map[string]string{"a": "https://cf.example/obj"}, HTTPOptions: HTTPOptions{DialOptions: DialOptions{Family: "x"}}},
	} {
		if _, err := CDN(context.Background(), &Check{Name: "c", Kind: KindCDN, CDN: o}); err == nil {
			t.Errorf("%s: got no error, want one", name)
		}
	}
}

func TestRegistryHasICMPAndCDN(t *testing.T) {
	for _, k := range []string{result.KindICMP, KindCDN} {
		if Probes[k] == nil {
			t.Errorf("no probe registered for %q", k)
		}
	}
}
