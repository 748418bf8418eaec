package probe

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/meridian-net/meridian/agent/probe/internal/testsrv"
	"github.com/meridian-net/meridian/internal/result"
)

// slack bounds how late a phase may end on a busy 2-core CI machine; lower
// bounds are tight, upper bounds carry this.
const slack = 800 * time.Millisecond

// runNetProbe runs c with its kind's probe under timeout and checks every
// result against the wire contract.
func runNetProbe(t *testing.T, c *Check, timeout time.Duration) []*result.Result {
	t.Helper()
	if c.Name == "" {
		c.Name = "test"
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out, err := Probes[c.Kind](ctx, c)
	if err != nil {
		t.Fatalf("got error %v, want results", err)
	}
	for _, res := range out {
		if err := res.Validate(); err != nil {
			t.Errorf("result breaks the contract: %v", err)
		}
		if res.TotalMs == nil {
			t.Errorf("got no total_ms")
		}
	}
	return out
}

// wantPhaseIn checks a phase lasted at least lo and at most hi.
func wantPhaseIn(t *testing.T, name string, p *float64, lo, hi time.Duration) {
	t.Helper()
	if p == nil {
		t.Errorf("%s: got absent, want %v..%v", name, lo, hi)
		return
	}
	if got := time.Duration(*p * float64(time.Millisecond)); got < lo || got > hi {
		t.Errorf("%s: got %v, want %v..%v", name, got, lo, hi)
	}
}

func wantPhaseAbsent(t *testing.T, name string, p *float64) {
	t.Helper()
	if p != nil {
		t.Errorf("%s: got %v ms, want absent", name, *p)
	}
}

// wantOutcome checks ok and the error class ("" for ok).
func wantOutcome(t *testing.T, res *result.Result, class string) {
	t.Helper()
	if res.OK != (class == "") || res.Error != class {
		t.Errorf("got ok=%v error=%q (%s), want error %q", res.OK, res.Error, res.ErrorMessage, class)
	}
}

func TestTCPDNSDelayLandsInDNSPhase(t *testing.T) {
	const d = 200 * time.Millisecond
	ns := testsrv.NewDNS(t, "svc.test. 60 IN A 127.0.0.1")
	ns.SetDelay(d)
	_, port, _ := net.SplitHostPort(testsrv.NewTCP(t, nil))
	c := &Check{Kind: result.KindTCP, Target: "svc.test.:" + port, TCP: TCPOptions{DialOptions: DialOptions{Family: "ip4", Resolver: ns.Addr}}}
	res := runNetProbe(t, c, 5*time.Second)[0]
	wantOutcome(t, res, "")
	wantPhaseIn(t, "dns_ms", res.DNSMs, d, d+slack)
	wantPhaseIn(t, "connect_ms", res.ConnectMs, 0, d/2)
	wantPhaseAbsent(t, "tls_ms", res.TLSMs)
	if res.HTTP == nil || res.RemoteIP != "127.0.0.1" || res.DNSSource != "resolver" {
		t.Errorf("got remote %+v, want 127.0.0.1 from the resolver", res.HTTP)
	}
}

func TestTCPOutcomes(t *testing.T) {
	ns := testsrv.NewDNS(t, "svc.test. 60 IN A 127.0.0.1", "sick.test. 60 IN A 127.0.0.1", "v6.test. 60 IN AAAA ::1")
	ns.SetRcode("sick.test.", 2) // SERVFAIL
	open := testsrv.NewTCP(t, nil)
	_, port, _ := net.SplitHostPort(open)
	for _, tc := range []struct {
		name, target, family string
		class                string
		dns                  bool // dns_ms present
		connect              bool // connect_ms present
	}{
		{"address target", open, "", "", false, true},
		{"name", "svc.test.:" + port, "", "", true, true},
		{"refused", testsrv.ClosedPort(t), "", result.ErrConnectRefused, false, true},
		{"nxdomain", "nope.test.:" + port, "", result.ErrDNSNXDomain, true, false},
		{"servfail", "sick.test.:" + port, "", result.ErrDNSServfail, true, false},
		{"no address of family", "v6.test.:" + port, "ip4", result.ErrDNSNXDomain, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &Check{Kind: result.KindTCP, Target: tc.target, TCP: TCPOptions{DialOptions: DialOptions{Family: tc.family, Resolver: ns.Addr}}}
			res := runNetProbe(t, c, 5*time.Second)[0]
			wantOutcome(t, res, tc.class)
			if (res.DNSMs != nil) != tc.dns || (res.ConnectMs != nil) != tc.connect {
				t.Errorf("got dns_ms=%v connect_ms=%v, want present: dns %v connect %v", res.DNSMs, res.ConnectMs, tc.dns, tc.connect)
			}
		})
	}
}

func TestTCPBothFamilies(t *testing.T) {
	ns := testsrv.NewDNS(t, "svc.test. 60 IN A 127.0.0.1", "dual.test. 60 IN A 127.0.0.1", "dual.test. 60 IN AAAA ::1")
	_, port, _ := net.SplitHostPort(testsrv.NewTCP(t, nil))
	for _, tc := range []struct {
		host      string
		wantIPs   [2]string
		v6Class   string // the v6 result's class; "connect" for any connect_* class
		wantV6DNS bool
	}{
		{"svc.test.", [2]string{"127.0.0.1", ""}, result.ErrDNSNoAnswer, true},
		{"dual.test.", [2]string{"127.0.0.1", "::1"}, "connect", true}, // nothing listens on [::1]:port
	} {
		t.Run(tc.host, func(t *testing.T) {
			c := &Check{Kind: result.KindTCP, Target: tc.host + ":" + port, TCP: TCPOptions{DialOptions: DialOptions{Family: "both", Resolver: ns.Addr}}}
			out := runNetProbe(t, c, 5*time.Second)
			if len(out) != 2 {
				t.Fatalf("got %d results, want one per family", len(out))
			}
			wantOutcome(t, out[0], "")
			for i, res := range out {
				got := ""
				if res.HTTP != nil {
					got = res.RemoteIP
				}
				if got != tc.wantIPs[i] || res.DNSMs == nil {
					t.Errorf("result %d: got remote ip %q dns_ms %v, want %q and dns_ms", i, got, res.DNSMs, tc.wantIPs[i])
				}
			}
			v6 := out[1]
			classOK := v6.Error == tc.v6Class || tc.v6Class == "connect" && strings.HasPrefix(v6.Error, "connect_")
			if v6.OK || !classOK {
				t.Errorf("v6 result: got ok=%v error %q, want %q", v6.OK, v6.Error, tc.v6Class)
			}
		})
	}
}

func TestTCPTimeouts(t *testing.T) {
	const timeout = 300 * time.Millisecond
	ns := testsrv.NewDNS(t, "slow.test. 60 IN A 127.0.0.1")
	ns.SetDelay(5 * time.Second)
	t.Run("dns", func(t *testing.T) {
		c := &Check{Kind: result.KindTCP, Target: "slow.test.:80", TCP: TCPOptions{DialOptions: DialOptions{Resolver: ns.Addr}}}
		res := runNetProbe(t, c, timeout)[0]
		wantOutcome(t, res, result.ErrDNSTimeout)
		wantPhaseIn(t, "dns_ms", res.DNSMs, timeout-10*time.Millisecond, timeout+slack)
		wantPhaseAbsent(t, "connect_ms", res.ConnectMs)
	})
	t.Run("connect", func(t *testing.T) {
		c := &Check{Kind: result.KindTCP, Target: testsrv.Blackhole(t)}
		res := runNetProbe(t, c, timeout)[0]
		wantOutcome(t, res, result.ErrConnectTimeout)
		wantPhaseAbsent(t, "dns_ms", res.DNSMs)
		wantPhaseIn(t, "connect_ms", res.ConnectMs, timeout-10*time.Millisecond, timeout+slack)
	})
}

func TestTCPBadOptions(t *testing.T) {
	for _, tc := range []struct{ target, family, want string }{
		{"svc.test", "", "is not HOST:PORT"},
		{"svc.test:http", "ip5", `unknown family "ip5"`},
		{"svc.test:99999", "", `bad port "99999"`},
		{"127.0.0.1:80", "ip6", "is not an ip6 address"},
	} {
		c := &Check{Name: "bad", Kind: result.KindTCP, Target: tc.target, TCP: TCPOptions{DialOptions: DialOptions{Family: tc.family}}}
		_, err := TCP(context.Background(), c)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s family %q: got error %v, want %q", tc.target, tc.family, err, tc.want)
		}
	}
}
