package probe

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/meridian-net/meridian/agent/probe/internal/testsrv"
	"github.com/meridian-net/meridian/internal/result"
)

func TestDNSDelayLandsInDNSPhase(t *testing.T) {
	const d = 200 * time.Millisecond
	ns := testsrv.NewDNS(t, "svc.test. 300 IN A 127.0.0.1", "svc.test. 60 IN A 127.0.0.2")
	ns.SetDelay(d)
	c := &Check{Kind: result.KindDNS, Target: "svc.test", DNS: DNSOptions{Resolvers: []string{ns.Addr}}}
	res := runNetProbe(t, c, 5*time.Second)[0]
	wantOutcome(t, res, "")
	wantPhaseIn(t, "dns_ms", res.DNSMs, d, d+slack)
	if res.TotalMs == nil || res.DNSMs == nil || *res.TotalMs < *res.DNSMs {
		t.Errorf("got total_ms %v < dns_ms %v", res.TotalMs, res.DNSMs)
	}
	wantPhaseAbsent(t, "connect_ms", res.ConnectMs)
	want := &result.DNS{Resolver: ns.Addr, QType: "A", Rcode: "NOERROR", Transport: "udp", TTL: res.DNS.TTL,
		Answers: []string{"svc.test. 300 IN A 127.0.0.1", "svc.test. 60 IN A 127.0.0.2"}}
	if res.DNS == nil || res.DNS.TTL == nil || *res.DNS.TTL != 60 || !dnsEqual(res.DNS, want) {
		t.Errorf("got dns fields %+v, want %+v with ttl 60", res.DNS, want)
	}
}

func dnsEqual(a, b *result.DNS) bool {
	return a.Resolver == b.Resolver && a.QType == b.QType && a.Rcode == b.Rcode &&
		a.Transport == b.Transport && slices.Equal(a.Answers, b.Answers)
}

func TestDNSOutcomes(t *testing.T) {
	ns := testsrv.NewDNS(t,
		"svc.test. 60 IN A 127.0.0.1",
		"big.test. 60 IN TXT \"too big for udp\"",
		"svc.test. 60 IN MX 10 mail.svc.test.")
	ns.SetRcode("sick.test.", dns.RcodeServerFailure)
	ns.SetRcode("closed.test.", dns.RcodeRefused)
	ns.SetRcode("odd.test.", dns.RcodeNotImplemented)
	ns.Truncate("big.test.")
	for _, tc := range []struct {
		name, target string
		opts         DNSOptions
		class        string
		rcode        string
		transport    string
	}{
		{"ok", "svc.test", DNSOptions{}, "", "NOERROR", "udp"},
		{"mx", "svc.test", DNSOptions{QType: "mx"}, "", "NOERROR", "udp"},
		{"over tcp", "svc.test", DNSOptions{Transport: "tcp"}, "", "NOERROR", "tcp"},
		{"truncated retries over tcp", "big.test", DNSOptions{QType: "TXT"}, "", "NOERROR", "udp+tcp"},
		{"nxdomain", "nope.test", DNSOptions{}, result.ErrDNSNXDomain, "NXDOMAIN", "udp"},
		{"nxdomain expected", "nope.test", DNSOptions{ExpectRcode: "nxdomain"}, "", "NXDOMAIN", "udp"},
		{"noerror when nxdomain expected", "svc.test", DNSOptions{ExpectRcode: "NXDOMAIN"}, result.ErrDNS, "NOERROR", "udp"},
		{"servfail", "sick.test", DNSOptions{}, result.ErrDNSServfail, "SERVFAIL", "udp"},
		{"refused", "closed.test", DNSOptions{}, result.ErrDNSRefused, "REFUSED", "udp"},
		{"other rcode", "odd.test", DNSOptions{}, result.ErrDNS, "NOTIMP", "udp"},
		{"no answer", "svc.test", DNSOptions{QType: "AAAA"}, result.ErrDNSNoAnswer, "NOERROR", "udp"},
		{"answer contains", "svc.test", DNSOptions{ExpectAnswerContains: "127.0.0.1"}, "", "NOERROR", "udp"},
		{"answer lacks", "svc.test", DNSOptions{ExpectAnswerContains: "192.0.2.1"}, result.ErrDNSAnswerMismatch, "NOERROR", "udp"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.Resolvers = []string{ns.Addr}
			c := &Check{Kind: result.KindDNS, Target: tc.target, DNS: tc.opts}
			res := runNetProbe(t, c, 5*time.Second)[0]
			wantOutcome(t, res, tc.class)
			if res.DNS == nil || res.DNS.Rcode != tc.rcode || res.DNS.Transport != tc.transport {
				t.Fatalf("got dns fields %+v, want rcode %s over %s", res.DNS, tc.rcode, tc.transport)
			}
			if res.DNSMs == nil {
				t.Errorf("got no dns_ms")
			}
		})
	}
	if got := ns.Queries("tcp"); got != 2 {
		t.Errorf("got %d TCP queries, want 2 (one forced, one after truncation)", got)
	}
}

// Resolvers are asked concurrently: a slow one does not delay a fast one.
func TestDNSResolversMeasuredApart(t *testing.T) {
	const d = 300 * time.Millisecond
	slow := testsrv.NewDNS(t, "svc.test. 60 IN A 127.0.0.1")
	slow.SetDelay(d)
	fast := testsrv.NewDNS(t, "svc.test. 60 IN A 127.0.0.1")
	c := &Check{Kind: result.KindDNS, Target: "svc.test", DNS: DNSOptions{Resolvers: []string{slow.Addr, fast.Addr}}}
	out := runNetProbe(t, c, 5*time.Second)
	if len(out) != 2 || out[0].Resolver != slow.Addr || out[1].Resolver != fast.Addr {
		t.Fatalf("got %d results, want one per resolver in order", len(out))
	}
	wantPhaseIn(t, "slow dns_ms", out[0].DNSMs, d, d+slack)
	wantPhaseIn(t, "fast dns_ms", out[1].DNSMs, 0, d/2)
}

func TestDNSTimeout(t *testing.T) {
	const timeout = 300 * time.Millisecond
	ns := testsrv.NewDNS(t, "svc.test. 60 IN A 127.0.0.1")
	ns.SetDelay(5 * time.Second)
	for _, transport := range []string{"udp", "tcp"} {
		c := &Check{Kind: result.KindDNS, Target: "svc.test", DNS: DNSOptions{Resolvers: []string{ns.Addr}, Transport: transport}}
		res := runNetProbe(t, c, timeout)[0]
		wantOutcome(t, res, result.ErrDNSTimeout)
		wantPhaseIn(t, transport+" dns_ms", res.DNSMs, timeout-10*time.Millisecond, timeout+slack)
	}
}

func TestDNSBadOptions(t *testing.T) {
	for _, tc := range []struct {
		target string
		opts   DNSOptions
		want   string
	}{
		{"", DNSOptions{}, "is not a domain name"},
		{"svc.test", DNSOptions{QType: "BOGUS"}, `unknown qtype "BOGUS"`},
		{"svc.test", DNSOptions{Transport: "quic"}, `unknown transport "quic"`},
		{"svc.test", DNSOptions{ExpectRcode: "FINE"}, `unknown expect_rcode "FINE"`},
		{"svc.test", DNSOptions{Resolvers: []string{"1.1.1.1:"}}, `resolver "1.1.1.1:"`},
		{"svc.test", DNSOptions{Transport: "dot"}, "transport dot needs resolvers"},
		{"svc.test", DNSOptions{Transport: "doh", Resolvers: []string{"http://dns.test/dns-query"}}, `doh resolver "http://dns.test/dns-query": want an https:// URL`},
		{"svc.test", DNSOptions{Transport: "doh", Resolvers: []string{"dns.test"}, DoHMethod: "PUT"}, `unknown doh_method "PUT"`},
		{"svc.test", DNSOptions{Transport: "udp", DoHMethod: "GET"}, "doh_method is for transport doh, not udp"},
	} {
		c := &Check{Name: "bad", Kind: result.KindDNS, Target: tc.target, DNS: tc.opts}
		_, err := DNS(context.Background(), c)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: got error %v, want %q", tc.opts, err, tc.want)
		}
	}
}

func TestDNSResolverAddresses(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(conf, []byte("search example.org\nnameserver ::1\nnameserver 192.0.2.53\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	old := resolvConf
	t.Cleanup(func() { resolvConf = old })
	for _, tc := range []struct {
		conf string
		opts DNSOptions
		want []string
	}{
		{conf, DNSOptions{}, []string{"[::1]:53"}},
		{filepath.Join(t.TempDir(), "missing"), DNSOptions{}, []string{"127.0.0.1:53"}},
		{conf, DNSOptions{Resolvers: []string{"1.1.1.1", "[2606:4700::1111]", "2606:4700::1111", "dns.test:5353"}},
			[]string{"1.1.1.1:53", "[2606:4700::1111]:53", "[2606:4700::1111]:53", "dns.test:5353"}},
		{conf, DNSOptions{Transport: "dot", Resolvers: []string{"1.1.1.1", "dns.test:8853"}},
			[]string{"1.1.1.1:853", "dns.test:8853"}},
		{conf, DNSOptions{Transport: "DoH", Resolvers: []string{"dns.test", "[::1]:8443", "https://dns.test/q?x=1"}},
			[]string{"https://dns.test/dns-query", "https://[::1]:8443/dns-query", "https://dns.test/q?x=1"}},
	} {
		resolvConf = tc.conf
		got, err := dnsServers(&tc.opts, tc.opts.DNSTransport())
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("%s %v: got %v, %v, want %v", filepath.Base(tc.conf), tc.opts.Resolvers, got, err, tc.want)
		}
	}
}
