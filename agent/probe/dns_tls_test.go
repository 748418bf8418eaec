package probe

import (
	"net"
	"net/url"
	"testing"
	"time"

	"github.com/meridian-net/meridian/agent/probe/internal/testsrv"
	"github.com/meridian-net/meridian/internal/result"
)

// dnsTLSDelay is as long as the tls tests' delay: an undelayed phase
// must stay under it on a loaded machine under -race.
const dnsTLSDelay = 300 * time.Millisecond

// encryptedDNS is a DNS server answering svc.test over DoT and DoH with a
// certificate for 127.0.0.1 and dns.test, and the CA file trusting it.
type encryptedDNS struct {
	ns              *testsrv.DNS
	dot, doh, caPEM string
}

func newEncryptedDNS(t *testing.T, handshakeDelay time.Duration) *encryptedDNS {
	t.Helper()
	ca := testsrv.NewCA(t, "resolver CA")
	cfg := testsrv.TLSConfig{Cert: ca.Issue(t, testsrv.Leaf{Names: []string{"dns.test", "127.0.0.1"}}), Delay: handshakeDelay}
	ns := testsrv.NewDNS(t, "svc.test. 60 IN A 192.0.2.7")
	return &encryptedDNS{ns: ns, dot: ns.ServeDoT(cfg), doh: ns.ServeDoH(cfg), caPEM: ca.WritePEM(t)}
}

// A held handshake lands in tls_ms, a held answer in dns_ms; connect_ms
// holds neither, over both transports and both DoH methods.
func TestDNSEncryptedPhases(t *testing.T) {
	held := newEncryptedDNS(t, dnsTLSDelay)
	slow := newEncryptedDNS(t, 0)
	slow.ns.SetDelay(dnsTLSDelay)
	for _, tc := range []struct {
		name, transport, method string
		srv                     *encryptedDNS
		tlsHeld                 bool
	}{
		{"dot handshake", "dot", "", held, true},
		{"dot answer", "dot", "", slow, false},
		{"doh post handshake", "doh", "", held, true},
		{"doh post answer", "doh", "POST", slow, false},
		{"doh get answer", "doh", "GET", slow, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resolver := tc.srv.dot
			if tc.transport == "doh" {
				resolver = tc.srv.doh
			}
			c := &Check{Kind: result.KindDNS, Target: "svc.test", DNS: DNSOptions{Transport: tc.transport,
				Resolvers: []string{resolver}, CAFile: tc.srv.caPEM, DoHMethod: tc.method}}
			res := runNetProbe(t, c, 5*time.Second)[0]
			wantOutcome(t, res, "")
			t.Logf("connect %v tls %v dns %v total %v", durOf(res.ConnectMs), durOf(res.TLSMs), durOf(res.DNSMs), durOf(res.TotalMs))
			wantPhaseIn(t, "connect_ms", res.ConnectMs, 0, dnsTLSDelay)
			if tc.tlsHeld {
				wantPhaseIn(t, "tls_ms", res.TLSMs, dnsTLSDelay, dnsTLSDelay+slack)
				wantPhaseIn(t, "dns_ms", res.DNSMs, 0, dnsTLSDelay)
			} else {
				wantPhaseIn(t, "tls_ms", res.TLSMs, 0, dnsTLSDelay)
				wantPhaseIn(t, "dns_ms", res.DNSMs, dnsTLSDelay, dnsTLSDelay+slack)
			}
			wantPhaseIn(t, "total_ms", res.TotalMs, dnsTLSDelay, dnsTLSDelay+slack)
			d := res.DNS
			if d.Transport != tc.transport || d.Resolver != resolver || d.Rcode != "NOERROR" || len(d.Answers) != 1 || d.Answers[0] != "svc.test. 60 IN A 192.0.2.7" {
				t.Errorf("got dns fields %+v, want svc.test's A record from %s over %s", d, resolver, tc.transport)
			}
			if res.TLS == nil || res.TLS.TLSVersion != "TLS 1.3" || len(res.TLS.CertSHA256) != 64 || res.TLS.TLSSNI != "" {
				t.Errorf("got tls fields %+v, want TLS 1.3, the certificate, no SNI for an address", res.TLS)
			}
		})
	}
	// DoH went over h2 (the server offers it), with the method asked for.
	for _, q := range []string{"doh POST HTTP/2.0", "doh GET HTTP/2.0"} {
		if n := held.ns.Queries(q) + slow.ns.Queries(q); n == 0 {
			t.Errorf("the servers saw no %q query", q)
		}
	}
	if n := held.ns.Queries("tcp") + slow.ns.Queries("tcp"); n != 2 {
		t.Errorf("the servers saw %d DoT queries, want 2", n)
	}
}

// A resolver named by a host name: it is looked up outside the phases,
// and its name is the SNI and what the certificate must match.
func TestDNSEncryptedServerName(t *testing.T) {
	srv := newEncryptedDNS(t, 0)
	_, port, _ := net.SplitHostPort(srv.dot)
	c := &Check{Kind: result.KindDNS, Target: "svc.test", DNS: DNSOptions{Transport: "dot",
		Resolvers: []string{"localhost:" + port}, CAFile: srv.caPEM, ServerName: "dns.test"}}
	res := runNetProbe(t, c, 5*time.Second)[0]
	wantOutcome(t, res, "")
	if res.TLS == nil || res.TLS.TLSSNI != "dns.test" {
		t.Errorf("got tls fields %+v, want SNI dns.test", res.TLS)
	}
	c.DNS.ServerName = "other.test"
	res = runNetProbe(t, c, 5*time.Second)[0]
	wantOutcome(t, res, result.ErrTLSNameMismatch)
}

func TestDNSEncryptedFailures(t *testing.T) {
	srv := newEncryptedDNS(t, 0)
	u, _ := url.Parse(srv.doh)
	for _, tc := range []struct {
		name      string
		target    string
		o         DNSOptions
		class     string
		tls, dnsP bool // whether tls_ms and dns_ms are present
	}{
		{"untrusted", "svc.test", DNSOptions{Transport: "dot", Resolvers: []string{srv.dot}}, result.ErrTLSCertUntrusted, true, false},
		{"insecure", "svc.test", DNSOptions{Transport: "dot", Resolvers: []string{srv.dot}, InsecureSkipVerify: true}, "", true, true},
		{"refused", "svc.test", DNSOptions{Transport: "dot", Resolvers: []string{testsrv.ClosedPort(t)}}, result.ErrConnectRefused, false, false},
		{"not a doh path", "svc.test", DNSOptions{Transport: "doh", Resolvers: []string{"https://" + u.Host + "/nope"}, CAFile: srv.caPEM}, result.ErrDNS, true, true},
		{"nxdomain over doh", "nope.test", DNSOptions{Transport: "doh", Resolvers: []string{srv.doh}, CAFile: srv.caPEM}, result.ErrDNSNXDomain, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &Check{Kind: result.KindDNS, Target: tc.target, DNS: tc.o}
			res := runNetProbe(t, c, 5*time.Second)[0]
			wantOutcome(t, res, tc.class)
			wantPhaseIn(t, "connect_ms", res.ConnectMs, 0, time.Second)
			if (res.TLSMs != nil) != tc.tls || (res.DNSMs != nil) != tc.dnsP {
				t.Errorf("got tls_ms %v dns_ms %v, want present: tls %v, dns %v", res.TLSMs, res.DNSMs, tc.tls, tc.dnsP)
			}
		})
	}
}

// The query's deadline is the check's: a resolver that never answers over
// an established TLS connection is a dns_timeout with the handshake timed.
func TestDNSEncryptedTimeout(t *testing.T) {
	srv := newEncryptedDNS(t, 0)
	srv.ns.SetDelay(5 * time.Second)
	const timeout = 300 * time.Millisecond
	for _, transport := range []string{"dot", "doh"} {
		resolver := map[string]string{"dot": srv.dot, "doh": srv.doh}[transport]
		c := &Check{Kind: result.KindDNS, Target: "svc.test", DNS: DNSOptions{Transport: transport, Resolvers: []string{resolver}, CAFile: srv.caPEM}}
		res := runNetProbe(t, c, timeout)[0]
		wantOutcome(t, res, result.ErrDNSTimeout)
		wantPhaseIn(t, transport+" tls_ms", res.TLSMs, 0, timeout)
		wantPhaseIn(t, transport+" total_ms", res.TotalMs, timeout-10*time.Millisecond, timeout+slack)
	}
}
