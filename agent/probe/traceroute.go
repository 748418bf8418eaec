package probe

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	checkdef "github.com/meridian-net/meridian/internal/probe"
	"github.com/meridian-net/meridian/internal/result"
)

// TracerouteOptions are the options of a traceroute check (internal/probe).
type TracerouteOptions = checkdef.TracerouteOptions

// probeGap spaces the probes of one TTL: far enough apart to be told
// apart in time, close enough that a hop costs about one round trip.
const probeGap = 10 * time.Millisecond

// Traceroute finds the path to the target, MTR-style: Probes probes per
// TTL from FirstTTL up, stopping at the destination or at MaxHops. The
// result is ok when the destination answered; otherwise it fails as
// trace_incomplete with the hops found. Sockets are opened on the calling
// goroutine (see wire). An error means no socket could be opened.
func Traceroute(ctx context.Context, c *Check) ([]*result.Result, error) {
	o := c.Traceroute.WithDefaults()
	if err := o.Validate(); err != nil {
		return nil, fmt.Errorf("cannot run traceroute check %q: %w", c.Name, err)
	}
	ep, err := icmpEndpoint(c.Target, DialOptions{Family: "ip4", Resolver: o.Resolver})
	if err != nil {
		return nil, fmt.Errorf("cannot run traceroute check %q: %w", c.Name, err)
	}
	if c.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.Timeout)
		defer cancel()
	}
	start := time.Now()
	res := result.New("", c.Name, result.KindTraceroute, c.Target, start)
	defer func() { res.TotalMs = result.Ms(time.Since(start)) }()
	addrs, dnsMs, source, lookupErr := ep.resolve(ctx)
	res.DNSMs = dnsMs
	addr, ok := pick(addrs, "ip4")
	switch {
	case lookupErr != nil:
		res.Fail(lookupClass(lookupErr), fmt.Errorf("cannot resolve %s: %w", ep.host, lookupErr))
		return []*result.Result{res}, nil
	case !ok:
		res.Fail(result.ErrDNSNoAnswer, fmt.Errorf("cannot find an IPv4 address for %s (got %v; IPv6 is not traced yet)", ep.host, addrs))
		return []*result.Result{res}, nil
	}
	res.HTTP = &result.HTTP{RemoteIP: addr.String(), DNSSource: source}
	w, err := openTraceWire(o, addr)
	if err != nil {
		return nil, fmt.Errorf("cannot run traceroute check %q: %w", c.Name, err)
	}
	defer w.close()
	w.start()
	path := trace(ctx, w, o)
	res.Traceroute = path.Traceroute
	if o.ReverseDNS {
		nameHops(ctx, ep.resolver, res.Traceroute.Hops)
	}
	judgeTrace(res, path, ctx.Err())
	return []*result.Result{res}, nil
}

// openTraceWire opens raw sockets where the kernel allows them (root, or
// CAP_NET_RAW without root), falling back to the ICMP datagram socket for
// icmp, as the icmp kind does; it says how to get either when the kernel
// refuses both.
func openTraceWire(o TracerouteOptions, dst netip.Addr) (*wire, error) {
	privileged := true
	if o.Privileged != nil {
		privileged = *o.Privileged
	}
	w, err := openWire(o.Protocol, dst, uint16(o.Port), privileged)
	if errors.Is(err, errNoRawSocket) && o.Protocol == "icmp" && o.Privileged == nil {
		w, err = openWire(o.Protocol, dst, 0, false) // root without CAP_NET_RAW
	}
	switch {
	case err == nil:
		return w, nil
	case o.Protocol != "icmp":
		return nil, fmt.Errorf("%w; traceroute over %s needs raw sockets: run as root or with CAP_NET_RAW "+
			"(setcap cap_net_raw+ep meridian-agent), or trace over icmp", err, o.Protocol)
	default:
		return nil, fmt.Errorf("%w; run as root or with CAP_NET_RAW, or allow unprivileged ICMP with "+
			"sysctl net.ipv4.ping_group_range=\"0 2147483647\"", err)
	}
}

// judgeTrace marks the result: ok when the destination answered.
func judgeTrace(res *result.Result, path tracePath, ctxErr error) {
	t := path.Traceroute
	if t.Reached {
		res.OK = true
		return
	}
	last := 0
	if n := len(t.Hops); n > 0 {
		last = t.Hops[n-1].TTL
	}
	switch {
	case ctxErr != nil:
		res.Fail(result.ErrTraceIncomplete, fmt.Errorf("stopped at TTL %d without reaching %s: the check's timeout ran out; raise it or lower max_hops or probe_timeout", last, res.RemoteIP))
	case path.unreachFrom.IsValid():
		res.Fail(result.ErrTraceIncomplete, fmt.Errorf("%s at TTL %d says %s is unreachable", path.unreachFrom, last, res.RemoteIP))
	default:
		res.Fail(result.ErrTraceIncomplete, fmt.Errorf("no answer from %s within %d hops", res.RemoteIP, last))
	}
}

// nameHops looks up each hop's name, all at once, within the check's time.
func nameHops(ctx context.Context, r *net.Resolver, hops []result.TraceHop) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for i := range hops {
		if hops[i].Addr == "" {
			continue
		}
		wg.Go(func() {
			if names, err := r.LookupAddr(ctx, hops[i].Addr); err == nil && len(names) > 0 {
				hops[i].Name = strings.TrimSuffix(names[0], ".")
			}
		})
	}
	wg.Wait()
}
