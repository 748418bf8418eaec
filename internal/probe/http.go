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
}

func validateHTTP(c *Check) error {
	if _, err := ParseHTTPTarget(c.Target); err != nil {
		return &FieldError{Key: "target", Err: err}
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
