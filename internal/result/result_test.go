package result

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite golden files")

func f(v float64) *float64 { return &v }
func i64(v int64) *int64   { return &v }
func b(v bool) *bool       { return &v }

var ts = time.Date(2026, 11, 25, 6, 50, 1, 123456789, time.UTC)

func goldenResults() map[string]*Result {
	notAfter := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	ttl := uint32(300)
	return map[string]*Result{
		"http_ok": {
			V: Version, ID: "01936a2e-7f3c-7a10-8b2c-3d4e5f607182", Agent: "ams-1", Check: "home",
			Kind: KindHTTP, Target: "https://example.com/", TS: ts, OK: true,
			DNSMs: f(12.5), ConnectMs: f(20.25), TLSMs: f(41), TTFBMs: f(88.125), TransferMs: f(3), TotalMs: f(165),
			HTTP: &HTTP{URL: "https://example.com/", Status: 200, Proto: "HTTP/2.0", Bytes: i64(1256),
				RemoteIP: "93.184.215.14", ConnReused: b(false), DNSSource: "resolver",
				CDN: "cloudflare", CDNPoP: "AMS", CDNCache: "hit"},
			TLS: &TLS{TLSVersion: "TLS 1.3", TLSCipher: "TLS_AES_128_GCM_SHA256", TLSALPN: "h2", TLSSNI: "example.com",
				CertSubject: "CN=example.com", CertIssuer: "CN=R3,O=Let's Encrypt", CertSANs: []string{"example.com", "www.example.com"},
				CertNotAfter: &notAfter, CertDaysLeft: f(36.7), OCSPStapled: b(true),
				Trust: []TrustCheck{{Store: "system", Valid: true}, {Store: "corp", Valid: false, Error: ErrTLSCertUntrusted}}},
			Host: &Host{CPUStealPct: f(0.4), ClockSynced: b(true), ClockOffsetMs: f(-0.8)},
		},
		"http_refused": {
			V: Version, ID: "01936a2e-7f3c-7a10-8b2c-3d4e5f607183", Agent: "gru-1", Check: "api",
			Kind: KindHTTP, Target: "http://10.0.0.1:81/", TS: ts, OK: false,
			Error: ErrConnectRefused, ErrorMessage: "dial tcp 10.0.0.1:81: connect: connection refused",
			ConnectMs: f(0.2), TotalMs: f(0.3),
			HTTP: &HTTP{URL: "http://10.0.0.1:81/", DNSSource: "ip"},
		},
		"dns_nxdomain": {
			V: Version, ID: "01936a2e-7f3c-7a10-8b2c-3d4e5f607184", Agent: "sin-1", Check: "resolve",
			Kind: KindDNS, Target: "nope.example.com", TS: ts, OK: false, Error: ErrDNSNXDomain,
			ErrorMessage: "NXDOMAIN from 1.1.1.1:53", DNSMs: f(4.5), TotalMs: f(4.5),
			DNS: &DNS{Resolver: "1.1.1.1:53", QType: "A", Rcode: "NXDOMAIN", Transport: "udp", TTL: &ttl},
		},
		"icmp_ok": {
			V: Version, ID: "01936a2e-7f3c-7a10-8b2c-3d4e5f607185", Agent: "sin-1", Check: "ping",
			Kind: KindICMP, Target: "example.com", TS: ts, OK: true, TotalMs: f(3002),
			ICMP: &ICMP{Sent: 3, Received: 3, LossPct: 0, MinMs: f(1), AvgMs: f(1.5), MaxMs: f(2), StddevMs: f(0.4)},
		},
		"traceroute_ok": {
			V: Version, ID: "01936a2e-7f3c-7a10-8b2c-3d4e5f607187", Agent: "gru-1", Check: "path",
			Kind: KindTraceroute, Target: "example.com", TS: ts, OK: true, DNSMs: f(3.5), TotalMs: f(2140.5),
			HTTP: &HTTP{RemoteIP: "93.184.215.14", DNSSource: "resolver"},
			Traceroute: &Traceroute{Proto: "udp", Port: 33434, Reached: true, Hops: []TraceHop{
				{TTL: 1, Addr: "192.0.2.1", Name: "gw.example.net", Sent: 3, Received: 3, MinMs: f(0.4), AvgMs: f(0.5), MaxMs: f(0.7), StddevMs: f(0.1)},
				{TTL: 2, Sent: 3, Received: 0, LossPct: 100},
				{TTL: 3, Addr: "198.51.100.7", Sent: 3, Received: 2, LossPct: 33.3, MinMs: f(11), AvgMs: f(12.5), MaxMs: f(14), StddevMs: f(1.5)},
				{TTL: 4, Addr: "93.184.215.14", Sent: 3, Received: 3, MinMs: f(20.5), AvgMs: f(21), MaxMs: f(21.5), StddevMs: f(0.4)},
			}},
		},
		"browser_ok": {
			V: Version, ID: "01936a2e-7f3c-7a10-8b2c-3d4e5f607186", Agent: "ams-1", Check: "page",
			Kind: KindBrowser, Target: "https://example.com/", TS: ts, OK: true,
			DNSMs: f(8.5), ConnectMs: f(15.25), TLSMs: f(30), TTFBMs: f(120.5), TransferMs: f(4.125), TotalMs: f(1450.75),
			HTTP: &HTTP{URL: "https://example.com/", Status: 200, Proto: "HTTP/2.0", Bytes: i64(15320),
				RemoteIP: "93.184.215.14", DNSSource: "resolver", CDN: "cloudflare", CDNPoP: "AMS", CDNCache: "miss"},
			TLS: &TLS{TLSVersion: "TLS 1.3", TLSCipher: "AES_128_GCM", TLSSNI: "example.com",
				CertSubject: "example.com", CertIssuer: "R3", CertSANs: []string{"example.com"},
				CertNotAfter: &notAfter, CertDaysLeft: f(36.7)},
			Browser: &Browser{FCPMs: f(310.5), LCPMs: f(820.25), CLS: f(0.02), TBTMs: f(45),
				DOMContentMs: f(640), LoadMs: f(1440.5), Resources: 27, PageBytes: 1843200, ConsoleErrors: 1,
				Hosts: []BrowserHost{
					{Host: "cdn.example.com", CDN: "cloudfront", CDNPoP: "FRA56", Requests: 18, CacheHits: 15, Bytes: 1520000, MaxMs: f(412.5)},
					{Host: "example.com", CDN: "cloudflare", CDNPoP: "AMS", Requests: 4, Bytes: 250000, MaxMs: f(130)},
					{Host: "fonts.example.net:8443", Requests: 3, Failed: 1, Bytes: 73200},
					{Host: "(other)", Requests: 2, Bytes: 0},
				}},
		},
	}
}

// The JSON of a result is the wire contract: these golden files change only
// on purpose (go test ./internal/result -update) and with a note on Version.
func TestGoldenJSON(t *testing.T) {
	for name, res := range goldenResults() {
		t.Run(name, func(t *testing.T) {
			got, err := json.MarshalIndent(res, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			path := filepath.Join("testdata", name+".json")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("cannot read golden file (run with -update to create it): %v", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("JSON of %s changed:\ngot:\n%s\nwant:\n%s", name, got, want)
			}
			var back Result
			if err := Unmarshal(want, &back); err != nil {
				t.Fatalf("golden file does not decode: %v", err)
			}
			again, _ := json.MarshalIndent(&back, "", "  ")
			if !bytes.Equal(append(again, '\n'), want) {
				t.Errorf("round trip changed the JSON:\n%s", again)
			}
		})
	}
}

func TestAbsentIsNotZero(t *testing.T) {
	res := goldenResults()["http_refused"]
	b, _ := json.Marshal(res)
	for _, field := range []string{"dns_ms", "tls_ms", "ttfb_ms", "transfer_ms", "http_status", "cdn"} {
		if strings.Contains(string(b), `"`+field+`"`) {
			t.Errorf("absent field %s is in the JSON: %s", field, b)
		}
	}
	var back Result
	if err := Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.DNSMs != nil || back.TLSMs != nil {
		t.Errorf("absent phases decoded as present: dns=%v tls=%v", back.DNSMs, back.TLSMs)
	}
}

func TestDecodeNDJSONErrors(t *testing.T) {
	good, _ := json.Marshal(goldenResults()["http_ok"])
	g := string(good)
	for _, tc := range []struct{ name, body, want string }{
		{"unknown field", g + "\n" + `{"v":1,"bogus":1}`, `line 2: field "bogus": unknown field`},
		{"wrong type", strings.Replace(g, `"dns_ms":12.5`, `"dns_ms":"12.5"`, 1), `line 1: field "dns_ms": cannot use JSON string as float64`},
		{"syntax", g + "\n\n{not json}", `line 3: invalid JSON`},
		{"bad id", strings.Replace(g, `"id":"01936a2e-7f3c-7a10-8b2c-3d4e5f607182"`, `"id":"x"`, 1), `line 1: field "id": "x" is not a UUID`},
		{"bad kind", strings.Replace(g, `"kind":"http"`, `"kind":"smtp"`, 1), `line 1: field "kind": unknown kind "smtp"`},
		{"bad ts", strings.Replace(g, `"ts":"2026-11-25T06:50:01.123456789Z"`, `"ts":"yesterday"`, 1), `line 1: field "ts"`},
		{"no ts", strings.Replace(g, `"ts":"2026-11-25T06:50:01.123456789Z",`, ``, 1), `line 1: field "ts": must be set`},
		{"negative", strings.Replace(g, `"total_ms":165`, `"total_ms":-1`, 1), `line 1: field "total_ms": -1 is out of range`},
		{"no class", strings.Replace(g, `"ok":true`, `"ok":false`, 1), `line 1: field "error": an error class is required`},
		{"two objects", g + g, `line 1: trailing data`},
		{"version", strings.Replace(g, `"v":1`, `"v":7`, 1), `line 1: field "v": unsupported contract version 7`},
		{"too long", g + "\n" + strings.Repeat(" ", MaxLineBytes+1) + "x", `line 2: longer than`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := DecodeNDJSON(strings.NewReader(tc.body))
			if err == nil {
				t.Fatalf("got no error, want %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got error %q, want it to contain %q", err, tc.want)
			}
			if res != nil {
				t.Errorf("got %d results with an error, want none", len(res))
			}
		})
	}
}

func TestDecodeNDJSONBatch(t *testing.T) {
	var buf []byte
	var err error
	for _, name := range []string{"http_ok", "http_refused", "dns_nxdomain"} {
		buf, err = AppendNDJSON(buf, goldenResults()[name])
		if err != nil {
			t.Fatal(err)
		}
	}
	got, err := DecodeNDJSON(bytes.NewReader(append(buf, "\n\n"...)))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("got %d results, want 3", len(got))
	}
	if got[2].DNS == nil || got[2].DNS.Rcode != "NXDOMAIN" {
		t.Errorf("got dns fields %+v, want rcode NXDOMAIN", got[2].DNS)
	}
	if !got[0].TS.Equal(ts) {
		t.Errorf("got ts %v, want %v (nanoseconds kept)", got[0].TS, ts)
	}
}

func TestNewIsUUIDv7(t *testing.T) {
	a := New("a", "c", KindHTTP, "http://x/", ts)
	b := New("a", "c", KindHTTP, "http://x/", ts)
	if a.ID == b.ID || !validUUID(a.ID) || a.ID[14] != '7' {
		t.Errorf("got ids %s, %s; want two distinct UUIDv7", a.ID, b.ID)
	}
}

// Which network a hop's address is in is the collector's call: an agent
// cannot send it (the decoder refuses the key as outside the contract).
func TestTraceHopASNIsNotWire(t *testing.T) {
	good, _ := json.Marshal(goldenResults()["traceroute_ok"])
	bad := strings.Replace(string(good), `"addr":"192.0.2.1",`, `"addr":"192.0.2.1","asn":13335,`, 1)
	if bad == string(good) {
		t.Fatal("the replacement did not apply")
	}
	if _, err := DecodeNDJSON(strings.NewReader(bad)); err == nil || !strings.Contains(err.Error(), "asn") {
		t.Errorf("got %v, want the asn key refused", err)
	}
}
