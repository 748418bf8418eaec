package probe

import (
	"crypto/x509"
	"fmt"
	"net/url"
	"os"
)

// HTTPOptions are the options of a http check.
//
//	http:
//	  method: GET
//	  headers: {Accept: "*/*"}
//	  expect_status: [200]
//	  body_contains: "ok"
//	  follow_redirects: true   # default true: one result per hop
//	  max_redirects: 10        # default 10; more is a failure (http_error)
//	  family: any              # any, ip4, ip6 or both (one chain of results per family)
//	  resolver: 1.1.1.1:53     # default: the system resolver
//	  warm: false              # true: a second request on the same connection, conn_reused=true
//	  cache_bust: false        # true: append _mcb=RANDOM to the target's query
type HTTPOptions struct {
	Method  string            `yaml:"method"` // default GET
	Headers map[string]string `yaml:"headers"`
	// ExpectStatus lists the acceptable status codes; empty means any
	// status below 400.
	ExpectStatus []int `yaml:"expect_status"`
	// BodyContains fails the check (body_mismatch) when the body lacks it.
	BodyContains       string `yaml:"body_contains"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
	// CAFile adds PEM roots to the system ones, for private CAs.
	CAFile string `yaml:"ca_file"`
	// MaxBodyBytes bounds the body read; a longer body fails the check
	// (http_error). Default agent/probe's DefaultMaxBodyBytes.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`

	// DialOptions: family and resolver. The probe resolves the name itself
	// and pins the connection to the address it got.
	DialOptions `yaml:",inline"`
	// FollowRedirects (default true) follows 3xx responses, each hop over
	// its own fresh connection and reported as its own result; the
	// assertions apply to the last hop.
	FollowRedirects *bool `yaml:"follow_redirects"`
	MaxRedirects    int   `yaml:"max_redirects"` // default agent/probe's DefaultMaxRedirects
	// Warm sends a second request over the last hop's connection and
	// reports it too (conn_reused=true, dns_source=cache).
	Warm bool `yaml:"warm"`
	// CacheBust appends a random query parameter (_mcb) to the target and
	// to the warm request, so caches cannot answer them.
	CacheBust bool `yaml:"cache_bust"`
	// Proto picks the HTTP version (ProtoAuto when empty). auto is what a
	// first visit gets: h2 when TLS ALPN agrees on it, else HTTP/1.1; it
	// never upgrades to h3 on the strength of an Alt-Svc header, so a
	// result never depends on an earlier run (alt_svc reports what the
	// server offers; check with proto: h3 to measure it). h1 and h2 insist
	// on their version (h2 on http:// is h2c with prior knowledge); h3
	// speaks QUIC to the URL's host and port and needs https.
	Proto string `yaml:"proto"`
	// ThroughputMinBytes: a body of at least this many bytes carries
	// throughput_bps; smaller ones are over before their rate means much.
	// Default agent/probe's DefaultThroughputMinBytes (100 KiB).
	ThroughputMinBytes int64 `yaml:"throughput_min_bytes"`
}

// HTTP versions a check can ask for with proto.
const (
	ProtoAuto = "auto"
	ProtoH1   = "h1"
	ProtoH2   = "h2"
	ProtoH3   = "h3"
)

// CheckProto says whether o's proto and throughput threshold make sense
// for a request to u (an h3 request needs https); the agent asks it again
// for each redirect hop.
func (o *HTTPOptions) CheckProto(u *url.URL) error {
	switch o.Proto {
	case "", ProtoAuto, ProtoH1, ProtoH2:
	case ProtoH3:
		if u.Scheme != "https" {
			return fmt.Errorf("cannot use proto h3 for %s: HTTP/3 runs over QUIC, which is always TLS; use an https:// URL", u.Redacted())
		}
	default:
		return fmt.Errorf("unknown proto %q (use auto, h1, h2 or h3)", o.Proto)
	}
	if o.ThroughputMinBytes < 0 {
		return fmt.Errorf("throughput_min_bytes %d is negative", o.ThroughputMinBytes)
	}
	return nil
}

func validateHTTP(c *Check) error {
	u, err := ParseHTTPTarget(c.Target)
	if err != nil {
		return &FieldError{Key: "target", Err: err}
	}
	if err := c.HTTP.CheckProto(u); err != nil {
		return &FieldError{Key: "http", Err: err}
	}
	if c.HTTP.CAFile != "" {
		if _, err := LoadCAFile(c.HTTP.CAFile); err != nil {
			return &FieldError{Key: "http", Err: err}
		}
	}
	return nil
}

// ParseHTTPTarget parses an http(s) URL target; it is the only reason the
// HTTP probe returns an error.
func ParseHTTPTarget(target string) (*url.URL, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, fmt.Errorf("cannot parse http target %q: %w", target, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("cannot use http target %q: want an absolute http:// or https:// URL", target)
	}
	return u, nil
}

// LoadCAFile returns the system roots plus the PEM certificates in path.
func LoadCAFile(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read ca_file: %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("cannot use ca_file %q: no PEM certificates in it", path)
	}
	return pool, nil
}
