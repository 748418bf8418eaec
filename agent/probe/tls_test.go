package probe

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meridian-net/meridian/agent/probe/internal/testsrv"
	"github.com/meridian-net/meridian/internal/result"
)

// useSystemRoots makes pool the "system" trust store for one test.
func useSystemRoots(t *testing.T, pool *x509.CertPool) {
	t.Helper()
	old := systemRoots
	systemRoots = pool
	t.Cleanup(func() { systemRoots = old })
}

func TestTLSDelayLandsInTLSPhase(t *testing.T) {
	const d = 300 * time.Millisecond
	root := testsrv.NewCA(t, "Test Root")
	inter := root.Intermediate(t, "Test Intermediate")
	useSystemRoots(t, root.Pool())
	ns := testsrv.NewDNS(t, "svc.test. 60 IN A 127.0.0.1")
	cert := inter.Issue(t, testsrv.Leaf{Names: []string{"svc.test", "127.0.0.1"}})
	srv := testsrv.NewTLS(t, testsrv.TLSConfig{Cert: cert, Delay: d, OCSPStaple: []byte("staple")})
	_, port, _ := net.SplitHostPort(srv.Addr)

	c := &Check{Kind: result.KindTLS, Target: "svc.test.:" + port, TLS: TLSOptions{DialOptions: DialOptions{Resolver: ns.Addr}}}
	res := runNetProbe(t, c, 5*time.Second)[0]
	wantOutcome(t, res, "")
	wantPhaseIn(t, "tls_ms", res.TLSMs, d, d+slack)
	wantPhaseIn(t, "connect_ms", res.ConnectMs, 0, d/2)
	wantPhaseIn(t, "dns_ms", res.DNSMs, 0, d/2)
	if sni := srv.SNI(); !slices.Equal(sni, []string{"svc.test"}) {
		t.Errorf("server got SNI %q, want [svc.test]", sni)
	}
	sum := sha256.Sum256(cert.Leaf.Raw)
	notAfter := cert.Leaf.NotAfter.UTC()
	want := result.TLS{TLSVersion: "TLS 1.3", TLSALPN: "h2", TLSSNI: "svc.test",
		CertSubject: "CN=svc.test", CertIssuer: "CN=Test Intermediate,O=Meridian Test",
		CertSANs: []string{"svc.test", "127.0.0.1"}, CertNotAfter: &notAfter, CertSHA256: hex.EncodeToString(sum[:]),
		Trust: []result.TrustCheck{{Store: "system", Valid: true}}}
	got := res.TLS
	if got == nil {
		t.Fatal("got no tls fields")
	}
	if got.TLSVersion != want.TLSVersion || got.TLSALPN != want.TLSALPN || got.TLSSNI != want.TLSSNI ||
		got.CertSubject != want.CertSubject || got.CertIssuer != want.CertIssuer || !slices.Equal(got.CertSANs, want.CertSANs) ||
		!got.CertNotAfter.Equal(notAfter) || got.CertSHA256 != want.CertSHA256 || !slices.Equal(got.Trust, want.Trust) {
		t.Errorf("got tls fields\n%+v\nwant\n%+v", *got, want)
	}
	if got.TLSCipher == "" || got.OCSPStapled == nil || !*got.OCSPStapled || got.CertDaysLeft == nil || *got.CertDaysLeft < 89.9 || *got.CertDaysLeft > 90 {
		t.Errorf("got cipher %q, ocsp stapled %v, days left %v; want a cipher, stapled, 90 days", got.TLSCipher, got.OCSPStapled, got.CertDaysLeft)
	}
}

func TestTLSVerification(t *testing.T) {
	root := testsrv.NewCA(t, "Test Root")
	other := testsrv.NewCA(t, "Other Root")
	otherPEM := other.WritePEM(t)
	useSystemRoots(t, root.Pool())
	now := time.Now()
	good := testsrv.Leaf{Names: []string{"svc.test"}}
	sys := func(valid bool, class string) result.TrustCheck {
		return result.TrustCheck{Store: "system", Valid: valid, Error: class}
	}
	ca := func(valid bool, class string) result.TrustCheck {
		return result.TrustCheck{Store: "ca", Valid: valid, Error: class}
	}
	for _, tc := range []struct {
		name  string
		cert  tls.Certificate
		opts  TLSOptions
		class string
		trust []result.TrustCheck
	}{
		{"valid", root.Issue(t, good), TLSOptions{}, "", []result.TrustCheck{sys(true, "")}},
		{"expired", root.Issue(t, testsrv.Leaf{Names: good.Names, NotBefore: now.Add(-100 * 24 * time.Hour), NotAfter: now.Add(-24 * time.Hour)}),
			TLSOptions{}, result.ErrTLSCertExpired, []result.TrustCheck{sys(false, result.ErrTLSCertExpired)}},
		{"not yet valid", root.Issue(t, testsrv.Leaf{Names: good.Names, NotBefore: now.Add(24 * time.Hour), NotAfter: now.Add(100 * 24 * time.Hour)}),
			TLSOptions{}, result.ErrTLSCertNotYetValid, []result.TrustCheck{sys(false, result.ErrTLSCertNotYetValid)}},
		{"wrong name", root.Issue(t, testsrv.Leaf{Names: []string{"other.test"}}),
			TLSOptions{}, result.ErrTLSNameMismatch, []result.TrustCheck{sys(true, "")}},
		{"server_name overrides", root.Issue(t, testsrv.Leaf{Names: []string{"other.test"}}),
			TLSOptions{ServerName: "other.test"}, "", []result.TrustCheck{sys(true, "")}},
		{"self-signed", testsrv.SelfSigned(t, good),
			TLSOptions{}, result.ErrTLSCertUntrusted, []result.TrustCheck{sys(false, result.ErrTLSCertUntrusted)}},
		{"other CA", other.Issue(t, good),
			TLSOptions{}, result.ErrTLSCertUntrusted, []result.TrustCheck{sys(false, result.ErrTLSCertUntrusted)}},
		{"other CA trusted by extra bundle", other.Issue(t, good),
			TLSOptions{TrustStores: map[string]string{"ca": otherPEM}}, "", []result.TrustCheck{sys(false, result.ErrTLSCertUntrusted), ca(true, "")}},
		{"listed store must validate", root.Issue(t, good),
			TLSOptions{TrustStores: map[string]string{"ca": otherPEM}}, result.ErrTLSCertUntrusted, []result.TrustCheck{sys(true, ""), ca(false, result.ErrTLSCertUntrusted)}},
		{"insecure records but accepts", testsrv.SelfSigned(t, testsrv.Leaf{Names: []string{"other.test"}}),
			TLSOptions{InsecureSkipVerify: true}, "", []result.TrustCheck{sys(false, result.ErrTLSCertUntrusted)}},
		{"min days left", root.Issue(t, good),
			TLSOptions{MinDaysLeft: 100}, result.ErrTLSCertExpiring, []result.TrustCheck{sys(true, "")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := testsrv.NewTLS(t, testsrv.TLSConfig{Cert: tc.cert})
			_, port, _ := net.SplitHostPort(srv.Addr)
			// An /etc/hosts-free name: the target is an address, the name comes from server_name.
			if tc.opts.ServerName == "" {
				tc.opts.ServerName = "svc.test"
			}
			c := &Check{Kind: result.KindTLS, Target: "127.0.0.1:" + port, TLS: tc.opts}
			res := runNetProbe(t, c, 5*time.Second)[0]
			wantOutcome(t, res, tc.class)
			if res.TLS == nil || !slices.Equal(res.TLS.Trust, tc.trust) {
				t.Fatalf("got trust %+v, want %+v", res.TLS, tc.trust)
			}
			wantPhaseAbsent(t, "dns_ms", res.DNSMs)
			if res.ConnectMs == nil || res.TLSMs == nil {
				t.Errorf("got connect_ms %v tls_ms %v, want both", res.ConnectMs, res.TLSMs)
			}
		})
	}
}

func TestTLSAddressTarget(t *testing.T) {
	root := testsrv.NewCA(t, "Test Root")
	useSystemRoots(t, root.Pool())
	srv := testsrv.NewTLS(t, testsrv.TLSConfig{Cert: root.Issue(t, testsrv.Leaf{Names: []string{"127.0.0.1"}}), NextProtos: []string{}})
	res := runNetProbe(t, &Check{Kind: result.KindTLS, Target: srv.Addr}, 5*time.Second)[0]
	wantOutcome(t, res, "")
	if res.TLS == nil || res.TLSSNI != "" || res.TLSALPN != "" || res.DNSSource != "ip" {
		t.Errorf("got %+v, want no SNI, no ALPN, address from the target", res.TLS)
	}
	if got := srv.SNI(); !slices.Equal(got, []string{""}) {
		t.Errorf("server got SNI %q, want none", got)
	}
}

func TestTLSHandshakeFailures(t *testing.T) {
	const timeout = 300 * time.Millisecond
	ns := testsrv.NewDNS(t, "svc.test. 60 IN A 127.0.0.1")
	garbage := testsrv.NewTCP(t, func(c net.Conn) { c.Write([]byte("HTTP/1.1 400 Bad Request\r\n\r\n")) })
	silent := testsrv.NewTCP(t, nil)
	for _, tc := range []struct {
		name, addr, class string
		tlsAtLeast        time.Duration
	}{
		{"not tls", garbage, result.ErrTLSHandshake, 0},
		{"silent server", silent, result.ErrTimeout, timeout - 10*time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, port, _ := net.SplitHostPort(tc.addr)
			c := &Check{Kind: result.KindTLS, Target: "svc.test.:" + port, TLS: TLSOptions{DialOptions: DialOptions{Resolver: ns.Addr}}}
			res := runNetProbe(t, c, timeout)[0]
			wantOutcome(t, res, tc.class)
			wantPhaseIn(t, "dns_ms", res.DNSMs, 0, timeout)
			wantPhaseIn(t, "connect_ms", res.ConnectMs, 0, timeout)
			wantPhaseIn(t, "tls_ms", res.TLSMs, tc.tlsAtLeast, timeout+slack)
			if res.TLS != nil {
				t.Errorf("got tls fields %+v after a failed handshake, want none", res.TLS)
			}
		})
	}
}

func TestTLSBadOptions(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		opts TLSOptions
		want string
	}{
		{TLSOptions{TrustStores: map[string]string{"corp": filepath.Join(dir, "missing.pem")}}, `cannot read trust store "corp"`},
		{TLSOptions{TrustStores: map[string]string{"corp": notPEM}}, "no PEM certificates in it"},
		{TLSOptions{TrustStores: map[string]string{"system": notPEM}}, `trust store name "system" is reserved`},
		{TLSOptions{MinDaysLeft: -1}, "min_days_left -1 is negative"},
		{TLSOptions{DialOptions: DialOptions{Family: "ipx"}}, `unknown family "ipx"`},
	} {
		c := &Check{Name: "bad", Kind: result.KindTLS, Target: "svc.test", TLS: tc.opts}
		_, err := TLS(context.Background(), c)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: got error %v, want %q", tc.opts, err, tc.want)
		}
	}
}
