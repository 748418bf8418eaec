package probe

import (
	"fmt"
	"net/url"
	"strings"
)

// DNSOptions are the options of a dns check; its target is the name to query.
//
//	dns:
//	  resolvers: ["1.1.1.1:53", "8.8.8.8"] # one result each; default: the system's first nameserver
//	  qtype: A                             # A (default), AAAA, CNAME, NS, TXT, HTTPS, MX, SOA, …
//	  transport: udp                       # udp (default; retried over tcp when truncated), tcp, dot or doh
//	  expect_rcode: NOERROR                # default NOERROR
//	  expect_answer_contains: "192.0.2.1"  # optional, matched against each answer's text
//	  server_name: dns.example             # dot/doh: the name to verify (and send as SNI); default the resolver's host
//	  ca_file: resolver-ca.pem             # dot/doh: PEM roots trusted besides the system's
//	  insecure_skip_verify: false          # dot/doh: do not verify the certificate (still describe it)
//	  doh_method: POST                     # doh: POST (default) or GET (RFC 8484)
//
// With transport dot a resolver is HOST or HOST:PORT (port 853); with doh
// it is an https:// URL, or HOST[:PORT] for https://HOST[:PORT]/dns-query.
// Neither default: an encrypted resolver is always named, never the
// system's plain one.
type DNSOptions struct {
	Resolvers            []string `yaml:"resolvers"`
	QType                string   `yaml:"qtype"`
	Transport            string   `yaml:"transport"`
	ExpectRcode          string   `yaml:"expect_rcode"`
	ExpectAnswerContains string   `yaml:"expect_answer_contains"`

	ServerName         string `yaml:"server_name"`
	CAFile             string `yaml:"ca_file"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
	DoHMethod          string `yaml:"doh_method"`
}

// DNS transports.
const (
	DNSUDP = "udp"
	DNSTCP = "tcp"
	DNSDoT = "dot" // DNS over TLS, RFC 7858
	DNSDoH = "doh" // DNS over HTTPS, RFC 8484
)

// DNSTransport is o's transport, lower case, udp when unset.
func (o *DNSOptions) DNSTransport() string {
	if o.Transport == "" {
		return DNSUDP
	}
	return strings.ToLower(o.Transport)
}

// CheckTransport says whether o's transport and the options that go with
// it make sense; the qtype and rcode names are the probe's to check.
func (o *DNSOptions) CheckTransport() error {
	t := o.DNSTransport()
	switch t {
	case DNSUDP, DNSTCP:
	case DNSDoT, DNSDoH:
		if len(o.Resolvers) == 0 {
			return fmt.Errorf("transport %s needs resolvers: name the encrypted resolver, such as %s", t,
				map[string]string{DNSDoT: "1.1.1.1:853", DNSDoH: "https://cloudflare-dns.com/dns-query"}[t])
		}
	default:
		return fmt.Errorf("unknown transport %q (use udp, tcp, dot or doh)", o.Transport)
	}
	if t != DNSDoH && o.DoHMethod != "" {
		return fmt.Errorf("doh_method is for transport doh, not %s", t)
	}
	switch strings.ToUpper(o.DoHMethod) {
	case "", "GET", "POST":
	default:
		return fmt.Errorf("unknown doh_method %q (use POST or GET)", o.DoHMethod)
	}
	if t == DNSDoH {
		for _, r := range o.Resolvers {
			if _, err := DoHURL(r); err != nil {
				return err
			}
		}
	}
	return nil
}

// DoHURL is the URL a doh resolver names: an https:// URL as given, or
// HOST[:PORT] as https://HOST[:PORT]/dns-query (RFC 8484's usual path).
func DoHURL(resolver string) (*url.URL, error) {
	s := resolver
	if !strings.Contains(s, "://") {
		s = "https://" + s + "/dns-query"
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("doh resolver %q: want an https:// URL, such as https://dns.example/dns-query", resolver)
	}
	return u, nil
}

func validateDNS(c *Check) error {
	if err := c.DNS.CheckTransport(); err != nil {
		return &FieldError{Key: "dns", Err: err}
	}
	if c.DNS.CAFile != "" {
		if _, err := LoadCAFile(c.DNS.CAFile); err != nil {
			return &FieldError{Key: "dns", Err: err}
		}
	}
	return nil
}
