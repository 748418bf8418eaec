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

	"github.com/meridian-net/meridian/internal/result"
)

// TCP resolves the target and times a TCP connect to it.
func TCP(ctx context.Context, c *Check) ([]*result.Result, error) {
	ep, err := parseEndpoint(c.Target, "", c.TCP.DialOptions)
	if err != nil {
		return nil, fmt.Errorf("cannot run tcp check %q: %w", c.Name, err)
	}
	return ep.reach(ctx, c, result.KindTCP, nil), nil
}

// endpoint is where a tcp or tls check connects, parsed from its target.
type endpoint struct {
	host     string     // as written; a trailing dot keeps search domains out
	ip       netip.Addr // valid when the target host is an address
	port     uint16
	families []string // "ip" (any), "ip4", "ip6"; two for "both"
	resolver *net.Resolver
}

// session is what a probe does on a connected conn; res is ok when it is
// called, and session fails it if need be.
type session func(ctx context.Context, res *result.Result, conn net.Conn)

func parseEndpoint(target, defaultPort string, o DialOptions) (*endpoint, error) {
	host, port, err := splitTarget(target, defaultPort)
	if err != nil || host == "" {
		return nil, fmt.Errorf("target %q is not HOST:PORT", target)
	}
	p, err := net.LookupPort("tcp", port)
	if err != nil || p == 0 {
		return nil, fmt.Errorf("target %q: bad port %q", target, port)
	}
	ep := &endpoint{host: host, port: uint16(p), resolver: net.DefaultResolver}
	switch strings.ToLower(o.Family) {
	case "", "any":
		ep.families = []string{"ip"}
	case "ip4", "ip6":
		ep.families = []string{strings.ToLower(o.Family)}
	case "both":
		ep.families = []string{"ip4", "ip6"}
	default:
		return nil, fmt.Errorf("unknown family %q (use any, ip4, ip6 or both)", o.Family)
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		ep.ip = ip.Unmap()
		ep.families = []string{"ip"}
		if fam := strings.ToLower(o.Family); (fam == "ip4" && !ep.ip.Is4()) || (fam == "ip6" && !ep.ip.Is6()) {
			return nil, fmt.Errorf("target %q is not an %s address (family %s)", target, fam, fam)
		}
	}
	if o.Resolver != "" {
		addr, err := withPort(o.Resolver, "53")
		if err != nil {
			return nil, fmt.Errorf("resolver %q: %w", o.Resolver, err)
		}
		ep.resolver = &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		}}
	}
	return ep, nil
}

// splitTarget splits HOST:PORT; with a default port, HOST, [IPv6] and a
// bare IPv6 address are accepted too.
func splitTarget(target, defaultPort string) (host, port string, err error) {
	host, port, err = net.SplitHostPort(target)
	if err == nil || defaultPort == "" {
		return host, port, err
	}
	h := strings.TrimSuffix(strings.TrimPrefix(target, "["), "]")
	if _, perr := netip.ParseAddr(h); perr == nil || !strings.Contains(target, ":") {
		return h, defaultPort, nil
	}
	return "", "", err
}

// reach resolves the endpoint, then connects to one address per family
// (concurrently) and runs then on each connection. Each result keeps the
// phases measured before a failure and the time of the phase that failed.
func (e *endpoint) reach(ctx context.Context, c *Check, kind string, then session) []*result.Result {
	start := time.Now()
	addrs, dnsMs, source, lookupErr := e.resolve(ctx)
	out := make([]*result.Result, len(e.families))
	var wg sync.WaitGroup
	for i, fam := range e.families {
		res := result.New("", c.Name, kind, c.Target, start)
		if dnsMs != nil {
			res.DNSMs = new(*dnsMs)
		}
		out[i] = res
		addr, ok := pick(addrs, fam)
		switch {
		case lookupErr != nil:
			res.Fail(lookupClass(lookupErr), fmt.Errorf("cannot resolve %s: %w", e.host, lookupErr))
		case !ok:
			res.Fail(result.ErrDNSNoAnswer, fmt.Errorf("cannot find an %s address for %s (got %v)", fam, e.host, addrs))
		default:
			res.HTTP = &result.HTTP{RemoteIP: addr.String(), DNSSource: source}
			wg.Go(func() { e.connect(ctx, res, start, addr, then) })
			continue
		}
		res.TotalMs = result.Ms(time.Since(start))
	}
	wg.Wait()
	return out
}

// resolve looks the host up, timing it; an address target is not looked up
// and its dns_ms stays absent.
func (e *endpoint) resolve(ctx context.Context) (addrs []netip.Addr, dnsMs *float64, source string, err error) {
	if e.ip.IsValid() {
		return []netip.Addr{e.ip}, nil, "ip", nil
	}
	network := "ip"
	if len(e.families) == 1 {
		network = e.families[0]
	}
	t := time.Now()
	addrs, err = e.resolver.LookupNetIP(ctx, network, e.host)
	dnsMs = result.Ms(time.Since(t))
	for i := range addrs {
		addrs[i] = addrs[i].Unmap()
	}
	return addrs, dnsMs, "resolver", err
}

// pick chooses the address to dial for a family: the resolver's first.
func pick(addrs []netip.Addr, family string) (netip.Addr, bool) {
	for _, a := range addrs {
		if family == "ip" || family == "ip4" && a.Is4() || family == "ip6" && a.Is6() {
			return a, true
		}
	}
	return netip.Addr{}, false
}

func (e *endpoint) connect(ctx context.Context, res *result.Result, start time.Time, addr netip.Addr, then session) {
	t := time.Now()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", netip.AddrPortFrom(addr, e.port).String())
	res.ConnectMs = result.Ms(time.Since(t))
	if err != nil {
		res.Fail(classify(err, PhaseConnect), err)
		res.TotalMs = result.Ms(time.Since(start))
		return
	}
	defer conn.Close()
	res.OK = true
	if then != nil {
		then(ctx, res, conn)
	}
	res.TotalMs = result.Ms(time.Since(start))
}

// lookupClass classifies an error of the Go resolver: classify's mapping,
// plus SERVFAIL, which net reports as a temporary "server misbehaving".
// The Go resolver cannot tell NXDOMAIN from "no record of this type"; both
// are dns_nxdomain.
func lookupClass(err error) string {
	var de *net.DNSError
	if errors.As(err, &de) && de.IsTemporary && !de.IsTimeout && de.Err == "server misbehaving" {
		return result.ErrDNSServfail
	}
	return classify(err, PhaseDNS)
}
