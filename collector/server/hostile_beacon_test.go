package server_test

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/uuid"
)

const beaconRoute = "/v1/beacon"

// beaconBody is a minimal valid beacon for e's site, edited by edit.
func (e *hostileEnv) beaconBody(t *testing.T, edit func(m map[string]any)) []byte {
	t.Helper()
	m := map[string]any{"v": 1, "site": e.siteKey, "pv": uuid.NewString(), "url": "https://shop.example/", "sample": 1, "webdriver": false}
	if edit != nil {
		edit(m)
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// beacon posts body as rum.js does, from the registered origin.
func beacon(body []byte, hdr ...string) hreq {
	h := headers("Content-Type", "text/plain;charset=UTF-8", "Origin", shopOrigin)
	for k, v := range headers(hdr...) {
		h[k] = v
	}
	return post("/v1/beacon", h, body)
}

func beaconCases(t *testing.T, e *hostileEnv) []hostileCase {
	return slices.Concat(beaconMalformed(t, e), beaconSize(t, e), beaconStrings(t, e), beaconOrigins(t, e), beaconAuth(t, e))
}

func beaconMalformed(t *testing.T, e *hostileEnv) []hostileCase {
	good := e.beaconBody(t, nil)
	bad := func(attack, name string, body []byte) hostileCase {
		return hc(beaconRoute, attack, name, 400, beacon(body)).then(errReason("bad_beacon"))
	}
	return []hostileCase{
		bad(atkMalformed, "not JSON", []byte("hello")),
		bad(atkMalformed, "a JSON array", []byte("[]")),
		bad(atkMalformed, "null", []byte("null")),
		bad(atkMalformed, "truncated", good[:len(good)/2]),
		bad(atkMalformed, "empty body", nil),
		bad(atkMalformed, "trailing data", append(slices.Clone(good), "{}"...)),
		bad(atkMalformed, "raw NUL inside a string", swap(t, good, `"url":"https`, "\"url\":\"\x00https")),
		bad(atkMalformed, "unknown key", swap(t, good, `"v":1`, `"v":1,"surprise":1`)),
		bad(atkMalformed, "wrong type", swap(t, good, `"sample":1`, `"sample":"1"`)),
		bad(atkMalformed, "byte order mark", append([]byte("\xef\xbb\xbf"), good...)),
		hc(beaconRoute, atkMalformed, "HTML content type", 415, beacon(good, "Content-Type", "text/html")),
		bad(atkDupKeys, "url twice", swap(t, good, `"url":"https`, `"url":"https://evil.example/","url":"https`)),
		bad(atkDupKeys, "site twice", swap(t, good, `"site":"`, `"site":"mrs_fake","site":"`)),
		bad(atkDupKeys, "url and URL", swap(t, good, `"url":"https`, `"URL":"https://evil.example/","url":"https`)),
		bad(atkDupKeys, "hosts[0].host twice", swap(t, good, `"v":1`, `"v":1,"hosts":[{"host":"a","host":"b","count":1,"median_ms":1,"bytes":0,"tao":true}]`)),
		bad(atkUTF8, "raw invalid byte in url", swap(t, good, `"url":"https`, "\"url\":\"\xffhttps")),
		bad(atkUTF8, "an escaped lone surrogate", swap(t, good, `"url":"https`, `"url":"\ud800https`)),
		bad(atkUTF8, "a surrogate encoded in UTF-8", swap(t, good, `"url":"https`, "\"url\":\"\xed\xa0\x80https")),
		bad(atkUTF8, "invalid UTF-8 in a key", swap(t, good, `"url"`, "\"u\xffrl\"")),
	}
}

func beaconSize(t *testing.T, e *hostileEnv) []hostileCase {
	good := e.beaconBody(t, nil)
	deep := func(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }
	hosts := make([]map[string]any, 21)
	for i := range hosts {
		hosts[i] = map[string]any{"host": "a", "count": 1, "median_ms": 1, "bytes": 0, "tao": true}
	}
	return []hostileCase{
		hc(beaconRoute, atkOversized, "65 KiB", 413, beacon(append(good, strings.Repeat(" ", 65<<10)...))).then(errReason("too_large")),
		hc(beaconRoute, atkOversized, "a 4097-byte url", 400, beacon(e.beaconBody(t, func(m map[string]any) { m["url"] = strings.Repeat("u", 4097) }))),
		hc(beaconRoute, atkOversized, "21 hosts", 400, beacon(e.beaconBody(t, func(m map[string]any) { m["hosts"] = hosts }))),
		hc(beaconRoute, atkOversized, "a 2 MiB URL", 431, longURL("POST", "/v1/beacon")),
		hc(beaconRoute, atkNested, "server_timing nested 20 000 deep", 400, beacon(swap(t, good, `"v":1`, `"v":1,"server_timing":`+deep(20000)))),
		hc(beaconRoute, atkNested, "an unknown key holding 30 000 nested arrays", 400, beacon(swap(t, good, `"v":1`, `"v":1,"x":`+deep(30000)))),
		hc(beaconRoute, atkNested, "nav as objects nested 5000 deep", 400, beacon(swap(t, good, `"v":1`, `"v":1,"nav":`+strings.Repeat(`{"type":`, 5000)+`""`+strings.Repeat("}", 5000)))),
		hc(beaconRoute, atkGzipBomb, "gzip members inflating to 60 MiB", 415, beacon(gzipBomb(60<<10), "Content-Encoding", "gzip")).then(errReason("content_encoding")),
		hc(beaconRoute, atkGzipBomb, "the same bomb without Content-Encoding", 400, beacon(gzipBomb(60<<10))),
		hc(beaconRoute, atkGzipBomb, "deflate", 415, beacon(good, "Content-Encoding", "deflate")),
		hc(beaconRoute, atkReplay, "the same beacon twice", 204, beacon(good), beacon(good)).
			stores("rum_pageviews", 1).then(pageViewOnce(good)),
	}
}

func beaconStrings(t *testing.T, e *hostileEnv) []hostileCase {
	v := func(field string) string { return field + "=" + hostile }
	every := e.beaconBody(t, func(m map[string]any) {
		m["url"], m["ref_host"] = v("url"), v("ref_host")
		m["nav"] = map[string]any{"type": shortHostile, "protocol": "p" + shortHostile, "delivery_type": "d" + shortHostile, "ttfb_ms": 1}
		m["conn"] = map[string]any{"effective_type": shortHostile}
		m["server_timing"] = []map[string]any{{"name": v("st.name"), "desc": v("st.desc"), "dur": 1}}
		m["hosts"] = []map[string]any{{"host": v("host"), "cdn": "cdn=" + shortHostile, "count": 1, "median_ms": 1, "bytes": 1, "tao": true}}
		m["cdn_probes"] = []map[string]any{{"cdn": "probe=" + shortHostile, "url": v("probe.url"), "cold": map[string]any{"duration_ms": 1}}}
	})
	unusual := e.beaconBody(t, func(m map[string]any) { m["url"] = "https://shop.example/\u2028😀\uffff\U0010FFFF" })
	ua := "Mozilla/5.0 (X11; Linux x86_64) '; DROP TABLE rum_pageviews; -- \xff\xfe Evil/1.0"
	uaBody := e.beaconBody(t, nil)
	return []hostileCase{
		hc(beaconRoute, atkSQLNUL, "every string field", 204, beacon(every)).
			stores("rum_pageviews", 1).stores("rum_cdn", 2).then(beaconStored(every)),
		hc(beaconRoute, atkSQLNUL, "User-Agent with SQL", 204, beacon(uaBody, "User-Agent", strings.ReplaceAll(ua, "\xff\xfe", ""))).
			stores("rum_pageviews", 1).then(uaStoredAsUTF8(uaBody)),
		hc(beaconRoute, atkUTF8, "User-Agent not UTF-8", 400, beacon(e.beaconBody(t, nil), "User-Agent", ua)).then(errReason("user_agent")),
		hc(beaconRoute, atkSQLNUL, "site key with SQL", 400, beacon(swap(t, e.beaconBody(t, nil), `"site":"`, `"site":"' OR '1'='1`))),
		hc(beaconRoute, atkUTF8, "unusual but valid Unicode, stored as sent", 204, beacon(unusual)).
			stores("rum_pageviews", 1).then(beaconStored(unusual)),
	}
}

func beaconOrigins(t *testing.T, e *hostileEnv) []hostileCase {
	good := e.beaconBody(t, nil)
	refused := func(name, origin string) hostileCase {
		return hc(beaconRoute, atkOrigin, name, 403, beacon(good, "Origin", origin)).then(noCORS)
	}
	preflight := func(origin string) hreq {
		return hreq{method: "OPTIONS", path: "/v1/beacon", header: headers("Origin", origin, "Access-Control-Request-Method", "POST")}
	}
	return []hostileCase{
		refused("unregistered", "https://evil.example"),
		refused("registered host over http", "http://shop.example"),
		refused("null", "null"),
		refused("with a path", shopOrigin+"/x"),
		refused("a registered suffix", "https://evilshop.example"),
		refused("SQL in the origin", "https://shop.example' OR '1'='1"),
		hc(beaconRoute, atkOrigin, "no Origin", 403, post("/v1/beacon", headers("Content-Type", "text/plain"), good)).then(noCORS),
		hc(beaconRoute, atkOrigin, "NUL in the Origin", 400, hreq{raw: rawRequest("POST", "/v1/beacon",
			headers("Content-Type", "text/plain", "Origin", shopOrigin+"\x00.evil.example"), good)}),
		hc(beaconRoute, atkOrigin, "preflight from an unregistered origin", 403, preflight("https://evil.example")).then(noCORS),
		hc(beaconRoute, atkOrigin, "preflight from the registered origin", 204, preflight(shopOrigin)).
			then(func(t *testing.T, e *hostileEnv, r hresp) {
				if got := r.header.Get("Access-Control-Allow-Origin"); got != shopOrigin {
					t.Errorf("got Access-Control-Allow-Origin %q, want %s", got, shopOrigin)
				}
			}),
	}
}

func beaconAuth(t *testing.T, e *hostileEnv) []hostileCase {
	good := e.beaconBody(t, nil)
	site := func(key string) []byte { return swap(t, good, `"site":"`+e.siteKey, `"site":"`+key) }
	noSite := e.beaconBody(t, func(m map[string]any) { delete(m, "site") })
	return []hostileCase{
		hc(beaconRoute, atkToken, "unknown site key", 400, beacon(site("mrs_unknown"))).then(errReason("unknown_site")),
		hc(beaconRoute, atkToken, "an agent token as site key", 400, beacon(site(e.agentToken))).then(errReason("unknown_site")),
		hc(beaconRoute, atkToken, "no site key", 400, beacon(noSite)).then(errReason("bad_beacon")),
		hc(beaconRoute, atkURLToken, "site key in the URL only", 400, post("/v1/beacon?site="+e.siteKey, beacon(nil).header, noSite)),
		hc(beaconRoute, atkURLToken, "agent token in the URL: ignored, never stored", 204, post("/v1/beacon?token="+e.agentToken, beacon(nil).header, good)).
			stores("rum_pageviews", 1),
		hc(beaconRoute, atkMethod, "GET", 405, get("/v1/beacon", nil)),
		hc(beaconRoute, atkMethod, "PUT", 405, hreq{method: "PUT", path: "/v1/beacon", header: beacon(nil).header, body: good}),
		hc(beaconRoute, atkMethod, "DELETE", 405, hreq{method: "DELETE", path: "/v1/beacon"}),
	}
}

// beaconStored reads back the page view and its rum_cdn rows and compares
// every string with what was sent, byte for byte.
func beaconStored(body []byte) func(t *testing.T, e *hostileEnv, r hresp) {
	return func(t *testing.T, e *hostileEnv, r hresp) {
		t.Helper()
		var b map[string]any
		if err := json.Unmarshal(body, &b); err != nil {
			t.Fatal(err)
		}
		nav, _ := b["nav"].(map[string]any)
		conn, _ := b["conn"].(map[string]any)
		cols := []string{"url", "ref_host", "nav_type", "protocol", "delivery_type", "effective_type", "server_timing_name", "server_timing_desc"}
		want := []any{sentValue(b, "url"), sentValue(b, "ref_host"), sentValue(nav, "type"), sentValue(nav, "protocol"),
			sentValue(nav, "delivery_type"), sentValue(conn, "effective_type"), []string{}, []string{}}
		if b["server_timing"] != nil {
			want[6], want[7] = sentValue(b, "server_timing[].name"), sentValue(b, "server_timing[].desc")
		}
		compareRow(t, e, "SELECT "+strings.Join(cols, ", ")+" FROM rum_pageviews FINAL WHERE pv = ?", cols, want, b["pv"])
		if b["hosts"] != nil {
			compareRow(t, e, "SELECT cdn, host FROM rum_cdn FINAL WHERE pv = ? AND kind = 'host'", []string{"cdn", "host"},
				[]any{sentValue(b, "hosts[].cdn").([]string)[0], sentValue(b, "hosts[].host").([]string)[0]}, b["pv"])
		}
		if b["cdn_probes"] != nil {
			compareRow(t, e, "SELECT cdn, url FROM rum_cdn FINAL WHERE pv = ? AND kind = 'probe_cold'", []string{"cdn", "url"},
				[]any{sentValue(b, "cdn_probes[].cdn").([]string)[0], sentValue(b, "cdn_probes[].url").([]string)[0]}, b["pv"])
		}
	}
}

// uaStoredAsUTF8: what the collector derives from a hostile User-Agent is
// stored as valid UTF-8 (strings are UTF-8 or refused, never mangled).
func uaStoredAsUTF8(body []byte) func(t *testing.T, e *hostileEnv, r hresp) {
	return func(t *testing.T, e *hostileEnv, r hresp) {
		t.Helper()
		var b struct{ PV string }
		json.Unmarshal(body, &b)
		var browser, version, os, device string
		err := e.conn.QueryRow(context.Background(), "SELECT browser, browser_version, os, device FROM rum_pageviews WHERE pv = ?", b.PV).
			Scan(&browser, &version, &os, &device)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range []string{browser, version, os, device} {
			if !utf8.ValidString(s) {
				t.Errorf("stored %q from the User-Agent: not valid UTF-8", s)
			}
		}
	}
}

// pageViewOnce checks the beacon's page view counts once under FINAL.
func pageViewOnce(body []byte) func(t *testing.T, e *hostileEnv, r hresp) {
	return func(t *testing.T, e *hostileEnv, r hresp) {
		t.Helper()
		var b struct{ PV string }
		json.Unmarshal(body, &b)
		var n uint64
		if err := e.conn.QueryRow(context.Background(), "SELECT count() FROM rum_pageviews FINAL WHERE pv = ?", b.PV).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 1 {
			t.Errorf("got %d page views under FINAL, want 1: a replayed beacon counts once", n)
		}
	}
}
