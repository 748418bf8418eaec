package probe

import (
	"context"
	"errors"
	"strings"
	"syscall"
	"testing"
	"time"

	probing "github.com/prometheus-community/pro-bing"

	"github.com/meridian-net/meridian/agent/probe/internal/testsrv"
	"github.com/meridian-net/meridian/internal/result"
)

// runICMP runs an icmp check in the default mode (privileged as root); if
// the raw socket is refused it tries unprivileged ping, and if that is
// refused too the test fails saying how to allow one of them.
func runICMP(t *testing.T, c *Check) []*result.Result {
	t.Helper()
	c.Kind, c.Name = result.KindICMP, "ping"
	if c.Timeout == 0 {
		c.Timeout = 5 * time.Second
	}
	rs, err := ICMP(context.Background(), c)
	if err != nil {
		t.Logf("default (privileged) mode refused, trying unprivileged: %v", err)
		c.ICMP.Privileged = new(false)
		var err2 error
		if rs, err2 = ICMP(context.Background(), c); err2 != nil {
			t.Fatalf("cannot ping at all: privileged: %v; unprivileged: %v\n"+
				"run the tests as root (or with CAP_NET_RAW), or allow unprivileged ping: "+
				"sysctl -w net.ipv4.ping_group_range=\"0 2147483647\"", err, err2)
		}
	}
	for i, r := range rs {
		if err := r.Validate(); err != nil {
			t.Errorf("result %d does not validate: %v", i, err)
		}
	}
	return rs
}

func TestICMPLoopback(t *testing.T) {
	rs := runICMP(t, &Check{Target: "127.0.0.1", ICMP: ICMPOptions{Count: 4, Interval: 20 * time.Millisecond}})
	if len(rs) != 1 {
		t.Fatalf("got %d results, want 1", len(rs))
	}
	res := rs[0]
	wantHTTPClass(t, res, "")
	p := res.ICMP
	if p == nil || p.Sent != 4 || p.Received != 4 || p.LossPct != 0 || p.Dups != 0 {
		t.Fatalf("got icmp %+v, want 4 sent, 4 received, no loss", p)
	}
	if *p.MinMs > *p.AvgMs || *p.AvgMs > *p.MaxMs || *p.StddevMs < 0 || *p.MaxMs > 500 {
		t.Errorf("got min %v avg %v max %v stddev %v, want min ≤ avg ≤ max on loopback", *p.MinMs, *p.AvgMs, *p.MaxMs, *p.StddevMs)
	}
	// Three intervals pass between the first echo and the last.
	wantBetween(t, "total_ms", res.TotalMs, 3*20*time.Millisecond, time.Second)
	wantAbsent(t, "dns_ms", res.DNSMs)
	if res.HTTP == nil || res.HTTP.RemoteIP != "127.0.0.1" || res.HTTP.DNSSource != "ip" {
		t.Errorf("got %+v, want remote_ip 127.0.0.1 and dns_source ip", res.HTTP)
	}
}

func TestICMPResolvesName(t *testing.T) {
	ns := testsrv.NewDNS(t, "ping.test. 60 IN A 127.0.0.1")
	ns.SetDelay(50 * time.Millisecond)
	rs := runICMP(t, &Check{Target: "ping.test", ICMP: ICMPOptions{Count: 2, Interval: 10 * time.Millisecond,
		DialOptions: DialOptions{Resolver: ns.Addr, Family: "ip4"}}})
	res := rs[0]
	wantHTTPClass(t, res, "")
	wantBetween(t, "dns_ms", res.DNSMs, 50*time.Millisecond, time.Second)
	if res.HTTP.DNSSource != "resolver" || res.ICMP.Received != 2 {
		t.Errorf("got dns_source %q received %d, want resolver and 2", res.HTTP.DNSSource, res.ICMP.Received)
	}
	ns.SetDelay(0)

	rs = runICMP(t, &Check{Target: "nothing.test", ICMP: ICMPOptions{DialOptions: DialOptions{Resolver: ns.Addr}}})
	wantHTTPClass(t, rs[0], result.ErrDNSNXDomain)
	if rs[0].ICMP != nil || rs[0].DNSMs == nil {
		t.Errorf("got icmp %+v dns_ms %v, want no echoes and a dns time", rs[0].ICMP, rs[0].DNSMs)
	}
}

// The echoes must fit the timeout: the interval shrinks rather than the
// run outliving its deadline.
func TestICMPIntervalFitsTimeout(t *testing.T) {
	start := time.Now()
	rs := runICMP(t, &Check{Target: "127.0.0.1", Timeout: 400 * time.Millisecond,
		ICMP: ICMPOptions{Count: 5, Interval: time.Second}})
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("took %v, want about the 400ms timeout", took)
	}
	res := rs[0]
	wantHTTPClass(t, res, "")
	if res.ICMP.Sent != 5 || res.ICMP.Received != 5 {
		t.Errorf("got %d sent %d received, want all 5 within the timeout", res.ICMP.Sent, res.ICMP.Received)
	}
	wantBetween(t, "total_ms", res.TotalMs, 0, 400*time.Millisecond+100*time.Millisecond)
}

// Unprivileged mode either works or fails with the way to allow it; it is
// never silently something else.
func TestICMPUnprivileged(t *testing.T) {
	c := &Check{Name: "ping", Kind: "icmp", Target: "127.0.0.1", Timeout: 2 * time.Second,
		ICMP: ICMPOptions{Count: 2, Interval: 10 * time.Millisecond, Privileged: new(false)}}
	rs, err := ICMP(context.Background(), c)
	if err != nil {
		if !strings.Contains(err.Error(), "ping_group_range") {
			t.Errorf("got error %q, want it to say how to allow unprivileged ping", err)
		}
		return
	}
	wantHTTPClass(t, rs[0], "")
}

func TestICMPBadOptions(t *testing.T) {
	for name, c := range map[string]Check{
		"port":     {Target: "127.0.0.1:80"},
		"size":     {Target: "127.0.0.1", ICMP: ICMPOptions{Size: 8}},
		"count":    {Target: "127.0.0.1", ICMP: ICMPOptions{Count: -1}},
		"family":   {Target: "127.0.0.1", ICMP: ICMPOptions{DialOptions: DialOptions{Family: "ip6"}}},
		"interval": {Target: "127.0.0.1", ICMP: ICMPOptions{Interval: -time.Second}},
	} {
		if _, err := ICMP(context.Background(), &c); err == nil {
			t.Errorf("%s: got no error, want one", name)
		}
	}
}

// The statistics → result mapping, with pro-bing's statistics made up.
func TestJudgeICMP(t *testing.T) {
	ms := func(f float64) time.Duration { return time.Duration(f * 1e6) }
	for _, tc := range []struct {
		name    string
		st      probing.Statistics
		sendErr error
		class   string
		want    result.ICMP
	}{
		{"all back", probing.Statistics{PacketsSent: 3, PacketsRecv: 3, MinRtt: ms(1), AvgRtt: ms(2), MaxRtt: ms(3), StdDevRtt: ms(0.5)},
			nil, "", result.ICMP{Sent: 3, Received: 3, MinMs: new(1.0), AvgMs: new(2.0), MaxMs: new(3.0), StddevMs: new(0.5)}},
		{"some lost, dups", probing.Statistics{PacketsSent: 4, PacketsRecv: 1, PacketsRecvDuplicates: 2, PacketLoss: 75,
			MinRtt: ms(7), AvgRtt: ms(7), MaxRtt: ms(7)},
			nil, "", result.ICMP{Sent: 4, Received: 1, Dups: 2, LossPct: 75, MinMs: new(7.0), AvgMs: new(7.0), MaxMs: new(7.0), StddevMs: new(0.0)}},
		{"all lost", probing.Statistics{PacketsSent: 3, PacketLoss: 100},
			nil, result.ErrICMPLoss, result.ICMP{Sent: 3, LossPct: 100}},
		{"unreachable", probing.Statistics{},
			syscall.ENETUNREACH, result.ErrConnectUnreach, result.ICMP{LossPct: 100}},
		{"send refused", probing.Statistics{PacketsSent: 1, PacketLoss: 100},
			errors.New("sendto: message too long"), result.ErrICMPLoss, result.ICMP{Sent: 1, LossPct: 100}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := &result.Result{}
			judgeICMP(res, &tc.st, tc.sendErr, "192.0.2.1")
			wantHTTPClass(t, res, tc.class)
			if !strings.Contains(res.ErrorMessage, "192.0.2.1") && tc.class != "" {
				t.Errorf("got message %q, want it to name the address", res.ErrorMessage)
			}
			got := *res.ICMP
			if got.Sent != tc.want.Sent || got.Received != tc.want.Received || got.Dups != tc.want.Dups || got.LossPct != tc.want.LossPct {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
			for _, f := range []struct {
				name      string
				got, want *float64
			}{{"min", got.MinMs, tc.want.MinMs}, {"avg", got.AvgMs, tc.want.AvgMs},
				{"max", got.MaxMs, tc.want.MaxMs}, {"stddev", got.StddevMs, tc.want.StddevMs}} {
				if (f.got == nil) != (f.want == nil) || f.got != nil && *f.got != *f.want {
					t.Errorf("got %s %v, want %v", f.name, ptrStr(f.got), ptrStr(f.want))
				}
			}
		})
	}
}

func ptrStr(p *float64) any {
	if p == nil {
		return "absent"
	}
	return *p
}
