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
	"testing"
	"time"

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
	f("redirect not followed", Check{Target: "/moved"}, "", func(res *result.Result) {
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
	tr = &httpTrace{start: t0, connStart: at(0), connDone: at(5), tlsStart: at(5), hostIsIP: true}
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
