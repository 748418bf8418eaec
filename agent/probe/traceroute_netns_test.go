package probe

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/meridian-net/meridian/agent/probe/netnstest"
	"github.com/meridian-net/meridian/internal/result"
)

// traceIn runs the traceroute probe from inside the path's src namespace.
func traceIn(t *testing.T, p *netnstest.Path, c *Check) *result.Result {
	t.Helper()
	var rs []*result.Result
	err := p.InSrc(func() (err error) {
		rs, err = Traceroute(context.Background(), c)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 1 {
		t.Fatalf("got %d results, want 1", len(rs))
	}
	if err := rs[0].Validate(); err != nil {
		t.Fatalf("result does not validate: %v", err)
	}
	return rs[0]
}

func traceCheck(o TracerouteOptions) *Check {
	o.MaxHops, o.ProbeTimeout = 8, 500*time.Millisecond
	return &Check{Name: "path", Kind: result.KindTraceroute, Target: "10.201.4.2", Timeout: 20 * time.Second, Traceroute: o}
}

// hopLine prints a hop for failure messages.
func hopLine(h result.TraceHop) string {
	return fmt.Sprintf("ttl %d %s %d/%d (%.0f%% loss)", h.TTL, h.Addr, h.Received, h.Sent, h.LossPct)
}

// Over each protocol, and over the unprivileged ICMP socket, the trace
// finds the three routers in order, then the destination, and stops.
func TestTracerouteNetns(t *testing.T) {
	p := netnstest.NewPath(t, [3]netnstest.Router{})
	netnstest.Sysctl(t, p.Src, "net/ipv4/ping_group_range", "0 2147483647")
	no := false
	for _, tc := range []struct {
		name string
		o    TracerouteOptions
	}{
		{"icmp", TracerouteOptions{Protocol: "icmp"}},
		{"udp", TracerouteOptions{Protocol: "udp"}},
		{"tcp", TracerouteOptions{Protocol: "tcp", Port: 443}},
		{"icmp unprivileged", TracerouteOptions{Protocol: "icmp", Privileged: &no}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := traceIn(t, p, traceCheck(tc.o))
			tr := res.Traceroute
			if !res.OK || !tr.Reached || len(tr.Hops) != len(p.Hops) {
				t.Fatalf("got ok=%v reached=%v %d hops (%s %s), want the destination after %d hops", res.OK, tr.Reached, len(tr.Hops), res.Error, res.ErrorMessage, len(p.Hops))
			}
			for i, h := range tr.Hops {
				if h.TTL != i+1 || h.Addr != p.Hops[i] || h.Sent != 3 || h.Received != 3 || h.AvgMs == nil {
					t.Errorf("hop %d: got %s, want ttl %d %s 3/3", i+1, hopLine(h), i+1, p.Hops[i])
				}
			}
		})
	}
}

// A router that answers only some probes (here it rate-limits its ICMP, as
// many real ones do) shows as a lossy hop at its place in the path; the
// hops behind it, and the destination, answer every probe: loss at one hop
// is not a broken path.
func TestTracerouteLossyHop(t *testing.T) {
	p := netnstest.NewPath(t, [3]netnstest.Router{{}, {ICMPRatelimit: 1000}, {}})
	res := traceIn(t, p, traceCheck(TracerouteOptions{Protocol: "udp", Probes: 10}))
	tr := res.Traceroute
	if !res.OK || len(tr.Hops) != 4 {
		t.Fatalf("got ok=%v %d hops (%s), want the destination after 4 hops", res.OK, len(tr.Hops), res.ErrorMessage)
	}
	for i, h := range tr.Hops {
		lossy := i == 1
		switch {
		case h.Addr != p.Hops[i]:
			t.Errorf("hop %d: got %s, want %s", i+1, hopLine(h), p.Hops[i])
		case lossy && (h.LossPct <= 0 || h.LossPct >= 100):
			t.Errorf("hop %d: got %s, want some loss, not none or all", i+1, hopLine(h))
		case !lossy && h.LossPct != 0:
			t.Errorf("hop %d: got %s, want no loss", i+1, hopLine(h))
		}
		t.Log(hopLine(h))
	}
}

// Out of hops before the destination: the result fails as
// trace_incomplete and keeps the hops it found.
func TestTracerouteIncomplete(t *testing.T) {
	p := netnstest.NewPath(t, [3]netnstest.Router{})
	c := traceCheck(TracerouteOptions{Protocol: "icmp"})
	c.Traceroute.MaxHops = 2
	res := traceIn(t, p, c)
	tr := res.Traceroute
	if res.OK || res.Error != result.ErrTraceIncomplete || tr.Reached || len(tr.Hops) != 2 {
		t.Fatalf("got ok=%v error %s (%s), reached=%v, %d hops; want trace_incomplete after 2 hops", res.OK, res.Error, res.ErrorMessage, tr.Reached, len(tr.Hops))
	}
	if tr.Hops[0].Addr != p.Hops[0] || tr.Hops[1].Addr != p.Hops[1] {
		t.Errorf("got hops %s, %s; want %s, %s", hopLine(tr.Hops[0]), hopLine(tr.Hops[1]), p.Hops[0], p.Hops[1])
	}
	if want := "no answer from 10.201.4.2 within 2 hops"; res.ErrorMessage != want {
		t.Errorf("got message %q, want %q", res.ErrorMessage, want)
	}
}
