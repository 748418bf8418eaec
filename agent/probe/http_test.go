package probe

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meridian-net/meridian/agent/probe/internal/testsrv"
	"github.com/meridian-net/meridian/internal/result"
)

const httpDelay = 150 * time.Millisecond

func runHTTP(t *testing.T, c *Check) *result.Result {
	t.Helper()
	if c.Kind == "" {
		c.Kind = result.KindHTTP
	}
	if c.Name == "" {
		c.Name = "test"
	}
	if c.Timeout == 0 {
		c.Timeout = 10 * time.Second
	}
	res, err := HTTP(context.Background(), c)
	if err != nil {
		t.Fatalf("HTTP(%s): %v", c.Target, err)
	}
	if len(res) != 1 {
		t.Fatalf("got %d results, want 1", len(res))
	}
	if err := res[0].Validate(); err != nil {
		t.Errorf("result does not validate: %v", err)
	}
	return res[0]
}

func wantHTTPClass(t *testing.T, res *result.Result, class string) {
	t.Helper()
	if res.Error != class || res.OK != (class == "") {
		t.Fatalf("got ok=%v error=%q (%s), want error %q", res.OK, res.Error, res.ErrorMessage, class)
	}
}

func durOf(p *float64) time.Duration {
	if p == nil {
		return -1
	}
	return time.Duration(*p * 1e6)
}

// wantBetween fails unless the phase was measured and lies in [lo, hi).
func wantBetween(t *testing.T, name string, p *float64, lo, hi time.Duration) {
	t.Helper()
	if p == nil {
		t.Errorf("%s is absent, want it in [%v, %v)", name, lo, hi)
	} else if d := durOf(p); d < lo || d >= hi {
		t.Errorf("got %s %v, want it in [%v, %v)", name, d, lo, hi)
	}
}

func wantAbsent(t *testing.T, name string, p *float64) {
	t.Helper()
	if p != nil {
		t.Errorf("got %s %v, want it absent", name, *p)
	}
}

func TestHTTPSlowHeadersAreTTFB(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(httpDelay)
		fmt.Fprint(w, "hello")
	}))
	defer srv.Close()
	res := runHTTP(t, &Check{Target: srv.URL + "/x"})
	wantHTTPClass(t, res, "")
	wantBetween(t, "ttfb_ms", res.TTFBMs, httpDelay, httpDelay+time.Second)
	wantBetween(t, "connect_ms", res.ConnectMs, 0, httpDelay)
	wantBetween(t, "transfer_ms", res.TransferMs, 0, httpDelay)
	wantBetween(t, "total_ms", res.TotalMs, httpDelay, httpDelay+time.Second)
	wantAbsent(t, "dns_ms", res.DNSMs)
	wantAbsent(t, "tls_ms", res.TLSMs)
	h := res.HTTP
	if h.Status != 200 || h.Proto != "HTTP/1.1" || *h.Bytes != 5 || h.RemoteIP != "127.0.0.1" ||
		h.DNSSource != "ip" || h.ConnReused == nil || *h.ConnReused || h.URL != srv.URL+"/x" {
		t.Errorf("got http fields %+v, want status 200, HTTP/1.1, 5 bytes from 127.0.0.1, dns_source ip, not reused", h)
	}
	if res.TLS != nil {
		t.Errorf("got tls fields %+v on plain http", res.TLS)
	}
}

func TestHTTPSlowBodyIsTransfer(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "part one,")
		w.(http.Flusher).Flush()
		time.Sleep(httpDelay)
		fmt.Fprint(w, "part two")
	}))
	defer srv.Close()
	res := runHTTP(t, &Check{Target: srv.URL, HTTP: HTTPOptions{BodyContains: "part two"}})
	wantHTTPClass(t, res, "")
	wantBetween(t, "transfer_ms", res.TransferMs, httpDelay, httpDelay+time.Second)
	wantBetween(t, "ttfb_ms", res.TTFBMs, 0, httpDelay)
	if *res.HTTP.Bytes != 17 {
		t.Errorf("got %d bytes, want 17", *res.HTTP.Bytes)
	}
}

func TestHTTPResolvesNames(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	res := runHTTP(t, &Check{Target: "http://localhost:" + port + "/"})
	wantHTTPClass(t, res, "")
	wantBetween(t, "dns_ms", res.DNSMs, 0, time.Second)
	if res.HTTP.DNSSource != "resolver" {
		t.Errorf("got dns_source %q, want resolver", res.HTTP.DNSSource)
	}
}

func TestHTTPFailures(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/500":
			http.Error(w, "boom", http.StatusInternalServerError)
		case "/moved":
			http.Redirect(w, r, "/elsewhere", http.StatusFound)
		case "/big":
			fmt.Fprint(w, strings.Repeat("x", 100))
		case "/hang":
			<-r.Context().Done()
		default:
			fmt.Fprint(w, "hello world")
		}
	}))
	defer srv.Close()
	f := func(name string, c Check, class string, check func(*result.Result)) {
		t.Run(name, func(t *testing.T) {
			c.Target = srv.URL + c.Target
			res := runHTTP(t, &c)
			wantHTTPClass(t, res, class)
			if class != "" && res.ErrorMessage == "" {
				t.Errorf("got no error message with class %s", class)
			}
			if check != nil {
				check(res)
			}
		})
	}
	f("500", Check{Target: "/500"}, result.ErrHTTPStatus, func(res *result.Result) {
		if res.HTTP.Status != 500 || res.TTFBMs == nil || res.TransferMs == nil {
			t.Errorf("got status %d ttfb %v transfer %v, want 500 with both phases", res.HTTP.Status, res.TTFBMs, res.TransferMs)
		}
	})
	f("expected status", Check{Target: "/500", HTTP: HTTPOptions{ExpectStatus: []int{500}}}, "", nil)
	f("unexpected 200", Check{Target: "/", HTTP: HTTPOptions{ExpectStatus: []int{204}}}, result.ErrHTTPStatus, nil)
	f("body mismatch", Check{Target: "/", HTTP: HTTPOptions{BodyContains: "goodbye"}}, result.ErrBodyMismatch, nil)
	f("body match", Check{Target: "/", HTTP: HTTPOptions{BodyContains: "world"}}, "", nil)
	f("body too big", Check{Target: "/big", HTTP: HTTPOptions{MaxBodyBytes: 10}}, result.ErrHTTP, nil)
	f("redirect not followed", Check{Target: "/moved", HTTP: HTTPOptions{FollowRedirects: new(false)}}, "", func(res *result.Result) {
		if res.HTTP.Status != 302 || res.HTTP.Location != "/elsewhere" {
			t.Errorf("got status %d location %q, want 302 /elsewhere", res.HTTP.Status, res.HTTP.Location)
		}
	})
	f("timeout", Check{Target: "/hang", Timeout: httpDelay}, result.ErrTimeout, func(res *result.Result) {
		wantBetween(t, "ttfb_ms", res.TTFBMs, httpDelay/2, httpDelay+time.Second)
		wantBetween(t, "connect_ms", res.ConnectMs, 0, httpDelay)
		wantAbsent(t, "transfer_ms", res.TransferMs)
	})
	f("method and headers", Check{Target: "/", HTTP: HTTPOptions{Method: "HEAD", Headers: map[string]string{"X-A": "b"}}}, "", nil)
}

func TestHTTPRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	res := runHTTP(t, &Check{Target: "http://" + addr + "/"})
	wantHTTPClass(t, res, result.ErrConnectRefused)
	wantBetween(t, "connect_ms", res.ConnectMs, 0, time.Second)
	wantAbsent(t, "dns_ms", res.DNSMs)
	wantAbsent(t, "ttfb_ms", res.TTFBMs)
	if res.HTTP.DNSSource != "ip" || res.HTTP.Status != 0 {
		t.Errorf("got http fields %+v, want dns_source ip and no status", res.HTTP)
	}
	if !strings.Contains(res.ErrorMessage, "refused") || strings.Contains(res.ErrorMessage, "Get ") {
		t.Errorf("got message %q, want the dial error without the URL prefix", res.ErrorMessage)
	}
}

func TestHTTPBadTarget(t *testing.T) {
	for _, target := range []string{"example.com", "ftp://example.com/", "http://", "http://[::1"} {
		if _, err := HTTP(context.Background(), &Check{Kind: "http", Target: target}); err == nil {
			t.Errorf("HTTP(%q): got no error, want one", target)
		}
	}
}

func TestHTTPS(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "secure")
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()
	ca := writeTestPEM(t, srv.Certificate().Raw)
	res := runHTTP(t, &Check{Target: srv.URL, HTTP: HTTPOptions{CAFile: ca}})
	wantHTTPClass(t, res, "")
	wantBetween(t, "tls_ms", res.TLSMs, 0, time.Second)
	wantBetween(t, "ttfb_ms", res.TTFBMs, 0, time.Second)
	if res.HTTP.Proto != "HTTP/2.0" {
		t.Errorf("got proto %q, want HTTP/2.0", res.HTTP.Proto)
	}
	tl := res.TLS
	if tl == nil {
		t.Fatal("got no tls fields")
	}
	if tl.TLSVersion != "TLS 1.3" || tl.TLSALPN != "h2" || tl.TLSCipher == "" || len(tl.CertSHA256) != 64 ||
		tl.CertDaysLeft == nil || *tl.CertDaysLeft < 1 || tl.CertNotAfter == nil || tl.TLSSNI != "" {
		t.Errorf("got tls fields %+v, want TLS 1.3, h2, a cipher, a fingerprint, days left, no SNI for an IP", tl)
	}
	if !hasString(tl.CertSANs, "127.0.0.1") || !hasString(tl.CertSANs, "example.com") {
		t.Errorf("got SANs %v, want 127.0.0.1 and example.com", tl.CertSANs)
	}

	res = runHTTP(t, &Check{Target: srv.URL})
	wantHTTPClass(t, res, result.ErrTLSCertUntrusted)
	res = runHTTP(t, &Check{Target: srv.URL, HTTP: HTTPOptions{InsecureSkipVerify: true}})
	wantHTTPClass(t, res, "")
}

func TestHTTPSBadCerts(t *testing.T) {
	now := time.Now()
	day := 24 * time.Hour
	f := func(name string, leaf x509.Certificate, class string, minDays, maxDays float64) {
		t.Run(name, func(t *testing.T) {
			caPEM, cert := makeTestCert(t, leaf)
			srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
			srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
			srv.StartTLS()
			defer srv.Close()
			ca := filepath.Join(t.TempDir(), "ca.pem")
			if err := os.WriteFile(ca, caPEM, 0o600); err != nil {
				t.Fatal(err)
			}
			res := runHTTP(t, &Check{Target: srv.URL, HTTP: HTTPOptions{CAFile: ca}})
			wantHTTPClass(t, res, class)
			wantBetween(t, "tls_ms", res.TLSMs, 0, time.Second)
			if res.TLS == nil || res.TLS.CertDaysLeft == nil {
				t.Fatalf("got tls fields %+v, want the served certificate described", res.TLS)
			}
			if d := *res.TLS.CertDaysLeft; d < minDays || d > maxDays {
				t.Errorf("got days left %v, want in [%v, %v]", d, minDays, maxDays)
			}
		})
	}
	ip := []net.IP{net.ParseIP("127.0.0.1")}
	f("good", x509.Certificate{IPAddresses: ip, NotBefore: now.Add(-day), NotAfter: now.Add(30 * day)}, "", 29, 30)
	f("expired", x509.Certificate{IPAddresses: ip, NotBefore: now.Add(-30 * day), NotAfter: now.Add(-2 * day)}, result.ErrTLSCertExpired, -2.1, -1.9)
	f("not yet valid", x509.Certificate{IPAddresses: ip, NotBefore: now.Add(day), NotAfter: now.Add(30 * day)}, result.ErrTLSCertNotYetValid, 29, 31)
	f("wrong name", x509.Certificate{DNSNames: []string{"other.example"}, NotBefore: now.Add(-day), NotAfter: now.Add(30 * day)}, result.ErrTLSNameMismatch, 29, 30)
}

func TestHTTPSHandshakeFailure(t *testing.T) {
	// A plain HTTP server answers the ClientHello with garbage.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	res := runHTTP(t, &Check{Target: strings.Replace(srv.URL, "http://", "https://", 1)})
	wantHTTPClass(t, res, result.ErrTLSHandshake)
}

// The phase arithmetic, with hook times fixed (cloudprober's idea).
func TestHTTPTracePhases(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	tr := &httpTrace{start: t0, dnsStart: at(1), dnsDone: at(11), connStart: at(12), connDone: at(32),
		tlsStart: at(32), tlsDone: at(72), gotConn: at(73), firstByte: at(173)}
	var res result.Result
	tr.fillPhases(&res, at(180))
	for _, p := range []struct {
		name string
		got  *float64
		want float64
	}{{"dns", res.DNSMs, 10}, {"connect", res.ConnectMs, 20}, {"tls", res.TLSMs, 40},
		{"ttfb", res.TTFBMs, 100}, {"transfer", res.TransferMs, 7}, {"total", res.TotalMs, 180}} {
		if p.got == nil || *p.got != p.want {
			t.Errorf("got %s %v, want %v", p.name, p.got, p.want)
		}
	}
	// Failed during TLS: tls counts up to the failure, later phases are absent.
	tr = &httpTrace{start: t0, connStart: at(0), connDone: at(5), tlsStart: at(5), addrKnown: true}
	res = result.Result{}
	tr.fillPhases(&res, at(50))
	if durOf(res.TLSMs) != 45*time.Millisecond || res.TTFBMs != nil || res.DNSMs != nil || tr.phase() != PhaseTLS {
		t.Errorf("got tls %v ttfb %v dns %v phase %s, want 45ms, absent, absent, tls", res.TLSMs, res.TTFBMs, res.DNSMs, tr.phase())
	}
	if p := (&httpTrace{}).phase(); p != PhaseDNS {
		t.Errorf("got phase %s before anything happened to a name, want dns", p)
	}
}

func hasString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func writeTestPEM(t *testing.T, der []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// makeTestCert returns a fresh CA (PEM) and a leaf it signed, shaped by tmpl
// (names, addresses, validity).
func makeTestCert(t *testing.T, tmpl x509.Certificate) ([]byte, tls.Certificate) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Test CA"},
		NotBefore: time.Now().Add(-365 * 24 * time.Hour), NotAfter: time.Now().Add(365 * 24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl.SerialNumber = big.NewInt(2)
	tmpl.Subject = pkix.Name{CommonName: "leaf"}
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	der, err := x509.CreateCertificate(rand.Reader, &tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// runHTTPAll runs an http check and returns every result, each validated.
func runHTTPAll(t *testing.T, c *Check) []*result.Result {
	t.Helper()
	if c.Name == "" {
		c.Name = "test"
	}
	if c.Timeout == 0 {
		c.Timeout = 10 * time.Second
	}
	rs, err := HTTP(context.Background(), c)
	if err != nil {
		t.Fatalf("HTTP(%s): %v", c.Target, err)
	}
	for i, r := range rs {
		if err := r.Validate(); err != nil {
			t.Errorf("result %d does not validate: %v", i, err)
		}
	}
	return rs
}

// countConns serves h and counts the connections clients opened.
func countConns(t *testing.T, h http.Handler, tls bool) (*httptest.Server, func() int) {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	var mu sync.Mutex
	n := 0
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			mu.Lock()
			n++
			mu.Unlock()
		}
	}
	if tls {
		srv.EnableHTTP2 = true
		srv.StartTLS()
	} else {
		srv.Start()
	}
	t.Cleanup(srv.Close)
	return srv, func() int { mu.Lock(); defer mu.Unlock(); return n }
}

func TestHTTPRedirectHops(t *testing.T) {
	srv, conns := countConns(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/a":
			http.Redirect(w, r, "/b", http.StatusFound)
		case "/b":
			time.Sleep(httpDelay) // only hop 1's ttfb holds this
			http.Redirect(w, r, "/c?x=1", http.StatusMovedPermanently)
		case "/c":
			fmt.Fprint(w, "arrived")
		}
	}), false)
	rs := runHTTPAll(t, &Check{Target: srv.URL + "/a", HTTP: HTTPOptions{BodyContains: "arrived"}})
	if len(rs) != 3 {
		t.Fatalf("got %d results, want one per hop (3)", len(rs))
	}
	for i, want := range []struct {
		url, location string
		status        int
	}{{srv.URL + "/a", "/b", 302}, {srv.URL + "/b", "/c?x=1", 301}, {srv.URL + "/c?x=1", "", 200}} {
		res := rs[i]
		wantHTTPClass(t, res, "")
		h := res.HTTP
		if h.Hop != i || h.URL != want.url || h.Status != want.status || h.Location != want.location {
			t.Errorf("hop %d: got hop %d url %q status %d location %q, want %d %q %d %q",
				i, h.Hop, h.URL, h.Status, h.Location, i, want.url, want.status, want.location)
		}
		if h.ConnReused == nil || *h.ConnReused || res.Target != srv.URL+"/a" {
			t.Errorf("hop %d: got conn_reused %v target %q, want a fresh connection and the check's target", i, h.ConnReused, res.Target)
		}
		wantBetween(t, fmt.Sprintf("hop %d connect_ms", i), res.ConnectMs, 0, httpDelay)
	}
	wantBetween(t, "hop 1 ttfb_ms", rs[1].TTFBMs, httpDelay, httpDelay+time.Second)
	wantBetween(t, "hop 2 ttfb_ms", rs[2].TTFBMs, 0, httpDelay)
	wantBetween(t, "hop 2 total_ms", rs[2].TotalMs, 0, httpDelay)
	if got := conns(); got != 3 {
		t.Errorf("server saw %d connections, want 3 (a fresh one per hop)", got)
	}
}

func TestHTTPRedirectAssertionsOnLastHop(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/loop":
			http.Redirect(w, r, "/loop", http.StatusTemporaryRedirect)
		case "/gone":
			http.Redirect(w, r, "/404", http.StatusSeeOther)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	rs := runHTTPAll(t, &Check{Target: srv.URL + "/gone"})
	if len(rs) != 2 {
		t.Fatalf("got %d results, want 2", len(rs))
	}
	wantHTTPClass(t, rs[0], "")
	wantHTTPClass(t, rs[1], result.ErrHTTPStatus)

	rs = runHTTPAll(t, &Check{Target: srv.URL + "/loop", HTTP: HTTPOptions{MaxRedirects: 2}})
	if len(rs) != 3 {
		t.Fatalf("got %d results, want 3 (the target and 2 redirects)", len(rs))
	}
	wantHTTPClass(t, rs[2], result.ErrHTTP)
	if !strings.Contains(rs[2].ErrorMessage, "max_redirects") {
		t.Errorf("got message %q, want it to name max_redirects", rs[2].ErrorMessage)
	}
}

func TestHTTPRedirectToOtherHostDropsCredentials(t *testing.T) {
	var gotAuth string
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotAuth = r.Header.Get("Authorization") + "|" + r.Header.Get("X-Keep")
	}))
	defer other.Close()
	first := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+"/x", http.StatusFound)
	}))
	defer first.Close()
	rs := runHTTPAll(t, &Check{Target: first.URL, HTTP: HTTPOptions{Headers: map[string]string{"Authorization": "secret", "X-Keep": "y"}}})
	if len(rs) != 2 || rs[1].HTTP.URL != other.URL+"/x" {
		t.Fatalf("got %d results, want 2 ending at %s", len(rs), other.URL+"/x")
	}
	if gotAuth != "|y" {
		t.Errorf("other host got Authorization|X-Keep %q, want only X-Keep", gotAuth)
	}
}

func TestHTTPWarm(t *testing.T) {
	for _, tc := range []struct {
		name  string
		tls   bool
		proto string
	}{{"http1", false, "HTTP/1.1"}, {"h2", true, "HTTP/2.0"}} {
		t.Run(tc.name, func(t *testing.T) {
			srv, conns := countConns(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				fmt.Fprint(w, "hi")
			}), tc.tls)
			ns := testsrv.NewDNS(t, "warm.test. 60 IN A 127.0.0.1")
			_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
			scheme := strings.SplitN(srv.URL, ":", 2)[0]
			o := HTTPOptions{Warm: true, DialOptions: DialOptions{Resolver: ns.Addr}}
			if tc.tls {
				o.CAFile = writeTestPEM(t, srv.Certificate().Raw)
			}
			host := "warm.test"
			if tc.tls { // httptest's certificate names example.com
				host = "example.com"
				ns.Add("example.com. 60 IN A 127.0.0.1")
			}
			rs := runHTTPAll(t, &Check{Target: scheme + "://" + host + ":" + port + "/", HTTP: o})
			if len(rs) != 2 {
				t.Fatalf("got %d results, want the cold and the warm one", len(rs))
			}
			cold, warm := rs[0], rs[1]
			wantHTTPClass(t, cold, "")
			wantHTTPClass(t, warm, "")
			if *cold.HTTP.ConnReused || cold.HTTP.DNSSource != "resolver" || cold.DNSMs == nil || cold.ConnectMs == nil {
				t.Errorf("cold: got reused %v dns_source %q dns %v connect %v, want fresh, resolver, both phases",
					*cold.HTTP.ConnReused, cold.HTTP.DNSSource, cold.DNSMs, cold.ConnectMs)
			}
			if warm.HTTP.ConnReused == nil || !*warm.HTTP.ConnReused || warm.HTTP.DNSSource != "cache" || warm.HTTP.Proto != tc.proto {
				t.Errorf("warm: got %+v, want conn_reused, dns_source cache, %s", warm.HTTP, tc.proto)
			}
			wantAbsent(t, "warm dns_ms", warm.DNSMs)
			wantAbsent(t, "warm connect_ms", warm.ConnectMs)
			wantAbsent(t, "warm tls_ms", warm.TLSMs)
			wantBetween(t, "warm ttfb_ms", warm.TTFBMs, 0, time.Second)
			if got := conns(); got != 1 {
				t.Errorf("server saw %d connections, want 1", got)
			}
		})
	}
}

func TestHTTPResolverPinsAddress(t *testing.T) {
	var gotHost string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { gotHost = r.Host }))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	ns := testsrv.NewDNS(t, "pinned.test. 60 IN A 127.0.0.1")
	ns.SetDelay(httpDelay)
	res := runHTTP(t, &Check{Target: "http://pinned.test:" + port + "/", HTTP: HTTPOptions{DialOptions: DialOptions{Resolver: ns.Addr, Family: "ip4"}}})
	wantHTTPClass(t, res, "")
	wantBetween(t, "dns_ms", res.DNSMs, httpDelay, httpDelay+time.Second)
	wantBetween(t, "connect_ms", res.ConnectMs, 0, httpDelay)
	wantBetween(t, "ttfb_ms", res.TTFBMs, 0, httpDelay)
	if res.HTTP.RemoteIP != "127.0.0.1" || res.HTTP.DNSSource != "resolver" || gotHost != "pinned.test:"+port {
		t.Errorf("got remote %q dns_source %q server saw Host %q, want 127.0.0.1, resolver, pinned.test:%s",
			res.HTTP.RemoteIP, res.HTTP.DNSSource, gotHost, port)
	}
	ns.SetDelay(0)

	res = runHTTP(t, &Check{Target: "http://missing.test:" + port + "/", HTTP: HTTPOptions{DialOptions: DialOptions{Resolver: ns.Addr}}})
	wantHTTPClass(t, res, result.ErrDNSNXDomain)
	wantBetween(t, "dns_ms", res.DNSMs, 0, time.Second)
	wantAbsent(t, "connect_ms", res.ConnectMs)
	wantBetween(t, "total_ms", res.TotalMs, 0, time.Second)

	// both: one result per family; this name has no AAAA.
	rs := runHTTPAll(t, &Check{Target: "http://pinned.test:" + port + "/", HTTP: HTTPOptions{DialOptions: DialOptions{Resolver: ns.Addr, Family: "both"}}})
	if len(rs) != 2 {
		t.Fatalf("got %d results with family both, want 2", len(rs))
	}
	wantHTTPClass(t, rs[0], "")
	if rs[1].OK || !strings.HasPrefix(rs[1].Error, "dns_") || rs[1].ConnectMs != nil {
		t.Errorf("ip6 result: got ok=%v error %q connect %v, want a dns_ failure before any connect", rs[1].OK, rs[1].Error, rs[1].ConnectMs)
	}
}

func TestHTTPSPinnedKeepsSNI(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	ns := testsrv.NewDNS(t, "example.com. 60 IN A 127.0.0.1")
	res := runHTTP(t, &Check{Target: "https://example.com:" + port + "/",
		HTTP: HTTPOptions{CAFile: writeTestPEM(t, srv.Certificate().Raw), DialOptions: DialOptions{Resolver: ns.Addr}}})
	wantHTTPClass(t, res, "")
	if res.TLS == nil || res.TLS.TLSSNI != "example.com" || res.HTTP.RemoteIP != "127.0.0.1" {
		t.Errorf("got tls %+v remote %q, want SNI example.com to 127.0.0.1", res.TLS, res.HTTP.RemoteIP)
	}
}

func TestHTTPCacheBust(t *testing.T) {
	var mu sync.Mutex
	var queries []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		queries = append(queries, r.URL.RawQuery)
		mu.Unlock()
	}))
	defer srv.Close()
	rs := runHTTPAll(t, &Check{Target: srv.URL + "/o?v=2", HTTP: HTTPOptions{CacheBust: true, Warm: true}})
	if len(rs) != 2 || len(queries) != 2 {
		t.Fatalf("got %d results and %d requests, want 2 and 2", len(rs), len(queries))
	}
	for i, q := range queries {
		if !strings.HasPrefix(q, "v=2&"+cacheBustParam+"=") || len(q) != len("v=2&"+cacheBustParam+"=")+16 {
			t.Errorf("request %d: got query %q, want v=2&%s=<16 hex>", i, q, cacheBustParam)
		}
		if rs[i].HTTP.URL != srv.URL+"/o?"+q {
			t.Errorf("result %d: got url %q, want the busted URL", i, rs[i].HTTP.URL)
		}
	}
	if queries[0] == queries[1] {
		t.Errorf("cold and warm requests used the same buster %q", queries[0])
	}
}

func TestHTTPCDNFields(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Server", "cloudflare")
		w.Header().Set("CF-RAY", "8a1b2c3d4e5f6789-AMS")
		w.Header().Set("CF-Cache-Status", "HIT")
		w.Header().Set("Age", "30")
	}))
	defer srv.Close()
	res := runHTTP(t, &Check{Target: srv.URL})
	if h := res.HTTP; h.CDN != "cloudflare" || h.CDNPoP != "AMS" || h.CDNCache != "hit" {
		t.Errorf("got cdn %q pop %q cache %q, want cloudflare AMS hit", h.CDN, h.CDNPoP, h.CDNCache)
	}
}

func TestHTTPBadOptions(t *testing.T) {
	for _, o := range []HTTPOptions{
		{DialOptions: DialOptions{Family: "ipx"}},
		{MaxRedirects: -1},
	} {
		if _, err := HTTP(context.Background(), &Check{Name: "bad", Kind: "http", Target: "http://example.com/", HTTP: o}); err == nil {
			t.Errorf("HTTP with %+v: got no error, want one", o)
		}
	}
}
