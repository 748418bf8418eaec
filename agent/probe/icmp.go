package probe

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"time"

	probing "github.com/prometheus-community/pro-bing"

	"github.com/meridian-net/meridian/internal/result"
)

// ICMP defaults.
const (
	DefaultICMPCount    = 3
	DefaultICMPInterval = 200 * time.Millisecond
	// defaultICMPWait is how long the last echo may take to come back when
	// the check has no deadline.
	defaultICMPWait = 2 * time.Second
	minICMPSize     = 24
)

// ICMP resolves the target (timed, when it is a name) and sends Count
// echoes to it. The result is ok when at least one reply came back; with
// none it fails as icmp_loss. An error means no ICMP socket could be
// opened at all.
func ICMP(ctx context.Context, c *Check) ([]*result.Result, error) {
	o, err := icmpSettings(c)
	if err != nil {
		return nil, fmt.Errorf("cannot run icmp check %q: %w", c.Name, err)
	}
	ep, err := icmpEndpoint(c.Target, c.ICMP.DialOptions)
	if err != nil {
		return nil, fmt.Errorf("cannot run icmp check %q: %w", c.Name, err)
	}
	if c.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.Timeout)
		defer cancel()
	}
	start := time.Now()
	addrs, dnsMs, source, lookupErr := ep.resolve(ctx)
	out := make([]*result.Result, len(ep.families))
	errs := make([]error, len(ep.families))
	var wg sync.WaitGroup
	for i, fam := range ep.families {
		res := result.New("", c.Name, result.KindICMP, c.Target, start)
		res.DNSMs = dnsMs
		out[i] = res
		addr, ok := pick(addrs, fam)
		switch {
		case lookupErr != nil:
			res.Fail(lookupClass(lookupErr), fmt.Errorf("cannot resolve %s: %w", ep.host, lookupErr))
		case !ok:
			res.Fail(result.ErrDNSNoAnswer, fmt.Errorf("cannot find an %s address for %s (got %v)", fam, ep.host, addrs))
		default:
			res.HTTP = &result.HTTP{RemoteIP: addr.String(), DNSSource: source}
			wg.Go(func() { errs[i] = o.ping(ctx, res, addr) })
		}
	}
	wg.Wait()
	for _, res := range out {
		res.TotalMs = result.Ms(time.Since(start))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("cannot run icmp check %q: %w", c.Name, err)
	}
	return out, nil
}

// icmpEndpoint parses a host target; a port makes no sense for a ping.
func icmpEndpoint(target string, o DialOptions) (*endpoint, error) {
	if _, _, err := net.SplitHostPort(target); err == nil {
		return nil, fmt.Errorf("target %q has a port; an icmp target is a host name or address", target)
	}
	// parseEndpoint wants a port; 7 (echo) is never dialled.
	return parseEndpoint(target, "7", o)
}

// icmpRun is an icmp check's options with defaults applied.
type icmpRun struct {
	count      int
	interval   time.Duration
	privileged bool
	explicit   bool // privileged was set by the check, so no fallback
	size       int
}

func icmpSettings(c *Check) (*icmpRun, error) {
	o := c.ICMP
	r := &icmpRun{count: o.Count, interval: o.Interval, privileged: os.Geteuid() == 0, size: o.Size}
	if o.Privileged != nil {
		r.privileged, r.explicit = *o.Privileged, true
	}
	switch {
	case r.count < 0:
		return nil, fmt.Errorf("count %d is negative", o.Count)
	case r.count == 0:
		r.count = DefaultICMPCount
	}
	switch {
	case r.interval < 0:
		return nil, fmt.Errorf("interval %v is negative", o.Interval)
	case r.interval == 0:
		r.interval = DefaultICMPInterval
	}
	switch {
	case r.size == 0:
		r.size = minICMPSize
	case r.size < minICMPSize:
		return nil, fmt.Errorf("size %d is below the %d bytes of pro-bing's timestamp and tracker; use at least %d", o.Size, minICMPSize, minICMPSize)
	}
	return r, nil
}

// budget returns how long the echoes may take and the interval that fits
// them in it: the echoes go out in the first half of the time, so the last
// one has the second half to come back.
func (r *icmpRun) budget(ctx context.Context) (total, interval time.Duration) {
	interval = r.interval
	deadline, ok := ctx.Deadline()
	if !ok {
		return time.Duration(r.count-1)*interval + defaultICMPWait, interval
	}
	total = max(time.Until(deadline), time.Millisecond) // pro-bing's tickers need > 0
	if spread := time.Duration(r.count-1) * interval; r.count > 1 && spread > total/2 {
		interval = max(total/2/time.Duration(r.count-1), time.Millisecond)
	}
	return total, interval
}

// ping sends the echoes and fills res; an error means no socket could be
// opened in either mode.
func (r *icmpRun) ping(ctx context.Context, res *result.Result, addr netip.Addr) error {
	st, sendErr, err := r.run(ctx, addr, r.privileged)
	if err != nil && !r.explicit && r.privileged && socketRefused(err) {
		st, sendErr, err = r.run(ctx, addr, false) // root without CAP_NET_RAW
	}
	if err != nil && socketRefused(err) {
		return fmt.Errorf("cannot open an ICMP socket (privileged=%v): %w; run as root or with CAP_NET_RAW, "+
			"or allow unprivileged ping with sysctl net.ipv4.ping_group_range=\"0 2147483647\"", r.privileged, err)
	}
	if sendErr == nil && err != nil && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
		sendErr = err
	}
	judgeICMP(res, st, sendErr, addr.String())
	return nil
}

// run pings addr once with the given socket mode. sendErr is the last
// failed send; err is what stopped the pinger (a socket error, or ctx).
func (r *icmpRun) run(ctx context.Context, addr netip.Addr, privileged bool) (st *probing.Statistics, sendErr, err error) {
	total, interval := r.budget(ctx)
	p := probing.New(addr.String())
	p.SetIPAddr(&net.IPAddr{IP: addr.AsSlice(), Zone: addr.Zone()})
	p.SetPrivileged(privileged)
	p.SetLogger(probing.NoopLogger{})
	p.Count, p.Interval, p.Timeout, p.Size = r.count, interval, total, r.size
	p.RecordRtts, p.RecordTTLs = false, false
	var mu sync.Mutex
	p.OnSendError = func(_ *probing.Packet, e error) {
		mu.Lock()
		sendErr = e
		mu.Unlock()
	}
	err = p.RunWithContext(ctx)
	mu.Lock()
	defer mu.Unlock()
	return p.Statistics(), sendErr, err
}

// socketRefused says whether err is the kernel refusing the socket itself.
func socketRefused(err error) bool {
	return errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EACCES) ||
		errors.Is(err, syscall.EPROTONOSUPPORT) || errors.Is(err, syscall.EAFNOSUPPORT)
}

// judgeICMP maps pro-bing's statistics to the result: ok when any reply
// came back. RTT fields are absent without replies; loss is 100% when
// nothing could even be sent.
func judgeICMP(res *result.Result, st *probing.Statistics, sendErr error, addr string) {
	res.ICMP = &result.ICMP{Sent: st.PacketsSent, Received: st.PacketsRecv, Dups: st.PacketsRecvDuplicates,
		LossPct: st.PacketLoss}
	if st.PacketsSent == 0 {
		res.ICMP.LossPct = 100
	}
	if st.PacketsRecv > 0 {
		res.ICMP.MinMs, res.ICMP.AvgMs = result.Ms(st.MinRtt), result.Ms(st.AvgRtt)
		res.ICMP.MaxMs, res.ICMP.StddevMs = result.Ms(st.MaxRtt), result.Ms(st.StdDevRtt)
		res.OK = true
		return
	}
	if sendErr != nil {
		class := classify(sendErr, PhaseConnect)
		if class != result.ErrConnectUnreach {
			class = result.ErrICMPLoss
		}
		res.Fail(class, fmt.Errorf("cannot send echo to %s: %w", addr, sendErr))
		return
	}
	res.Fail(result.ErrICMPLoss, fmt.Errorf("no reply to %d echoes from %s", st.PacketsSent, addr))
}
