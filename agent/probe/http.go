package probe

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"time"

	checkdef "github.com/meridian-net/meridian/internal/probe"
	"github.com/meridian-net/meridian/internal/result"
)

// DefaultMaxBodyBytes is the body limit when max_body_bytes is unset.
const DefaultMaxBodyBytes = 10 << 20

// DefaultMaxRedirects is how many redirects a check follows by default.
const DefaultMaxRedirects = 10

// DefaultThroughputMinBytes is the smallest body that carries
// throughput_bps when throughput_min_bytes is unset.
const DefaultThroughputMinBytes = 100 << 10

// cacheBustParam is the query parameter cache_bust appends.
const cacheBustParam = "_mcb"

// UserAgent is sent unless the check sets its own User-Agent header.
var UserAgent = "meridian-agent"

// HTTP fetches the target over a fresh connection and reports each phase.
// It resolves the name itself, pins the connection to the address, and
// follows redirects hop by hop: one result per hop (and per family with
// family: both), plus one for the warm request when asked.
func HTTP(ctx context.Context, c *Check) ([]*result.Result, error) {
	hc, err := newHTTPCheck(c)
	if err != nil {
		return nil, err
	}
	if c.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.Timeout)
		defer cancel()
	}
	return hc.run(ctx), nil
}

// httpCheck is an http check's options, parsed and loaded once per run.
type httpCheck struct {
	c        *Check
	o        *HTTPOptions
	u        *url.URL
	families []string // "ip", "ip4", "ip6"
	roots    *x509.CertPool
	follow   bool
	maxHops  int
}

func newHTTPCheck(c *Check) (*httpCheck, error) {
	u, err := checkdef.ParseHTTPTarget(c.Target)
	if err != nil {
		return nil, err
	}
	o := &c.HTTP
	ep, err := hopEndpoint(u, o.DialOptions)
	if err == nil {
		err = o.CheckProto(u)
	}
	if err != nil {
		return nil, fmt.Errorf("cannot run http check %q: %w", c.Name, err)
	}
	hc := &httpCheck{c: c, o: o, u: u, families: ep.families, follow: o.FollowRedirects == nil || *o.FollowRedirects,
		maxHops: o.MaxRedirects}
	switch {
	case hc.maxHops < 0:
		return nil, fmt.Errorf("cannot run http check %q: max_redirects %d is negative", c.Name, o.MaxRedirects)
	case hc.maxHops == 0:
		hc.maxHops = DefaultMaxRedirects
	}
	if o.CAFile != "" {
		if hc.roots, err = checkdef.LoadCAFile(o.CAFile); err != nil {
			return nil, err
		}
	}
	return hc, nil
}

// hopEndpoint parses where a URL connects, with the check's family and
// resolver.
func hopEndpoint(u *url.URL, o DialOptions) (*endpoint, error) {
	port := "80"
	if u.Scheme == "https" {
		port = "443"
	}
	return parseEndpoint(u.Host, port, o)
}

// run runs one redirect chain per family, concurrently for family: both.
// One family runs on the caller's goroutine: a goroutine more per check
// is a wake-up more, which costs an idle agent more than the check's own
// bookkeeping.
func (hc *httpCheck) run(ctx context.Context) []*result.Result {
	if len(hc.families) == 1 {
		return hc.chain(ctx, hc.families[0])
	}
	chains := make([][]*result.Result, len(hc.families))
	var wg sync.WaitGroup
	for i, fam := range hc.families {
		wg.Go(func() { chains[i] = hc.chain(ctx, fam) })
	}
	wg.Wait()
	var out []*result.Result
	for _, c := range chains {
		out = append(out, c...)
	}
	return out
}

// hopRequest is what one hop asks for.
type hopRequest struct {
	u      *url.URL
	method string
	hop    int
}

// chain fetches the target and each redirect after it, a fresh connection
// per hop; the last hop carries the assertions (and the warm request).
func (hc *httpCheck) chain(ctx context.Context, family string) []*result.Result {
	req := hopRequest{u: hc.firstURL(), method: hc.method()}
	var out []*result.Result
	for {
		h := hc.fetch(ctx, req, family)
		out = append(out, h.res)
		next, redirect := hc.next(h, req)
		if redirect && req.hop < hc.maxHops {
			h.close()
			req = next
			continue
		}
		hc.judgeFinal(h, redirect)
		if hc.o.Warm && h.resp != nil && !redirect {
			out = append(out, hc.warm(ctx, h, req))
		}
		h.close()
		return out
	}
}

func (hc *httpCheck) method() string {
	if hc.o.Method == "" {
		return http.MethodGet
	}
	return hc.o.Method
}

func (hc *httpCheck) firstURL() *url.URL {
	if hc.o.CacheBust {
		return cacheBust(hc.u)
	}
	return hc.u
}

// cacheBust returns u with a random cacheBustParam appended to its query.
func cacheBust(u *url.URL) *url.URL {
	b := make([]byte, 8)
	rand.Read(b)
	v := *u
	if v.RawQuery != "" {
		v.RawQuery += "&"
	}
	v.RawQuery += cacheBustParam + "=" + hex.EncodeToString(b)
	return &v
}

// next says where a redirect leads, if the hop is one to follow.
func (hc *httpCheck) next(h *hop, req hopRequest) (hopRequest, bool) {
	if !hc.follow || h.resp == nil || h.readErr != nil {
		return hopRequest{}, false
	}
	switch h.resp.StatusCode {
	case http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther,
		http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
	default:
		return hopRequest{}, false
	}
	loc, err := h.resp.Location()
	if err != nil || loc.Scheme != "http" && loc.Scheme != "https" {
		return hopRequest{}, false
	}
	method := req.method
	if h.resp.StatusCode <= http.StatusSeeOther && method != http.MethodHead {
		method = http.MethodGet // as browsers and net/http do
	}
	return hopRequest{u: loc, method: method, hop: req.hop + 1}, true
}

// warm repeats the last hop's request over its connection.
func (hc *httpCheck) warm(ctx context.Context, last *hop, req hopRequest) *result.Result {
	if hc.o.CacheBust && req.hop == 0 {
		req.u = cacheBust(hc.u)
	}
	h := hc.newHop(req)
	h.res.HTTP.DNSSource = "cache"
	if httpHostIsIP(req.u) {
		h.res.HTTP.DNSSource = "ip"
	}
	h.tr.addrKnown = true
	h.tr.deadline, _ = ctx.Deadline()
	h.transport = last.transport
	hc.roundTrip(ctx, h, req)
	hc.judgeFinal(h, false)
	return h.res
}

// hop is one request of a chain and what came back.
type hop struct {
	res       *result.Result
	tr        *httpTrace
	transport hopTransport
	resp      *http.Response // nil when no response came
	body      []byte
	readErr   error
}

func (hc *httpCheck) newHop(req hopRequest) *hop {
	start := time.Now()
	res := result.New("", hc.c.Name, result.KindHTTP, hc.c.Target, start)
	res.HTTP = &result.HTTP{URL: req.u.String(), Hop: req.hop}
	return &hop{res: res, tr: &httpTrace{start: start}}
}

// fetch resolves the hop's host, pins a fresh connection to the address
// and makes the request.
func (hc *httpCheck) fetch(ctx context.Context, req hopRequest, family string) *hop {
	h := hc.newHop(req)
	if err := hc.o.CheckProto(req.u); err != nil { // a redirect to http:// under h3
		h.res.Fail(result.ErrHTTP, err)
		h.res.TotalMs = result.Ms(time.Since(h.tr.start))
		return h
	}
	addr, ok := hc.resolve(ctx, h, req.u, family)
	if !ok {
		return h
	}
	h.transport = hc.transport(req.u, addr)
	hc.roundTrip(ctx, h, req)
	return h
}

// resolve finds the address to pin for u, timing the lookup; on failure
// it fails the hop's result.
func (hc *httpCheck) resolve(ctx context.Context, h *hop, u *url.URL, family string) (netip.AddrPort, bool) {
	res, tr := h.res, h.tr
	ep, err := hopEndpoint(u, hc.o.DialOptions)
	if err != nil {
		res.Fail(result.ErrHTTP, fmt.Errorf("cannot follow to %s: %w", u, err))
		res.TotalMs = result.Ms(time.Since(tr.start))
		return netip.AddrPort{}, false
	}
	if !ep.ip.IsValid() {
		ep.families = []string{family}
		tr.dnsStart = time.Now()
	}
	addrs, _, source, err := ep.resolve(ctx)
	if !tr.dnsStart.IsZero() {
		tr.dnsDone = time.Now()
	}
	res.HTTP.DNSSource = source
	addr, found := pick(addrs, family)
	switch {
	case err != nil:
		res.Fail(lookupClass(err), fmt.Errorf("cannot resolve %s: %w", ep.host, err))
	case !found:
		res.Fail(result.ErrDNSNoAnswer, fmt.Errorf("cannot find an %s address for %s (got %v)", family, ep.host, addrs))
	default:
		tr.addrKnown, tr.remoteIP = true, addr.String()
		tr.deadline, _ = ctx.Deadline()
		return netip.AddrPortFrom(addr, ep.port), true
	}
	tr.fillPhases(res, time.Now())
	return netip.AddrPort{}, false
}

// transport makes a transport whose every connection goes to addr, while
// the request's Host and the TLS server name stay the URL's host.
func (hc *httpCheck) transport(u *url.URL, addr netip.AddrPort) hopTransport {
	conf := &tls.Config{ServerName: u.Hostname(), RootCAs: hc.roots, InsecureSkipVerify: hc.o.InsecureSkipVerify}
	if hc.o.Proto == checkdef.ProtoH3 {
		return newH3Transport(conf, addr)
	}
	return &http.Transport{
		DialContext:        pinnedDial(addr),
		TLSClientConfig:    conf,
		DisableKeepAlives:  !hc.o.Warm,
		DisableCompression: true, // so http_bytes are the bytes on the wire
		ForceAttemptHTTP2:  u.Scheme == "https",
		Protocols:          httpProtocols(hc.o.Proto, u),
	}
}

// pinnedDial dials addr whatever address the transport asks for, and
// times the connect into the request's trace.
func pinnedDial(addr netip.AddrPort) func(context.Context, string, string) (net.Conn, error) {
	return func(ctx context.Context, _, _ string) (net.Conn, error) {
		tr := traceFrom(ctx)
		if tr != nil && !tr.deadline.IsZero() {
			// The transport detaches dials from the request's
			// cancellation; the check's deadline still holds.
			var cancel context.CancelFunc
			ctx, cancel = context.WithDeadline(ctx, tr.deadline)
			defer cancel()
		}
		tr.mark(func(t *httpTrace, now time.Time) {
			if t.connStart.IsZero() {
				t.connStart = now
			}
		})
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", addr.String())
		tr.mark(func(t *httpTrace, now time.Time) { t.connDone = now })
		return conn, err
	}
}

// roundTrip sends the hop's request on its transport and reads the answer.
func (hc *httpCheck) roundTrip(ctx context.Context, h *hop, req hopRequest) {
	res, tr := h.res, h.tr
	ctx = withTrace(httptrace.WithClientTrace(ctx, tr.clientTrace()), tr)
	r, err := newHTTPRequest(ctx, req.u, req.method, hc.headersFor(req.u))
	if err != nil {
		res.Fail(result.ErrHTTP, err)
		res.TotalMs = result.Ms(time.Since(tr.start))
		return
	}
	resp, err := h.transport.RoundTrip(r)
	if err != nil {
		finishHTTP(res, tr, nil, time.Now())
		setHTTPSNI(res, req.u)
		res.Fail(classify(err, tr.phase()), unwrapURLError(err))
		return
	}
	var n int64
	clock := &bodyClock{r: resp.Body}
	h.body, n, h.readErr = readHTTPBody(clock, hc.o)
	resp.Body.Close()
	finishHTTP(res, tr, resp, time.Now())
	setHTTPSNI(res, req.u)
	setCDN(res.HTTP, resp.Header)
	res.HTTP.Bytes = &n
	if n >= hc.throughputMin() && h.readErr == nil {
		res.HTTP.ThroughputBps = clock.bps()
	}
	if err := protoMismatch(hc.o.Proto, resp); err != nil {
		res.Fail(result.ErrHTTP, err) // and the chain ends here
		return
	}
	res.OK = true
	h.resp = resp
}

func (hc *httpCheck) throughputMin() int64 {
	if hc.o.ThroughputMinBytes > 0 {
		return hc.o.ThroughputMinBytes
	}
	return DefaultThroughputMinBytes
}

// headersFor returns the check's headers for a hop to u; credentials and
// the Host override stay with the target's own host, as net/http's
// redirects do.
func (hc *httpCheck) headersFor(u *url.URL) map[string]string {
	if u.Host == hc.u.Host {
		return hc.o.Headers
	}
	hs := map[string]string{}
	for k, v := range hc.o.Headers {
		switch strings.ToLower(k) {
		case "host", "authorization", "cookie", "www-authenticate":
			continue
		}
		hs[k] = v
	}
	return hs
}

// judgeFinal applies the check's assertions to the last hop; a redirect
// still wanting to be followed means there were too many.
func (hc *httpCheck) judgeFinal(h *hop, redirect bool) {
	if h.resp == nil {
		return
	}
	if redirect {
		h.res.Fail(result.ErrHTTP, fmt.Errorf("stopped after %d redirects; raise http.max_redirects", hc.maxHops))
		return
	}
	n := int64(0)
	if h.res.HTTP.Bytes != nil {
		n = *h.res.HTTP.Bytes
	}
	if err := checkHTTP(h.resp, h.body, n, h.readErr, hc.o); err != nil {
		h.res.Fail(err.class, err.err)
	}
}

func (h *hop) close() {
	if h.transport != nil {
		h.transport.CloseIdleConnections()
	}
}

// setHTTPSNI records the server name sent; none is sent for an IP address.
func setHTTPSNI(res *result.Result, u *url.URL) {
	if res.TLS != nil && !httpHostIsIP(u) {
		res.TLS.TLSSNI = u.Hostname()
	}
}

func httpHostIsIP(u *url.URL) bool {
	_, err := netip.ParseAddr(u.Hostname())
	return err == nil
}

func newHTTPRequest(ctx context.Context, u *url.URL, method string, headers map[string]string) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("cannot build request for %q: %w", u, err)
	}
	req.Header.Set("User-Agent", UserAgent)
	for k, v := range headers {
		if strings.EqualFold(k, "Host") {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	return req, nil
}
