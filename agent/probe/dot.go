package probe

// DNS over TLS (RFC 7858), and the TLS connection dot and doh share.

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/miekg/dns"

	"github.com/meridian-net/meridian/internal/result"
)

// exchangeDoT asks server (HOST:PORT) over a fresh TLS connection.
func (q *dnsQuery) exchangeDoT(ctx context.Context, res *result.Result, m *dns.Msg, server string) (*dns.Msg, string, error) {
	tc, class, err := q.dialTLS(ctx, res, server, nil)
	if err != nil {
		return nil, class, err
	}
	defer tc.Close()
	client := &dns.Client{Net: "tcp-tls"}
	if dl, ok := ctx.Deadline(); ok {
		client.Timeout = max(time.Until(dl), time.Nanosecond) // not miekg/dns's 2s
	}
	start := time.Now()
	resp, _, err := client.ExchangeWithConnContext(ctx, m, &dns.Conn{Conn: tc})
	res.DNSMs = result.Ms(time.Since(start))
	if err != nil {
		return nil, exchangeClass(err), fmt.Errorf("cannot query %s over dot: %w", server, err)
	}
	return resp, "", nil
}

// dialTLS connects to hostport and does the TLS handshake, timing them
// into res's connect_ms and tls_ms and describing what the handshake
// showed. A resolver given by name is looked up first (system resolver),
// in no phase of its own. On failure it returns the error's class.
func (q *dnsQuery) dialTLS(ctx context.Context, res *result.Result, hostport string, alpn []string) (*tls.Conn, string, error) {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return nil, result.ErrDNS, fmt.Errorf("cannot use resolver %q: %w", hostport, err)
	}
	ip, err := resolverAddr(ctx, host)
	if err != nil {
		return nil, lookupClass(err), fmt.Errorf("cannot find the address of resolver %s: %w", host, err)
	}
	start := time.Now()
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", net.JoinHostPort(ip.String(), port))
	res.ConnectMs = result.Ms(time.Since(start))
	if err != nil {
		return nil, classify(err, PhaseConnect), fmt.Errorf("cannot connect to resolver %s: %w", hostport, err)
	}
	conf := q.tlsConf.Clone()
	if conf.ServerName == "" {
		conf.ServerName = host // an address is verified against the certificate's IP SANs
	}
	conf.NextProtos = alpn
	tc := tls.Client(raw, conf)
	start = time.Now()
	err = tc.HandshakeContext(ctx)
	res.TLSMs = result.Ms(time.Since(start))
	cs := tc.ConnectionState()
	if res.TLS = describeTLS(&cs, err, time.Now()); res.TLS != nil && net.ParseIP(conf.ServerName) == nil {
		res.TLS.TLSSNI = conf.ServerName
	}
	if err != nil {
		raw.Close()
		return nil, classify(err, PhaseTLS), fmt.Errorf("cannot handshake TLS with resolver %s: %w", hostport, err)
	}
	return tc, "", nil
}

// resolverAddr is host's address: host itself when it is one.
func resolverAddr(ctx context.Context, host string) (netip.Addr, error) {
	if ip, err := netip.ParseAddr(host); err == nil {
		return ip, nil
	}
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return netip.Addr{}, err
	}
	return ips[0].Unmap(), nil
}
