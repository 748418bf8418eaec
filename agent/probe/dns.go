package probe

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"

	checkdef "github.com/meridian-net/meridian/internal/probe"
	"github.com/meridian-net/meridian/internal/result"
)

// resolvConf is where the system resolver is read from when a dns check
// names none; a variable so tests can point it elsewhere.
var resolvConf = "/etc/resolv.conf"

// dnsEDNSSize is the EDNS0 buffer size the probe advertises, the DNS Flag
// Day 2020 value that avoids IP fragmentation.
const dnsEDNSSize = 1232

// dnsQuery is a dns check's options, parsed.
type dnsQuery struct {
	name      string
	qtype     uint16
	transport string // udp, tcp, dot or doh
	rcode     int
	contains  string
	tlsConf   *tls.Config // dot and doh: roots, server name, verification
	dohGET    bool
}

// DNS queries each resolver for the target name, concurrently, and returns
// one result per resolver.
func DNS(ctx context.Context, c *Check) ([]*result.Result, error) {
	q, err := parseDNSQuery(&c.DNS, c.Target)
	if err != nil {
		return nil, fmt.Errorf("cannot run dns check %q: %w", c.Name, err)
	}
	servers, err := dnsServers(&c.DNS, q.transport)
	if err != nil {
		return nil, fmt.Errorf("cannot run dns check %q: %w", c.Name, err)
	}
	out := make([]*result.Result, len(servers))
	var wg sync.WaitGroup
	for i, server := range servers {
		wg.Go(func() { out[i] = q.run(ctx, c, server) })
	}
	wg.Wait()
	return out, nil
}

// parseDNSQuery reads a dns check's target and options.
func parseDNSQuery(o *DNSOptions, target string) (*dnsQuery, error) {
	q := &dnsQuery{name: dns.Fqdn(target), qtype: dns.TypeA, transport: o.DNSTransport(), rcode: dns.RcodeSuccess,
		contains: o.ExpectAnswerContains, dohGET: strings.EqualFold(o.DoHMethod, "GET")}
	if _, ok := dns.IsDomainName(q.name); !ok || target == "" {
		return nil, fmt.Errorf("target %q is not a domain name", target)
	}
	if o.QType != "" {
		t, ok := dns.StringToType[strings.ToUpper(o.QType)]
		if !ok {
			return nil, fmt.Errorf("unknown qtype %q (use A, AAAA, CNAME, NS, TXT, HTTPS, MX or SOA)", o.QType)
		}
		q.qtype = t
	}
	if err := o.CheckTransport(); err != nil {
		return nil, err
	}
	if q.transport == checkdef.DNSDoT || q.transport == checkdef.DNSDoH {
		q.tlsConf = &tls.Config{ServerName: o.ServerName, InsecureSkipVerify: o.InsecureSkipVerify}
		if o.CAFile != "" {
			roots, err := checkdef.LoadCAFile(o.CAFile)
			if err != nil {
				return nil, err
			}
			q.tlsConf.RootCAs = roots
		}
	}
	if o.ExpectRcode != "" {
		rc, ok := dns.StringToRcode[strings.ToUpper(o.ExpectRcode)]
		if !ok {
			return nil, fmt.Errorf("unknown expect_rcode %q (use NOERROR, NXDOMAIN, SERVFAIL, REFUSED, …)", o.ExpectRcode)
		}
		q.rcode = rc
	}
	return q, nil
}

// dnsServers lists the resolvers o asks: HOST:PORT, or a URL for doh.
func dnsServers(o *DNSOptions, transport string) ([]string, error) {
	if len(o.Resolvers) == 0 {
		return []string{systemResolver()}, nil
	}
	out := make([]string, len(o.Resolvers))
	for i, r := range o.Resolvers {
		if transport == checkdef.DNSDoH {
			u, err := checkdef.DoHURL(r)
			if err != nil {
				return nil, err
			}
			out[i] = u.String()
			continue
		}
		port := "53"
		if transport == checkdef.DNSDoT {
			port = "853"
		}
		addr, err := withPort(r, port)
		if err != nil {
			return nil, fmt.Errorf("resolver %q: %w", r, err)
		}
		out[i] = addr
	}
	return out, nil
}

// systemResolver is the first nameserver of resolv.conf, or 127.0.0.1:53.
func systemResolver() string {
	cfg, err := dns.ClientConfigFromFile(resolvConf)
	if err != nil || len(cfg.Servers) == 0 {
		return "127.0.0.1:53"
	}
	return net.JoinHostPort(cfg.Servers[0], cfg.Port)
}

// withPort turns HOST or HOST:PORT (IPv6 bare or in brackets) into HOST:PORT.
func withPort(addr, port string) (string, error) {
	if host, p, err := net.SplitHostPort(addr); err == nil {
		if host == "" || p == "" || strings.ContainsAny(addr, "/ ") { // not a URL
			return "", errors.New("want HOST:PORT")
		}
		return addr, nil
	}
	host := strings.TrimSuffix(strings.TrimPrefix(addr, "["), "]")
	if host == "" || strings.ContainsAny(host, "[]/ ") {
		return "", errors.New("want HOST:PORT")
	}
	return net.JoinHostPort(host, port), nil
}

// run asks one server and judges its answer.
//
// Over udp and tcp, dns_ms is the whole exchange (a tcp connect included,
// as before dot and doh came). Over dot and doh the connection's set-up is
// timed apart, as for other kinds: connect_ms the TCP connect, tls_ms the
// TLS handshake, dns_ms only the query on the ready connection (for doh
// the HTTP request until its answer is read). Finding a dot/doh resolver's
// address, when it is given by name, is in total_ms only: dns_ms stays the
// query measured.
func (q *dnsQuery) run(ctx context.Context, c *Check, server string) *result.Result {
	start := time.Now()
	res := result.New("", c.Name, result.KindDNS, c.Target, start)
	res.DNS = &result.DNS{Resolver: server, QType: dns.TypeToString[q.qtype], Transport: q.transport}
	m := new(dns.Msg).SetQuestion(q.name, q.qtype)
	m.SetEdns0(dnsEDNSSize, false)
	var resp *dns.Msg
	var class string
	var err error
	switch q.transport {
	case checkdef.DNSDoT:
		resp, class, err = q.exchangeDoT(ctx, res, m, server)
	case checkdef.DNSDoH:
		resp, class, err = q.exchangeDoH(ctx, res, m, server)
	default:
		resp, res.DNS.Transport, err = exchange(ctx, m, server, q.transport)
		res.DNSMs = result.Ms(time.Since(start))
		if err != nil {
			class, err = exchangeClass(err), fmt.Errorf("cannot query %s over %s: %w", server, res.DNS.Transport, err)
		}
	}
	if err != nil {
		res.Fail(class, err)
	} else {
		q.judge(res, resp, server)
	}
	res.TotalMs = result.Ms(time.Since(start))
	return res
}

// exchange sends m and, when a UDP answer comes back truncated, asks again
// over TCP. It returns the transport(s) used: "udp", "tcp" or "udp+tcp".
func exchange(ctx context.Context, m *dns.Msg, server, transport string) (*dns.Msg, string, error) {
	client := &dns.Client{Net: transport}
	if dl, ok := ctx.Deadline(); ok {
		// miekg/dns otherwise gives up after its own 2s default.
		client.Timeout = max(time.Until(dl), time.Nanosecond)
	}
	resp, _, err := client.ExchangeContext(ctx, m, server)
	if err != nil || !resp.Truncated || transport != "udp" {
		return resp, transport, err
	}
	client.Net = "tcp"
	resp, _, err = client.ExchangeContext(ctx, m, server)
	return resp, "udp+tcp", err
}

func exchangeClass(err error) string {
	if errIsTimeout(err) {
		return result.ErrDNSTimeout
	}
	return result.ErrDNS
}

// judge fills the answer fields and decides ok.
func (q *dnsQuery) judge(res *result.Result, resp *dns.Msg, server string) {
	d := res.DNS
	d.Rcode = dns.RcodeToString[resp.Rcode]
	matched, typed := false, false
	for _, rr := range resp.Answer {
		text := strings.ReplaceAll(rr.String(), "\t", " ")
		d.Answers = append(d.Answers, text)
		if ttl := rr.Header().Ttl; d.TTL == nil || ttl < *d.TTL {
			d.TTL = &ttl
		}
		typed = typed || rr.Header().Rrtype == q.qtype
		matched = matched || strings.Contains(text, q.contains)
	}
	switch {
	case resp.Rcode != q.rcode:
		res.Fail(rcodeClass(resp.Rcode), fmt.Errorf("got %s from %s, want %s", d.Rcode, server, dns.RcodeToString[q.rcode]))
	case q.rcode == dns.RcodeSuccess && !typed:
		res.Fail(result.ErrDNSNoAnswer, fmt.Errorf("got no %s record for %s from %s", d.QType, q.name, server))
	case q.contains != "" && !matched:
		res.Fail(result.ErrDNSAnswerMismatch, fmt.Errorf("no answer from %s contains %q", server, q.contains))
	default:
		res.OK = true
	}
}

func rcodeClass(rcode int) string {
	switch rcode {
	case dns.RcodeNameError:
		return result.ErrDNSNXDomain
	case dns.RcodeServerFailure:
		return result.ErrDNSServfail
	case dns.RcodeRefused:
		return result.ErrDNSRefused
	}
	return result.ErrDNS
}
