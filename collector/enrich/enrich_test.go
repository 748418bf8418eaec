package enrich_test

import (
	"net/http"
	"net/netip"
	"testing"

	"github.com/meridian-net/meridian/collector/enrich"
	"github.com/meridian-net/meridian/collector/enrich/enrichtest"
)

func TestClientIP(t *testing.T) {
	trusted, err := enrich.ParsePrefixes([]string{"10.0.0.0/8", "192.0.2.7,2001:db8::/32"})
	if err != nil {
		t.Fatal(err)
	}
	e, err := enrich.Open(enrich.Options{TrustedProxies: trusted})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, peer string
		xff        []string
		want       string
	}{
		{"untrusted peer: XFF ignored", "203.0.113.9:4000", []string{"198.51.100.1"}, "203.0.113.9"},
		{"trusted peer, no XFF", "10.1.2.3:4000", nil, "10.1.2.3"},
		{"trusted peer, one hop", "10.1.2.3:4000", []string{"198.51.100.1"}, "198.51.100.1"},
		{"right-most untrusted wins over a spoofed left", "10.1.2.3:4000", []string{"6.6.6.6, 198.51.100.1, 10.9.9.9"}, "198.51.100.1"},
		{"several headers", "192.0.2.7:1", []string{"6.6.6.6", "198.51.100.1", "10.0.0.1"}, "198.51.100.1"},
		{"all trusted: left-most", "10.1.2.3:4000", []string{"10.0.0.5, 10.0.0.6"}, "10.0.0.5"},
		{"garbage stops the walk", "10.1.2.3:4000", []string{"6.6.6.6, nonsense, 10.0.0.6"}, "10.0.0.6"},
		{"IPv6 peer and hop with port", "[2001:db8::1]:443", []string{"[2001:4860::8]:1234"}, "2001:4860::8"},
		{"mapped IPv4", "[::ffff:10.0.0.1]:80", []string{"198.51.100.1"}, "198.51.100.1"},
	} {
		r := &http.Request{RemoteAddr: tc.peer, Header: http.Header{}}
		for _, h := range tc.xff {
			r.Header.Add("X-Forwarded-For", h)
		}
		if got := e.ClientIP(r); got != netip.MustParseAddr(tc.want) {
			t.Errorf("%s: got %v, want %s", tc.name, got, tc.want)
		}
	}
	if _, err := enrich.ParsePrefixes([]string{"10.0.0.0/33"}); err == nil {
		t.Error("ParsePrefixes(10.0.0.0/33): got no error")
	}
}

func TestLocate(t *testing.T) {
	cities := map[string]enrichtest.City{
		"198.51.100.0/24": {Country: "DE", Region: "BE", City: "Berlin"},
		"2001:db8::/32":   {Country: "JP", Region: "13", City: "Tokyo"},
	}
	asns := map[string]enrichtest.ASN{"198.51.100.0/24": {Number: 64500, Org: "Example Net"}}
	for name, geo := range map[string]string{"geolite2": enrichtest.CityDB(t, cities), "flat": enrichtest.FlatCityDB(t, cities)} {
		e, err := enrich.Open(enrich.Options{GeoIPPath: geo, ASNPath: enrichtest.ASNDB(t, asns)})
		if err != nil {
			t.Fatal(err)
		}
		defer e.Close()
		got := e.Locate(netip.MustParseAddr("198.51.100.7"))
		if want := (enrich.Location{Country: "DE", Region: "BE", City: "Berlin", ASN: 64500, ASOrg: "Example Net"}); got != want {
			t.Errorf("%s: Locate(198.51.100.7): got %+v, want %+v", name, got, want)
		}
		if got := e.Locate(netip.MustParseAddr("2001:db8::5")); got.Country != "JP" || got.City != "Tokyo" || got.ASN != 0 {
			t.Errorf("%s: Locate(2001:db8::5): got %+v", name, got)
		}
		if got := e.Locate(netip.MustParseAddr("8.8.8.8")); got != (enrich.Location{}) {
			t.Errorf("%s: Locate(8.8.8.8): got %+v, want nothing", name, got)
		}
	}
	var none *enrich.Enricher
	if got := none.Locate(netip.MustParseAddr("198.51.100.7")); got != (enrich.Location{}) {
		t.Errorf("nil enricher: got %+v", got)
	}
	if _, err := enrich.Open(enrich.Options{GeoIPPath: "/nonexistent.mmdb"}); err == nil {
		t.Error("Open(missing file): got no error")
	}
}

func TestParseUA(t *testing.T) {
	for _, tc := range []struct {
		ua   string
		want enrich.UA
	}{
		{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
			enrich.UA{"Chrome", "126", "Windows", "desktop", false}},
		{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36 Edg/126.0.2592.87",
			enrich.UA{"Edge", "126", "Windows", "desktop", false}},
		{"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
			enrich.UA{"Safari", "17", "macOS", "desktop", false}},
		{"Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
			enrich.UA{"Safari", "17", "iOS", "mobile", false}},
		{"Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/126.0.6478.54 Mobile/15E148 Safari/604.1",
			enrich.UA{"Chrome", "126", "iOS", "tablet", false}},
		{"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.6478.71 Mobile Safari/537.36",
			enrich.UA{"Chrome", "126", "Android", "mobile", false}},
		{"Mozilla/5.0 (Linux; Android 13; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/25.0 Chrome/121.0.0.0 Safari/537.36",
			enrich.UA{"Samsung Browser", "25", "Android", "mobile", false}},
		{"Mozilla/5.0 (X11; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0",
			enrich.UA{"Firefox", "127", "Linux", "desktop", false}},
		{"Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/125.0.0.0 Safari/537.36 OPR/111.0.0.0",
			enrich.UA{"Opera", "111", "ChromeOS", "desktop", false}},
		{"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/156.0.0.0 Safari/537.36",
			enrich.UA{"Headless Chrome", "156", "Linux", "bot", true}},
		{"Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
			enrich.UA{"Googlebot", "2", "", "bot", true}},
		{"curl/8.5.0", enrich.UA{"curl", "8", "", "bot", true}},
		{"", enrich.UA{"", "", "", "bot", true}},
	} {
		if got := enrich.ParseUA(tc.ua); got != tc.want {
			t.Errorf("ParseUA(%q):\n got %+v\nwant %+v", tc.ua, got, tc.want)
		}
	}
}
