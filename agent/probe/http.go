package probe

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/meridian-net/meridian/internal/result"
)

// HTTPOptions are the options of a http check.
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
	// (http_error). Default DefaultMaxBodyBytes.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
}

// DefaultMaxBodyBytes is the body limit when max_body_bytes is unset.
const DefaultMaxBodyBytes = 10 << 20

// UserAgent is sent unless the check sets its own User-Agent header.
var UserAgent = "meridian-agent"

// HTTP fetches the target once over a fresh connection and reports each
// phase. It does not follow redirects: a 3xx is reported with its Location.
func HTTP(ctx context.Context, c *Check) ([]*result.Result, error) {
	u, err := ParseHTTPTarget(c.Target)
	if err != nil {
		return nil, err
	}
	tlsConf, err := httpTLSConfig(u, &c.HTTP)
	if err != nil {
		return nil, err
	}
	if c.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.Timeout)
		defer cancel()
	}
	start := time.Now()
	res := result.New("", c.Name, result.KindHTTP, c.Target, start)
	res.HTTP = &result.HTTP{URL: u.String(), DNSSource: "resolver"}
	if httpHostIsIP(u) {
		res.HTTP.DNSSource = "ip"
	}
	tr := &httpTrace{start: start, hostIsIP: httpHostIsIP(u)}
	req, err := newHTTPRequest(httptrace.WithClientTrace(ctx, tr.clientTrace()), u, &c.HTTP)
	if err != nil {
		return nil, err
	}
	transport := &http.Transport{
		TLSClientConfig:    tlsConf,
		DisableKeepAlives:  true,
		DisableCompression: true, // so http_bytes are the bytes on the wire
		ForceAttemptHTTP2:  u.Scheme == "https",
	}
	defer transport.CloseIdleConnections()
	client := &http.Client{
		Transport:     transport,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := client.Do(req)
	if err != nil {
		finishHTTP(res, tr, nil, time.Now())
		setHTTPSNI(res, u)
		res.Fail(classify(err, tr.phase()), unwrapURLError(err))
		return []*result.Result{res}, nil
	}
	body, n, readErr := readHTTPBody(resp.Body, &c.HTTP)
	resp.Body.Close()
	finishHTTP(res, tr, resp, time.Now())
	setHTTPSNI(res, u)
	res.HTTP.Bytes = &n
	res.OK = true
	if err := checkHTTP(resp, body, n, readErr, &c.HTTP); err != nil {
		res.Fail(err.class, err.err)
	}
	return []*result.Result{res}, nil
}

// setHTTPSNI records the server name sent; none is sent for an IP address.
func setHTTPSNI(res *result.Result, u *url.URL) {
	if res.TLS != nil && !httpHostIsIP(u) {
		res.TLS.TLSSNI = u.Hostname()
	}
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

func httpHostIsIP(u *url.URL) bool {
	_, err := netip.ParseAddr(u.Hostname())
	return err == nil
}

func httpTLSConfig(u *url.URL, o *HTTPOptions) (*tls.Config, error) {
	conf := &tls.Config{ServerName: u.Hostname(), InsecureSkipVerify: o.InsecureSkipVerify}
	if o.CAFile == "" {
		return conf, nil
	}
	pool, err := LoadCAFile(o.CAFile)
	if err != nil {
		return nil, err
	}
	conf.RootCAs = pool
	return conf, nil
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

func newHTTPRequest(ctx context.Context, u *url.URL, o *HTTPOptions) (*http.Request, error) {
	method := o.Method
	if method == "" {
		method = http.MethodGet
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("cannot build request for %q: %w", u, err)
	}
	req.Header.Set("User-Agent", UserAgent)
	for k, v := range o.Headers {
		if strings.EqualFold(k, "Host") {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	return req, nil
}

// readHTTPBody reads the body, keeping it only when it is to be searched.
func readHTTPBody(r io.Reader, o *HTTPOptions) ([]byte, int64, error) {
	limit := o.MaxBodyBytes
	if limit <= 0 {
		limit = DefaultMaxBodyBytes
	}
	var w io.Writer = io.Discard
	var buf bytes.Buffer
	if o.BodyContains != "" {
		w = &buf
	}
	n, err := io.Copy(w, io.LimitReader(r, limit+1))
	if err == nil && n > limit {
		err = fmt.Errorf("body is longer than max_body_bytes (%d); raise http.max_body_bytes", limit)
		n = limit
	}
	return buf.Bytes(), n, err
}

type httpFailure struct {
	class string
	err   error
}

func checkHTTP(resp *http.Response, body []byte, n int64, readErr error, o *HTTPOptions) *httpFailure {
	if readErr != nil {
		class := classify(readErr, PhaseHTTP)
		return &httpFailure{class, fmt.Errorf("cannot read body after %d bytes: %w", n, readErr)}
	}
	if !httpStatusOK(resp.StatusCode, o.ExpectStatus) {
		want := "below 400"
		if len(o.ExpectStatus) > 0 {
			want = fmt.Sprint(o.ExpectStatus)
		}
		return &httpFailure{result.ErrHTTPStatus, fmt.Errorf("status %d, want %s", resp.StatusCode, want)}
	}
	if o.BodyContains != "" && !bytes.Contains(body, []byte(o.BodyContains)) {
		return &httpFailure{result.ErrBodyMismatch, fmt.Errorf("body (%d bytes) does not contain %q", n, o.BodyContains)}
	}
	return nil
}

func httpStatusOK(code int, expect []int) bool {
	if len(expect) == 0 {
		return code < 400
	}
	for _, c := range expect {
		if c == code {
			return true
		}
	}
	return false
}

// unwrapURLError drops the "Get \"URL\": " prefix: the result says the URL.
func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// finishHTTP copies what the trace and the response showed into res.
func finishHTTP(res *result.Result, tr *httpTrace, resp *http.Response, end time.Time) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.fillPhases(res, end)
	res.HTTP.RemoteIP = tr.remoteIP
	if !tr.gotConn.IsZero() {
		reused := tr.reused
		res.HTTP.ConnReused = &reused
	}
	if resp != nil {
		res.HTTP.Status = resp.StatusCode
		res.HTTP.Proto = resp.Proto
		res.HTTP.Location = resp.Header.Get("Location")
		if resp.TLS != nil {
			res.TLS = describeTLS(resp.TLS, nil, end)
		}
		return
	}
	if tr.tlsState != nil || tr.tlsErr != nil {
		res.TLS = describeTLS(tr.tlsState, tr.tlsErr, end)
	}
}

// describeTLS describes a handshake; when it failed on the certificate, the
// certificate is still described (an expired cert's days_left is useful).
func describeTLS(cs *tls.ConnectionState, hsErr error, now time.Time) *result.TLS {
	info := &result.TLS{}
	var certs []*x509.Certificate
	if cs != nil {
		if cs.HandshakeComplete {
			info.TLSVersion = tls.VersionName(cs.Version)
			info.TLSCipher = tls.CipherSuiteName(cs.CipherSuite)
			info.TLSALPN = cs.NegotiatedProtocol
		}
		certs = cs.PeerCertificates
	}
	var verr *tls.CertificateVerificationError
	if len(certs) == 0 && errors.As(hsErr, &verr) {
		certs = verr.UnverifiedCertificates
	}
	if len(certs) > 0 {
		describeLeaf(info, certs[0], now)
	}
	if cs == nil && len(certs) == 0 {
		return nil
	}
	return info
}

func describeLeaf(info *result.TLS, leaf *x509.Certificate, now time.Time) {
	info.CertSubject = leaf.Subject.String()
	info.CertIssuer = leaf.Issuer.String()
	info.CertSANs = append([]string(nil), leaf.DNSNames...)
	for _, ip := range leaf.IPAddresses {
		info.CertSANs = append(info.CertSANs, ip.String())
	}
	notAfter := leaf.NotAfter.UTC()
	info.CertNotAfter = &notAfter
	days := math.Round(leaf.NotAfter.Sub(now).Hours()/24*100) / 100
	info.CertDaysLeft = &days
	sum := sha256.Sum256(leaf.Raw)
	info.CertSHA256 = hex.EncodeToString(sum[:])
}

// httpTrace records when each phase started and ended. The hooks run on
// the transport's goroutines, so every one of them takes mu.
type httpTrace struct {
	mu       sync.Mutex
	start    time.Time
	hostIsIP bool

	dnsStart, dnsDone   time.Time
	connStart, connDone time.Time
	tlsStart, tlsDone   time.Time
	gotConn, firstByte  time.Time

	remoteIP string
	reused   bool
	tlsState *tls.ConnectionState
	tlsErr   error
}

func (t *httpTrace) clientTrace() *httptrace.ClientTrace {
	at := func(f func(now time.Time)) {
		now := time.Now()
		t.mu.Lock()
		defer t.mu.Unlock()
		f(now)
	}
	return &httptrace.ClientTrace{
		DNSStart: func(httptrace.DNSStartInfo) { at(func(now time.Time) { t.dnsStart = now }) },
		DNSDone:  func(httptrace.DNSDoneInfo) { at(func(now time.Time) { t.dnsDone = now }) },
		ConnectStart: func(_, addr string) {
			at(func(now time.Time) {
				if t.connStart.IsZero() { // the first of happy eyeballs' attempts
					t.connStart = now
				}
				if host, _, err := net.SplitHostPort(addr); err == nil {
					t.remoteIP = host
				}
			})
		},
		ConnectDone: func(_, _ string, err error) {
			at(func(now time.Time) {
				if err == nil || t.connDone.IsZero() {
					t.connDone = now
				}
			})
		},
		TLSHandshakeStart: func() { at(func(now time.Time) { t.tlsStart = now }) },
		TLSHandshakeDone: func(cs tls.ConnectionState, err error) {
			at(func(now time.Time) { t.tlsDone, t.tlsState, t.tlsErr = now, &cs, err })
		},
		GotConn: func(info httptrace.GotConnInfo) {
			at(func(now time.Time) {
				t.gotConn, t.reused = now, info.Reused
				if addr, ok := info.Conn.RemoteAddr().(*net.TCPAddr); ok {
					t.remoteIP = addr.IP.String()
				}
			})
		},
		GotFirstResponseByte: func() { at(func(now time.Time) { t.firstByte = now }) },
	}
}

// phase says where a request that failed now was.
func (t *httpTrace) phase() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case !t.gotConn.IsZero():
		return PhaseHTTP
	case !t.tlsStart.IsZero():
		return PhaseTLS
	case !t.connStart.IsZero() || t.hostIsIP:
		return PhaseConnect
	}
	return PhaseDNS
}

// fillPhases sets each phase that started; one that had not ended by end
// (the request failed in it) counts up to end. Callers hold mu.
func (t *httpTrace) fillPhases(res *result.Result, end time.Time) {
	span := func(from, to time.Time) *float64 {
		if from.IsZero() {
			return nil
		}
		if to.IsZero() {
			to = end
		}
		return result.Ms(to.Sub(from))
	}
	res.DNSMs = span(t.dnsStart, t.dnsDone)
	res.ConnectMs = span(t.connStart, t.connDone)
	res.TLSMs = span(t.tlsStart, t.tlsDone)
	res.TTFBMs = span(t.gotConn, t.firstByte)
	res.TransferMs = span(t.firstByte, end)
	res.TotalMs = result.Ms(end.Sub(t.start))
}
