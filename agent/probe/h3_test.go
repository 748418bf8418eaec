package probe

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/meridian-net/meridian/agent/probe/internal/testsrv"
	"github.com/meridian-net/meridian/internal/result"
)

// h3Server starts an HTTP/3 server with a certificate for 127.0.0.1 and
// h3.test, and returns it with the CA file that trusts it.
func h3Server(t *testing.T, cfg testsrv.H3Config) (*testsrv.H3, string) {
	t.Helper()
	ca := testsrv.NewCA(t, "h3 CA")
	cfg.Cert = ca.Issue(t, testsrv.Leaf{Names: []string{"h3.test", "127.0.0.1"}})
	if cfg.Handler == nil {
		cfg.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, "over quic")
		})
	}
	return testsrv.NewH3(t, cfg), ca.WritePEM(t)
}

// h3Delay is what the phases test injects: as long as the tls tests'
// delay, since a QUIC handshake costs more CPU than TCP+TLS under -race
// on a loaded machine, and an undelayed phase must stay under it.
const h3Delay = 300 * time.Millisecond

// Each injected delay lands in its own phase, and only there.
func TestHTTP3Phases(t *testing.T) {
	slowHandler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(h3Delay)
		fmt.Fprint(w, "over quic")
	})
	for _, tc := range []struct {
		name               string
		cfg                testsrv.H3Config
		connect, tls, ttfb bool // which phase holds the delay
	}{
		{"first datagram is connect", testsrv.H3Config{First: h3Delay}, true, false, false},
		{"rest of the flight is tls", testsrv.H3Config{Flight: h3Delay}, false, true, false},
		{"handler is ttfb", testsrv.H3Config{Handler: slowHandler}, false, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, ca := h3Server(t, tc.cfg)
			res := runHTTP(t, &Check{Target: "https://" + srv.Addr + "/q", HTTP: HTTPOptions{Proto: "h3", CAFile: ca}})
			wantHTTPClass(t, res, "")
			t.Logf("connect %v tls %v ttfb %v total %v", durOf(res.ConnectMs), durOf(res.TLSMs), durOf(res.TTFBMs), durOf(res.TotalMs))
			for _, p := range []struct {
				name    string
				got     *float64
				delayed bool
			}{{"connect_ms", res.ConnectMs, tc.connect}, {"tls_ms", res.TLSMs, tc.tls}, {"ttfb_ms", res.TTFBMs, tc.ttfb}} {
				if p.delayed {
					wantBetween(t, p.name, p.got, h3Delay, h3Delay+time.Second)
				} else {
					wantBetween(t, p.name, p.got, 0, h3Delay)
				}
			}
			wantBetween(t, "transfer_ms", res.TransferMs, 0, h3Delay)
			wantBetween(t, "total_ms", res.TotalMs, h3Delay, h3Delay+time.Second)
			wantAbsent(t, "dns_ms", res.DNSMs)
			h := res.HTTP
			if h.Proto != "HTTP/3.0" || h.Status != 200 || *h.Bytes != 9 || h.RemoteIP != "127.0.0.1" ||
				h.ConnReused == nil || *h.ConnReused || h.DNSSource != "ip" {
				t.Errorf("got http fields %+v, want HTTP/3.0, 200, 9 bytes from 127.0.0.1, a fresh connection", h)
			}
			tl := res.TLS
			if tl == nil || tl.TLSVersion != "TLS 1.3" || tl.TLSALPN != "h3" || tl.TLSCipher == "" ||
				len(tl.CertSHA256) != 64 || tl.CertDaysLeft == nil || !hasString(tl.CertSANs, "h3.test") {
				t.Fatalf("got tls fields %+v, want TLS 1.3, ALPN h3, a cipher and the certificate", tl)
			}
		})
	}
}

func TestHTTP3NameWarmAndTrust(t *testing.T) {
	srv, ca := h3Server(t, testsrv.H3Config{})
	_, port, _ := net.SplitHostPort(srv.Addr)
	ns := testsrv.NewDNS(t, "h3.test. 60 IN A 127.0.0.1")
	target := "https://h3.test:" + port + "/"
	rs := runHTTPAll(t, &Check{Target: target,
		HTTP: HTTPOptions{Proto: "h3", CAFile: ca, Warm: true, DialOptions: DialOptions{Resolver: ns.Addr}}})
	if len(rs) != 2 {
		t.Fatalf("got %d results, want the cold and the warm one", len(rs))
	}
	cold, warm := rs[0], rs[1]
	wantHTTPClass(t, cold, "")
	wantHTTPClass(t, warm, "")
	if cold.DNSMs == nil || cold.TLS == nil || cold.TLS.TLSSNI != "h3.test" || cold.HTTP.DNSSource != "resolver" {
		t.Errorf("cold: got dns %v tls %+v, want a dns phase and SNI h3.test", cold.DNSMs, cold.TLS)
	}
	if warm.HTTP.ConnReused == nil || !*warm.HTTP.ConnReused || warm.HTTP.Proto != "HTTP/3.0" {
		t.Errorf("warm: got %+v, want conn_reused over HTTP/3.0", warm.HTTP)
	}
	wantAbsent(t, "warm connect_ms", warm.ConnectMs)
	wantAbsent(t, "warm tls_ms", warm.TLSMs)

	res := runHTTP(t, &Check{Target: "https://" + srv.Addr + "/", HTTP: HTTPOptions{Proto: "h3"}})
	wantHTTPClass(t, res, result.ErrTLSCertUntrusted)
	wantBetween(t, "untrusted connect_ms", res.ConnectMs, 0, time.Second)
	wantBetween(t, "untrusted tls_ms", res.TLSMs, 0, time.Second)
	if res.TLS == nil || len(res.TLS.CertSHA256) != 64 {
		t.Errorf("got tls fields %+v, want the untrusted certificate described", res.TLS)
	}
}

// Nothing answers on a UDP port: QUIC cannot tell, so the handshake times
// out in the connect phase.
func TestHTTP3NoServer(t *testing.T) {
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	pc.Close()
	res := runHTTP(t, &Check{Target: "https://" + addr + "/", Timeout: 300 * time.Millisecond, HTTP: HTTPOptions{Proto: "h3"}})
	wantHTTPClass(t, res, result.ErrConnectTimeout)
	wantBetween(t, "connect_ms", res.ConnectMs, 250*time.Millisecond, 300*time.Millisecond+time.Second)
	wantAbsent(t, "tls_ms", res.TLSMs)
}

// An h2 result reports the Alt-Svc header, and the port it advertises
// answers a check with proto: h3.
func TestHTTPAltSvcThenH3(t *testing.T) {
	h2 := httptest.NewUnstartedServer(nil)
	h2.EnableHTTP2 = true
	h2.StartTLS()
	defer h2.Close()
	_, port, _ := net.SplitHostPort(h2.Listener.Addr().String())
	altSvc := `h3=":` + port + `"; ma=86400`
	h2.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Alt-Svc", altSvc)
	})
	var portN int
	fmt.Sscan(port, &portN)
	h3, ca := h3Server(t, testsrv.H3Config{Port: portN})

	res := runHTTP(t, &Check{Target: h2.URL + "/", HTTP: HTTPOptions{CAFile: writeTestPEM(t, h2.Certificate().Raw)}})
	wantHTTPClass(t, res, "")
	if res.HTTP.Proto != "HTTP/2.0" || res.HTTP.AltSvc != altSvc {
		t.Fatalf("got proto %q alt_svc %q, want HTTP/2.0 and %q", res.HTTP.Proto, res.HTTP.AltSvc, altSvc)
	}
	res = runHTTP(t, &Check{Target: "https://" + h3.Addr + "/", HTTP: HTTPOptions{Proto: "h3", CAFile: ca}})
	wantHTTPClass(t, res, "")
	if res.HTTP.Proto != "HTTP/3.0" || res.HTTP.AltSvc != "" {
		t.Errorf("got proto %q alt_svc %q, want HTTP/3.0 and none", res.HTTP.Proto, res.HTTP.AltSvc)
	}
}
