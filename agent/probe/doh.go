package probe

// DNS over HTTPS (RFC 8484): the query as an application/dns-message body
// (POST) or base64url in ?dns= (GET), over h2 when the resolver offers it.

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/miekg/dns"

	"github.com/meridian-net/meridian/internal/result"
)

const dohType = "application/dns-message"

// exchangeDoH asks the resolver at URL server over a fresh TLS connection.
func (q *dnsQuery) exchangeDoH(ctx context.Context, res *result.Result, m *dns.Msg, server string) (*dns.Msg, string, error) {
	u, err := url.Parse(server) // dnsServers made it
	if err != nil {
		return nil, result.ErrDNS, err
	}
	port := u.Port()
	if port == "" {
		port = "443"
	}
	tc, class, err := q.dialTLS(ctx, res, net.JoinHostPort(u.Hostname(), port), []string{"h2", "http/1.1"})
	if err != nil {
		return nil, class, err
	}
	defer tc.Close()
	start := time.Now()
	resp, err := q.dohRoundTrip(ctx, tc, u, m)
	res.DNSMs = result.Ms(time.Since(start))
	if err != nil {
		return nil, exchangeClass(err), fmt.Errorf("cannot query %s over doh: %w", server, err)
	}
	return resp, "", nil
}

// dohRoundTrip sends m over tc, already through its handshake, and reads
// the answer.
func (q *dnsQuery) dohRoundTrip(ctx context.Context, tc *tls.Conn, u *url.URL, m *dns.Msg) (*dns.Msg, error) {
	req, err := q.dohRequest(ctx, u, m)
	if err != nil {
		return nil, err
	}
	t := &http.Transport{
		DialTLSContext: func(context.Context, string, string) (net.Conn, error) {
			if tc == nil {
				return nil, errors.New("the resolver's connection is used up") // one request per check
			}
			c := tc
			tc = nil
			return c, nil
		},
		ForceAttemptHTTP2:  true, // h2 when ALPN agreed on it, as resolvers mostly do
		DisableCompression: true,
	}
	defer t.CloseIdleConnections()
	hr, err := t.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	defer hr.Body.Close()
	body, err := io.ReadAll(io.LimitReader(hr.Body, dns.MaxMsgSize+1))
	switch ct := hr.Header.Get("Content-Type"); {
	case err != nil:
		return nil, fmt.Errorf("cannot read the answer: %w", err)
	case hr.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("got HTTP status %d, want 200 (is %s the resolver's DoH path?)", hr.StatusCode, u.Path)
	case !strings.HasPrefix(ct, dohType):
		return nil, fmt.Errorf("got Content-Type %q, want %s", ct, dohType)
	}
	resp := new(dns.Msg)
	if err := resp.Unpack(body); err != nil {
		return nil, fmt.Errorf("cannot parse the answer (%d bytes): %w", len(body), err)
	}
	return resp, nil
}

// dohRequest makes the request for m. The ID is 0, as RFC 8484 asks, so
// that HTTP caches can answer identical queries.
func (q *dnsQuery) dohRequest(ctx context.Context, u *url.URL, m *dns.Msg) (*http.Request, error) {
	m = m.Copy()
	m.Id = 0
	wire, err := m.Pack()
	if err != nil {
		return nil, fmt.Errorf("cannot pack the query: %w", err)
	}
	var req *http.Request
	if q.dohGET {
		v := *u
		if v.RawQuery != "" {
			v.RawQuery += "&"
		}
		v.RawQuery += "dns=" + base64.RawURLEncoding.EncodeToString(wire)
		req, err = http.NewRequestWithContext(ctx, http.MethodGet, v.String(), nil)
	} else {
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(wire))
		if req != nil {
			req.Header.Set("Content-Type", dohType)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("cannot build the request: %w", err)
	}
	req.Header.Set("Accept", dohType)
	req.Header.Set("User-Agent", UserAgent)
	return req, nil
}
