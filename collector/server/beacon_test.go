package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/meridian-net/meridian/collector/enrich"
	"github.com/meridian-net/meridian/collector/enrich/enrichtest"
	"github.com/meridian-net/meridian/collector/server"
	"github.com/meridian-net/meridian/collector/store"
	"github.com/meridian-net/meridian/collector/store/chtest"
)

const (
	shopOrigin = "https://shop.example"
	clientIP   = "198.51.100.23"
)

// docBeacon returns the full example beacon of rum-js/BEACON.md with the
// given site key: the decoder must take what the documentation shows.
func docBeacon(t testing.TB, key string) []byte {
	t.Helper()
	doc, err := os.ReadFile("../../rum-js/BEACON.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := bytes.Cut(doc, []byte("```json\n"))
	example, _, ok2 := bytes.Cut(rest, []byte("\n```"))
	if !ok || !ok2 {
		t.Fatal("rum-js/BEACON.md has no ```json example")
	}
	return bytes.ReplaceAll(example, []byte("SITEKEY"), []byte(key))
}

func minimalBeacon(key, pv string, webdriver bool) []byte {
	return []byte(fmt.Sprintf(`{"v":1,"site":%q,"pv":%q,"url":"https://shop.example/","sample":1,"webdriver":%v}`, key, pv, webdriver))
}

type beaconEnv struct {
	conn driver.Conn
	srv  *httptest.Server
	key  string
}

func newBeaconEnv(t *testing.T) *beaconEnv {
	t.Helper()
	_, conn := chtest.New(t)
	ctx := context.Background()
	site, err := store.NewSite("shop", []string{shopOrigin}, 1, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	key, err := store.AddSite(ctx, conn, &site)
	if err != nil {
		t.Fatal(err)
	}
	trusted, _ := enrich.ParsePrefixes([]string{"127.0.0.0/8", "::1"})
	en, err := enrich.Open(enrich.Options{
		GeoIPPath:      enrichtest.CityDB(t, map[string]enrichtest.City{"198.51.100.0/24": {Country: "DE", Region: "BE", City: "Berlin"}}),
		ASNPath:        enrichtest.ASNDB(t, map[string]enrichtest.ASN{"198.51.100.0/24": {Number: 64500, Org: "Example Net"}}),
		TrustedProxies: trusted,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { en.Close() })
	w, err := store.NewBeaconWriter(conn, store.WriterOptions{MaxDelay: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Close)
	srv := httptest.NewServer(server.New(server.Config{Sites: store.NewSiteCache(conn), Beacons: w, Enricher: en}))
	t.Cleanup(srv.Close)
	return &beaconEnv{conn: conn, srv: srv, key: key}
}

type req struct {
	method, origin, ctype, encoding, ua string
	body                                []byte
}

func (e *beaconEnv) do(t *testing.T, r req) (*http.Response, string) {
	t.Helper()
	if r.method == "" {
		r.method = "POST"
	}
	hr, _ := http.NewRequest(r.method, e.srv.URL+"/v1/beacon", bytes.NewReader(r.body))
	for k, v := range map[string]string{"Origin": r.origin, "Content-Type": r.ctype, "Content-Encoding": r.encoding, "User-Agent": r.ua} {
		if v != "" {
			hr.Header.Set(k, v)
		}
	}
	hr.Header.Set("X-Forwarded-For", "6.6.6.6, "+clientIP)
	resp, err := http.DefaultClient.Do(hr)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

const chromeUA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36"

func TestBeaconStoredEnrichedWithoutIP(t *testing.T) {
	e := newBeaconEnv(t)
	ctx := context.Background()
	resp, body := e.do(t, req{origin: shopOrigin, ctype: "text/plain;charset=UTF-8", ua: chromeUA, body: docBeacon(t, e.key)})
	if resp.StatusCode != 204 || resp.Header.Get("Access-Control-Allow-Origin") != shopOrigin || !strings.Contains(resp.Header.Get("Vary"), "Origin") {
		t.Fatalf("got %d %q ACAO %q Vary %q; want 204 with CORS for %s", resp.StatusCode, body,
			resp.Header.Get("Access-Control-Allow-Origin"), resp.Header.Get("Vary"), shopOrigin)
	}
	bot := minimalBeacon(e.key, "00000000-0000-4000-8000-000000000001", true)
	if resp, body := e.do(t, req{origin: shopOrigin, ctype: "application/json", ua: chromeUA, body: bot}); resp.StatusCode != 204 {
		t.Fatalf("webdriver beacon: got %d %s, want 204 (stored as a bot)", resp.StatusCode, body)
	}

	var (
		country, region, city, asOrg, browser, version, osName, device, url string
		asn                                                                 uint32
		isBot                                                               uint8
		lcp, cls, dns, load                                                 *float64
	)
	err := e.conn.QueryRow(ctx, `SELECT country, region, city, as_org, browser, browser_version, os, device, url, asn, is_bot, lcp_ms, cls, dns_ms, load_ms
		FROM rum_pageviews FINAL WHERE pv = '2868f94a-3818-45f6-bd22-b331b62b2949'`).
		Scan(&country, &region, &city, &asOrg, &browser, &version, &osName, &device, &url, &asn, &isBot, &lcp, &cls, &dns, &load)
	if err != nil {
		t.Fatal(err)
	}
	if country != "DE" || region != "BE" || city != "Berlin" || asn != 64500 || asOrg != "Example Net" ||
		browser != "Chrome" || version != "126" || osName != "Windows" || device != "desktop" || isBot != 0 ||
		url != "https://shop.example/p" || *lcp != 200 || *cls != 0.0831 || *dns != 10.2 || *load != 510.4 {
		t.Errorf("page view: got %q %q %q AS%d %q %q %q %q %q %q bot=%d lcp=%v cls=%v dns=%v load=%v", country, region, city, asn, asOrg,
			browser, version, osName, device, url, isBot, *lcp, *cls, *dns, *load)
	}
	var botFlag uint8
	var botDevice string
	e.conn.QueryRow(ctx, "SELECT is_bot, device FROM rum_pageviews FINAL WHERE pv = '00000000-0000-4000-8000-000000000001'").Scan(&botFlag, &botDevice)
	if botFlag != 1 || botDevice != "bot" {
		t.Errorf("webdriver beacon: got is_bot %d device %q, want 1 bot", botFlag, botDevice)
	}
	var kinds []string
	rows, err := e.conn.Query(ctx, "SELECT concat(kind, ':', cdn, ':', host, ':', country, ':', toString(asn)) FROM rum_cdn FINAL ORDER BY kind, cdn, host")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var s string
		rows.Scan(&s)
		kinds = append(kinds, s)
	}
	rows.Close()
	want := []string{
		"host::third.example:DE:64500", "host:cdn1:img.cdn1.example:DE:64500",
		"probe_cold:cdn1:p.cdn1.example:DE:64500", "probe_cold:cdn2:p.cdn2.example:DE:64500",
		"probe_warm:cdn1:p.cdn1.example:DE:64500",
	}
	if !reflect.DeepEqual(kinds, want) {
		t.Errorf("rum_cdn rows:\n got %q\nwant %q", kinds, want)
	}

	for _, table := range []string{"rum_pageviews", "rum_cdn"} {
		if n := rowsContaining(t, e.conn, table, "198.51.100"); n != 0 {
			t.Errorf("%s: %d rows hold the client address %s in some column; it must never be stored", table, n, clientIP)
		}
		if n := rowsContaining(t, e.conn, table, "6.6.6.6"); n != 0 {
			t.Errorf("%s: %d rows hold the spoofed X-Forwarded-For address", table, n)
		}
	}
}

// rowsContaining counts the rows of table in which any column, printed,
// contains s.
func rowsContaining(t *testing.T, conn driver.Conn, table, s string) int {
	t.Helper()
	rows, err := conn.Query(context.Background(), "SELECT * FROM "+table)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	types := rows.ColumnTypes()
	n, seen := 0, 0
	for rows.Next() {
		vals := make([]any, len(types))
		for i, ct := range types {
			vals[i] = reflect.New(ct.ScanType()).Interface()
		}
		if err := rows.Scan(vals...); err != nil {
			t.Fatal(err)
		}
		seen++
		var dump strings.Builder
		for _, v := range vals {
			fmt.Fprintf(&dump, "%v|", reflect.Indirect(reflect.ValueOf(v)).Interface())
		}
		if strings.Contains(dump.String(), s) {
			n++
		}
		if seen == 1 && !strings.Contains(dump.String(), "shop.example") && table == "rum_pageviews" {
			t.Errorf("%s: row dump %q lacks the URL; the search does not see the columns", table, dump.String())
		}
	}
	if seen == 0 {
		t.Errorf("%s: no rows to search", table)
	}
	return n
}

func TestBeaconRejections(t *testing.T) {
	e := newBeaconEnv(t)
	good := minimalBeacon(e.key, "00000000-0000-4000-8000-000000000002", false)
	for _, tc := range []struct {
		name string
		r    req
		code int
		want string
	}{
		{"unregistered origin", req{origin: "https://evil.example", ctype: "text/plain", body: good}, 403, "not registered"},
		{"no origin", req{ctype: "text/plain", body: good}, 403, "not registered"},
		{"unknown site", req{origin: shopOrigin, ctype: "text/plain", body: minimalBeacon("mrs_unknown", "00000000-0000-4000-8000-000000000003", false)}, 400, "unknown site key"},
		{"oversized", req{origin: shopOrigin, ctype: "text/plain", body: append(bytes.Repeat([]byte(" "), 65<<10), good...)}, 413, "larger than"},
		{"wrong content type", req{origin: shopOrigin, ctype: "application/x-www-form-urlencoded", body: good}, 415, "unsupported Content-Type"},
		{"no content type", req{origin: shopOrigin, body: good}, 415, "unsupported Content-Type"},
		{"gzip", req{origin: shopOrigin, ctype: "text/plain", encoding: "gzip", body: gz(good)}, 415, "unsupported Content-Encoding"},
		{"unknown field", req{origin: shopOrigin, ctype: "text/plain", body: bytes.Replace(good, []byte(`"v":1`), []byte(`"v":1,"surprise":2`), 1)}, 400, `unknown field \"surprise\"`},
		{"unknown nested field", req{origin: shopOrigin, ctype: "text/plain", body: bytes.Replace(docBeacon(t, e.key), []byte(`"fcp_ms"`), []byte(`"lcp2":1,"fcp_ms"`), 1)}, 400, `unknown field \"vitals.lcp2\"`},
		{"wrong type", req{origin: shopOrigin, ctype: "text/plain", body: bytes.Replace(good, []byte(`"sample":1`), []byte(`"sample":"1"`), 1)}, 400, "field sample"},
		{"negative timing", req{origin: shopOrigin, ctype: "text/plain", body: bytes.Replace(docBeacon(t, e.key), []byte(`"lcp_ms": 200`), []byte(`"lcp_ms": -1`), 1)}, 400, "field vitals.lcp_ms"},
		{"not JSON", req{origin: shopOrigin, ctype: "text/plain", body: []byte("hello")}, 400, "invalid JSON"},
		{"GET", req{method: "GET", origin: shopOrigin}, 405, "method not allowed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, msg := e.do(t, tc.r)
			if resp.StatusCode != tc.code || !strings.Contains(msg, tc.want) {
				t.Errorf("got %d %s, want %d containing %q", resp.StatusCode, msg, tc.code, tc.want)
			}
			if acao := resp.Header.Get("Access-Control-Allow-Origin"); acao != "" && tc.code == 403 {
				t.Errorf("got Access-Control-Allow-Origin %q on a refused origin", acao)
			}
			var body map[string]string
			if err := json.Unmarshal([]byte(msg), &body); err != nil || body["reason"] == "" {
				t.Errorf("got body %q, want JSON with a reason", msg)
			}
		})
	}
	var n uint64
	e.conn.QueryRow(context.Background(), "SELECT count() FROM rum_pageviews").Scan(&n)
	if n != 0 {
		t.Errorf("got %d page views stored from rejected beacons, want 0", n)
	}
}

func TestBeaconPreflight(t *testing.T) {
	e := newBeaconEnv(t)
	resp, _ := e.do(t, req{method: "OPTIONS", origin: "https://SHOP.example:443"})
	if resp.StatusCode != 204 || resp.Header.Get("Access-Control-Allow-Origin") != "https://SHOP.example:443" ||
		!strings.Contains(resp.Header.Get("Access-Control-Allow-Headers"), "Content-Type") {
		t.Errorf("registered origin: got %d %v, want 204 with CORS headers", resp.StatusCode, resp.Header)
	}
	resp, _ = e.do(t, req{method: "OPTIONS", origin: "https://evil.example"})
	if resp.StatusCode != 403 || resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("unregistered origin: got %d %v, want 403 without CORS headers", resp.StatusCode, resp.Header)
	}
}

func TestBeaconDisabledWithoutSites(t *testing.T) {
	srv := httptest.NewServer(server.New(server.Config{}))
	defer srv.Close()
	resp, err := http.Post(srv.URL+"/v1/beacon", "text/plain", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Errorf("got %d, want 404 when beacons are not configured", resp.StatusCode)
	}
}

func TestDecodeBeacon(t *testing.T) {
	b, err := server.DecodeBeacon(docBeacon(t, "mrs_x"))
	if err != nil {
		t.Fatalf("the BEACON.md example: %v", err)
	}
	if b.Vitals == nil || *b.Vitals.INPMs != 160 || len(b.Hosts) != 2 || len(b.CDNProbes) != 2 || !b.CDNProbes[1].Cold.Error || b.Nav.DeliveryType == nil {
		t.Errorf("the BEACON.md example decoded as %+v", b)
	}
	good := string(minimalBeacon("mrs_x", "00000000-0000-4000-8000-000000000000", false))
	edit := func(old, new string) string { return strings.Replace(good, old, new, 1) }
	for _, tc := range []struct{ body, want string }{
		{edit(`"v":1`, `"v":2`), "field v: want 1"},
		{edit(`"pv":"00000000`, `"pv":"X0000000`), "field pv"},
		{edit(`"sample":1`, `"sample":0`), "field sample"},
		{edit(`"url":"https://shop.example/"`, `"url":""`), "field url: missing"},
		{edit(`"site":"mrs_x"`, `"site":"a b"`), "field site"},
		{good + "{}", "trailing data"},
		{"", "empty or truncated"},
		{"[]", "want a JSON object"},
		{"null", "field v"},
		{edit(`"webdriver":false`, `"webdriver":false,"hosts":[{"host":"a","count":0,"median_ms":1,"bytes":0,"tao":true}]`), "field hosts[0].count"},
		{edit(`"webdriver":false`, `"webdriver":false,"hosts":[{"host":"a","count":1,"bytes":0,"tao":true}]`), "field hosts[0].median_ms: missing"},
		{edit(`"webdriver":false`, `"webdriver":false,"hosts":[{"host":"a","count":1.5,"median_ms":1,"bytes":0,"tao":true}]`), "field hosts[0].count: want an integer"},
		{edit(`"webdriver":false`, `"webdriver":false,"cdn_probes":[{"cdn":"a","url":"https://a/"}]`), "field cdn_probes[0].cold: missing"},
		{edit(`"webdriver":false`, `"webdriver":false,"cdn_probes":[{"cdn":"a","url":"https://a/","cold":{"error":true,"duration_ms":3}}]`), "both error and timings"},
		{edit(`"webdriver":false`, `"webdriver":false,"cdn_probes":[{"cdn":"a","url":"https://a/","cold":{"dns_ms":3}}]`), "cold.duration_ms: missing"},
		{edit(`"webdriver":false`, `"webdriver":false,"vitals":{"cls":-0.1}`), "field vitals.cls"},
		{edit(`"webdriver":false`, `"webdriver":false,"nav":{"load_ms":1e300}`), "field nav.load_ms"},
		{edit(`"webdriver":false`, `"webdriver":false,"server_timing":[{"dur":1}]`), "server_timing[0].name: missing"},
		{edit(`"webdriver":false`, `"webdriver":false,"hosts":[`+strings.Repeat(`{"host":"a","count":1,"median_ms":1,"bytes":0,"tao":true},`, 20)+`{"host":"a","count":1,"median_ms":1,"bytes":0,"tao":true}]`), "at most 20 hosts"},
	} {
		if _, err := server.DecodeBeacon([]byte(tc.body)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("DecodeBeacon(%.80s…): got %v, want error containing %q", tc.body, err, tc.want)
		}
	}
}
