package probe

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/meridian-net/meridian/internal/result"
)

// BrowserOptions are the options of a browser check; its target is an
// http(s) URL loaded in headless Chromium.
//
//	browser:
//	  exec_path: /usr/bin/chromium  # default: $MERIDIAN_CHROMIUM, else /usr/bin/chromium
//	  wait_after_load: 1s           # after the load event, to catch late LCP/CLS/long tasks; <0: none
//	  concurrency: 2                # page loads at once in this agent (all browser checks)
//	  user_agent: ""                # default: Chromium's, "HeadlessChrome" -> "Chrome", + " meridian-agent"
//
// One Chromium process serves every check with the same exec_path; each
// check gets a fresh incognito-like browser context (empty cache, cookies
// and storage), so every load is cold.
type BrowserOptions struct {
	ExecPath      string        `yaml:"exec_path"`
	WaitAfterLoad time.Duration `yaml:"wait_after_load"`
	Concurrency   int           `yaml:"concurrency"`
	UserAgent     string        `yaml:"user_agent"`
}

// Browser defaults.
const (
	DefaultChromium           = "/usr/bin/chromium"
	DefaultBrowserWait        = time.Second
	DefaultBrowserConcurrency = 2
	// DefaultBrowserTimeout bounds a page load when neither the check nor
	// the caller set a deadline.
	DefaultBrowserTimeout = 60 * time.Second
	// browserStartTimeout bounds the start of the Chromium process.
	browserStartTimeout = 30 * time.Second
	// browserMaxHosts bounds the per-host breakdown; the rest is "(other)".
	browserMaxHosts = 20
)

// ChromiumInstallHint is the fix named when Chromium cannot start.
const ChromiumInstallHint = "install it with `apt-get install chromium`, or point browser.exec_path (or MERIDIAN_CHROMIUM) at a Chromium/Chrome binary"

func (o *BrowserOptions) execPath() string {
	switch {
	case o.ExecPath != "":
		return o.ExecPath
	case os.Getenv("MERIDIAN_CHROMIUM") != "":
		return os.Getenv("MERIDIAN_CHROMIUM")
	}
	return DefaultChromium
}

func (o *BrowserOptions) wait() time.Duration {
	switch {
	case o.WaitAfterLoad < 0:
		return 0
	case o.WaitAfterLoad == 0:
		return DefaultBrowserWait
	}
	return o.WaitAfterLoad
}

func (o *BrowserOptions) concurrency() int {
	if o.Concurrency > 0 {
		return o.Concurrency
	}
	return DefaultBrowserConcurrency
}

// Browser loads the target in headless Chromium and reports navigation
// timing of the main document (dns/connect/tls/ttfb/transfer; total is the
// end of the load event), paint and layout metrics (FCP, LCP, CLS, TBT),
// requests and bytes, and console errors. A page that does not load is a
// result with an error class; a browser that cannot start is an error.
func Browser(ctx context.Context, c *Check) ([]*result.Result, error) {
	pl, err := loadPage(ctx, c)
	if err != nil {
		return nil, err
	}
	return []*result.Result{pl.res}, nil
}

// pageLoad is everything one page load measured.
type pageLoad struct {
	res *result.Result
	pid int // the browser process that loaded it
}

func loadPage(ctx context.Context, c *Check) (*pageLoad, error) {
	u, err := ParseHTTPTarget(c.Target)
	if err != nil {
		return nil, err
	}
	o := &c.Browser
	if c.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.Timeout)
		defer cancel()
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultBrowserTimeout)
		defer cancel()
	}
	if err := pageLoads.acquire(ctx, o.concurrency()); err != nil {
		return nil, fmt.Errorf("browser check %q: no free page-load slot before the deadline (%d loads at once; raise browser.concurrency or the timeout): %w", c.Name, o.concurrency(), err)
	}
	defer pageLoads.release()
	b, err := getBrowser(ctx, o.execPath())
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("browser check %q: Chromium did not start before the deadline: %w", c.Name, err)
		}
		return nil, err
	}
	return b.load(ctx, c, u)
}

// load runs one page load in a new tab of b.
func (b *browserProc) load(ctx context.Context, c *Check, u *url.URL) (*pageLoad, error) {
	o := &c.Browser
	rec := &pageRecorder{reqs: map[network.RequestID]*pageRequest{}}
	tabCtx, tabCancel := chromedp.NewContext(b.ctx, chromedp.WithNewBrowserContext(), chromedp.WithListener(rec.handle))
	defer tabCancel()
	// The tab lives in the browser's context, not in ctx, so that a load
	// that runs out of time can still be read; ctx's end closes it.
	stop := context.AfterFunc(ctx, tabCancel)
	defer stop()

	pl := &pageLoad{pid: b.pid}
	deadline, _ := ctx.Deadline()
	// Keep a slice of the time to read what a slow page did so far.
	reserve := min(time.Second, time.Until(deadline)/10)
	loadCtx, loadCancel := context.WithDeadline(tabCtx, deadline.Add(-reserve))
	defer loadCancel()
	readCtx, readCancel := context.WithDeadline(tabCtx, deadline)
	defer readCancel()

	ua := o.UserAgent
	if ua == "" {
		ua = b.userAgent
	}
	if err := prepareTab(tabCtx, loadCtx, rec, ua); err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("browser check %q: could not open a tab before the deadline: %w", c.Name, ctx.Err())
		}
		return nil, fmt.Errorf("browser check %q: cannot open a tab in Chromium (pid %d): %w", c.Name, b.pid, err)
	}

	start := time.Now()
	res := result.New("", c.Name, result.KindBrowser, c.Target, start)
	pl.res = res
	resp, navErr := chromedp.Run(loadCtx, chromedp.NavigateResponse(u.String()))
	navEnd := time.Now()
	if navErr == nil {
		if wait := min(o.wait(), time.Until(deadline.Add(-reserve))); wait > 0 {
			select {
			case <-time.After(wait):
			case <-loadCtx.Done():
			}
		}
	} else if loadCtx.Err() != nil && tabCtx.Err() == nil {
		// Out of time: stop the page so that what it did so far can be read.
		_ = chromedp.Do(readCtx, chromedp.Stop())
	}
	var m *pageMetrics
	var loadErr *chromedp.LoadError
	if !errors.As(navErr, &loadErr) && tabCtx.Err() == nil {
		// A failed navigation shows Chromium's error page: nothing to read.
		v, err := chromedp.Run(readCtx, chromedp.Evaluate[pageMetrics](metricsScript))
		if err == nil {
			m = &v
		} else if navErr == nil {
			navErr = fmt.Errorf("reading the page's metrics: %w", err)
		}
	}

	doc := resp
	if doc == nil {
		doc = rec.mainDocument()
	}
	assemble(res, u, doc, m, rec, start)
	res.OK = true
	switch {
	case navErr == nil:
		if doc != nil && (doc.Status < 200 || doc.Status >= 400) {
			res.Fail(result.ErrHTTPStatus, fmt.Errorf("page %s answered HTTP %d %s", doc.URL, doc.Status, doc.StatusText))
		}
	case loadErr != nil:
		class := loadErrorClass(loadErr.ErrorText)
		if class == result.ErrHTTPStatus && doc != nil {
			res.Fail(class, fmt.Errorf("page %s answered HTTP %d %s (%s)", doc.URL, doc.Status, doc.StatusText, loadErr.ErrorText))
		} else {
			res.Fail(class, fmt.Errorf("loading %s: %s", u, loadErr.ErrorText))
		}
		if res.TotalMs == nil {
			res.TotalMs = result.Ms(navEnd.Sub(start)) // the time until the failure
		}
	case ctx.Err() != nil || loadCtx.Err() != nil:
		what := "the load event"
		if doc == nil {
			what = "a response to the page request"
		}
		res.Fail(result.ErrTimeout, fmt.Errorf("no %s from %s within %s", what, u, deadline.Sub(start).Round(time.Millisecond)))
	default:
		if b.ctx.Err() != nil {
			navErr = fmt.Errorf("%w (the browser process %d died; the next check starts a new one)", navErr, b.pid)
		}
		res.Fail(result.ErrBrowser, navErr)
	}
	return pl, nil
}

// prepareTab remembers the tab's main frame, sets the user agent and
// installs the script that observes LCP, CLS and long tasks from the first
// byte of every document.
func prepareTab(tabCtx, loadCtx context.Context, rec *pageRecorder, ua string) error {
	return chromedp.Do(tabCtx, chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		rec.setMainFrame(cdp.FrameID(t.TargetID))
		if _, err := cdp.Call(loadCtx, t, emulation.SetUserAgentOverride, emulation.SetUserAgentOverrideParams{UserAgent: ua}); err != nil {
			return err
		}
		_, err := cdp.Call(loadCtx, t, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: vitalsScript})
		return err
	}))
}

// assemble fills res from what the load left: the main document's network
// record, the page's own metrics (m, nil when they could not be read) and
// the recorder's per-request tally.
func assemble(res *result.Result, u *url.URL, doc *network.Response, m *pageMetrics, rec *pageRecorder, start time.Time) {
	res.HTTP = browserHTTP(u, doc)
	res.TLS = browserTLS(u, doc, start)
	docEnd, docBytes := rec.document(doc)
	if docBytes > 0 {
		res.HTTP.Bytes = &docBytes
	}
	if m != nil {
		m.fill(res, u, doc, docEnd)
	}
	rec.mu.Lock()
	if res.Browser == nil {
		res.Browser = &result.Browser{}
	}
	res.Browser.ConsoleErrors = rec.consoleErrors
	rec.mu.Unlock()
	res.Browser.Hosts = rec.hosts()
	res.Browser.Resources, res.Browser.PageBytes = rec.totals()
	if res.Browser.Resources == 0 && m != nil { // no network events: fall back on resource timing
		res.Browser.Resources, res.Browser.PageBytes = m.Resources, m.Bytes
	}
}

// loadErrorClass maps Chromium's net error text (net/base/net_error_list.h)
// to an error class.
func loadErrorClass(text string) string {
	e := strings.TrimPrefix(text, "net::")
	switch {
	case e == "ERR_NAME_NOT_RESOLVED":
		return result.ErrDNSNXDomain
	case e == "ERR_DNS_TIMED_OUT":
		return result.ErrDNSTimeout
	case e == "ERR_NAME_RESOLUTION_FAILED", strings.HasPrefix(e, "ERR_DNS_"):
		return result.ErrDNS
	case e == "ERR_CONNECTION_REFUSED":
		return result.ErrConnectRefused
	case e == "ERR_CONNECTION_TIMED_OUT":
		return result.ErrConnectTimeout
	case e == "ERR_ADDRESS_UNREACHABLE", e == "ERR_NETWORK_UNREACHABLE", e == "ERR_INTERNET_DISCONNECTED":
		return result.ErrConnectUnreach
	case e == "ERR_CONNECTION_RESET", e == "ERR_CONNECTION_CLOSED", e == "ERR_CONNECTION_ABORTED",
		e == "ERR_CONNECTION_FAILED", e == "ERR_ADDRESS_INVALID", strings.HasPrefix(e, "ERR_PROXY_"),
		e == "ERR_TUNNEL_CONNECTION_FAILED", e == "ERR_SOCKET_NOT_CONNECTED":
		return result.ErrConnect
	case e == "ERR_TIMED_OUT":
		return result.ErrTimeout
	case e == "ERR_CERT_DATE_INVALID":
		return result.ErrTLSCertExpired // Chromium does not tell expired from not yet valid
	case e == "ERR_CERT_COMMON_NAME_INVALID":
		return result.ErrTLSNameMismatch
	case strings.HasPrefix(e, "ERR_CERT_"), e == "ERR_CERTIFICATE_TRANSPARENCY_REQUIRED":
		return result.ErrTLSCertUntrusted
	case strings.HasPrefix(e, "ERR_SSL_"), strings.HasPrefix(e, "ERR_TLS_"), e == "ERR_BAD_SSL_CLIENT_AUTH_CERT":
		return result.ErrTLSHandshake
	case e == "ERR_HTTP_RESPONSE_CODE_FAILURE":
		return result.ErrHTTPStatus // an error status with an empty body
	case e == "ERR_EMPTY_RESPONSE", e == "ERR_INVALID_RESPONSE", e == "ERR_TOO_MANY_REDIRECTS",
		e == "ERR_INVALID_HTTP_RESPONSE", strings.HasPrefix(e, "ERR_RESPONSE_"),
		strings.HasPrefix(e, "ERR_HTTP"), strings.HasPrefix(e, "ERR_CONTENT_"), e == "ERR_INCOMPLETE_CHUNKED_ENCODING":
		return result.ErrHTTP
	}
	return result.ErrBrowser
}

// browserHTTP describes the main document's response.
func browserHTTP(u *url.URL, doc *network.Response) *result.HTTP {
	h := &result.HTTP{URL: u.String(), DNSSource: "resolver"}
	if httpHostIsIP(u) {
		h.DNSSource = "ip"
	}
	if doc == nil {
		return h
	}
	h.URL = doc.URL
	h.Status = int(doc.Status)
	h.RemoteIP = doc.RemoteIPAddress
	switch strings.ToLower(doc.Protocol) {
	case "http/1.1":
		h.Proto = "HTTP/1.1"
	case "http/1.0":
		h.Proto = "HTTP/1.0"
	case "h2":
		h.Proto = "HTTP/2.0"
	case "h3":
		h.Proto = "HTTP/3.0"
	default:
		h.Proto = doc.Protocol
	}
	setCDN(h, httpHeader(doc.Headers))
	return h
}

// browserTLS describes the certificate the main document was served with.
func browserTLS(u *url.URL, doc *network.Response, now time.Time) *result.TLS {
	if doc == nil || doc.SecurityDetails == nil {
		return nil
	}
	sd := doc.SecurityDetails
	t := &result.TLS{
		TLSVersion:  sd.Protocol,
		TLSCipher:   sd.Cipher,
		CertSubject: sd.SubjectName,
		CertIssuer:  sd.Issuer,
		CertSANs:    sd.SanList,
	}
	if !httpHostIsIP(u) {
		t.TLSSNI = u.Hostname()
	}
	if sd.ValidTo > 0 {
		na := time.Unix(0, int64(float64(sd.ValidTo)*1e9)).UTC()
		days := na.Sub(now).Hours() / 24
		t.CertNotAfter, t.CertDaysLeft = result.StorableTime(na), &days
	}
	return t
}

func httpHeader(h network.Headers) http.Header {
	out := http.Header{}
	for k, v := range h {
		if s, ok := v.(string); ok {
			for line := range strings.SplitSeq(s, "\n") {
				out.Add(k, line)
			}
		}
	}
	return out
}

// pageMetrics is what metricsScript reads from the page, in milliseconds
// since the navigation started.
type pageMetrics struct {
	Nav *struct {
		DNSStart      float64 `json:"dns_start"`
		DNSEnd        float64 `json:"dns_end"`
		ConnectStart  float64 `json:"connect_start"`
		ConnectEnd    float64 `json:"connect_end"`
		SecureStart   float64 `json:"secure_start"`
		RequestStart  float64 `json:"request_start"`
		ResponseStart float64 `json:"response_start"`
		ResponseEnd   float64 `json:"response_end"`
		DCL           float64 `json:"dcl"`
		LoadStart     float64 `json:"load_start"`
		LoadEnd       float64 `json:"load_end"`
	} `json:"nav"`
	FCP       *float64 `json:"fcp"`
	LCP       *float64 `json:"lcp"`
	CLS       *float64 `json:"cls"`
	TBT       *float64 `json:"tbt"`
	Resources int      `json:"resources"` // resource timing entries, the document included
	Bytes     int64    `json:"bytes"`
}

// fill copies the metrics into res. Each phase is on its own: connect
// ends where TLS starts; TTFB runs from the request sent to the first
// response byte; transfer from there to the last byte; total is the end of
// the load event. The phases come from the protocol's timing of the
// document (microseconds, and -1 for a phase that did not happen) and fall
// back on the page's navigation timing (0.1 ms steps).
func (m *pageMetrics) fill(res *result.Result, u *url.URL, doc *network.Response, docEnd float64) {
	ms := func(v float64) *float64 { v = math.Round(v*1000) / 1000; return &v }
	res.Browser = &result.Browser{FCPMs: m.FCP, LCPMs: m.LCP, CLS: m.CLS, TBTMs: m.TBT}
	hostIsIP := httpHostIsIP(u)
	if n := m.Nav; n != nil {
		if n.DCL > 0 {
			res.Browser.DOMContentMs = ms(n.DCL)
		}
		if n.LoadStart > 0 {
			res.Browser.LoadMs = ms(n.LoadStart)
		}
		if n.LoadEnd > 0 {
			res.TotalMs = ms(n.LoadEnd)
		}
	}
	if doc != nil && doc.Timing != nil && doc.Timing.RequestTime > 0 && doc.Timing.SendStart >= 0 {
		t := doc.Timing
		if !hostIsIP && t.DNSStart >= 0 && t.DNSEnd >= t.DNSStart {
			res.DNSMs = ms(t.DNSEnd - t.DNSStart)
		}
		if t.ConnectStart >= 0 && t.ConnectEnd >= t.ConnectStart {
			end := t.ConnectEnd
			if t.SslStart >= 0 && t.SslEnd >= t.SslStart {
				end = t.SslStart
				res.TLSMs = ms(t.SslEnd - t.SslStart)
			}
			res.ConnectMs = ms(end - t.ConnectStart)
		}
		first := t.ReceiveHeadersStart
		if first <= 0 {
			first = t.ReceiveHeadersEnd
		}
		if first >= t.SendStart {
			res.TTFBMs = ms(first - t.SendStart)
			if last := (docEnd - t.RequestTime) * 1000; docEnd > 0 && last >= first {
				res.TransferMs = ms(last - first)
			}
		}
	} else if n := m.Nav; n != nil {
		reused := doc != nil && doc.ConnectionReused
		if !hostIsIP && !reused && n.DNSEnd >= n.DNSStart {
			res.DNSMs = ms(n.DNSEnd - n.DNSStart)
		}
		if !reused && n.ConnectEnd >= n.ConnectStart {
			end := n.ConnectEnd
			if n.SecureStart > 0 {
				end = n.SecureStart
				res.TLSMs = ms(n.ConnectEnd - n.SecureStart)
			}
			res.ConnectMs = ms(end - n.ConnectStart)
		}
		if n.ResponseStart > 0 && n.RequestStart > 0 {
			res.TTFBMs = ms(n.ResponseStart - n.RequestStart)
		}
	}
	if res.TransferMs == nil && m.Nav != nil && m.Nav.ResponseEnd > 0 && m.Nav.ResponseStart > 0 {
		res.TransferMs = ms(m.Nav.ResponseEnd - m.Nav.ResponseStart)
	}
}

// vitalsScript runs at the start of every document of the tab and watches
// paint, layout-shift and long-task entries (buffered, so entries before it
// ran count too). CLS is the largest session window (gaps < 1 s, windows
// < 5 s) of shifts without recent input, as web-vitals computes it.
const vitalsScript = `(() => {
  if (window.__meridianVitals) return;
  const v = {lcp: 0, cls: 0, win: 0, first: 0, last: 0, tasks: [], obs: []};
  Object.defineProperty(window, '__meridianVitals', {value: v, enumerable: false});
  const on = {
    'largest-contentful-paint': e => { v.lcp = e.startTime; },
    'layout-shift': e => {
      if (e.hadRecentInput) return;
      if (v.win && e.startTime - v.last < 1000 && e.startTime - v.first < 5000) {
        v.win += e.value; v.last = e.startTime;
      } else {
        v.win = e.value; v.first = v.last = e.startTime;
      }
      if (v.win > v.cls) v.cls = v.win;
    },
    'longtask': e => { v.tasks.push([e.startTime, e.duration]); },
  };
  for (const type in on) {
    try {
      const o = new PerformanceObserver(l => l.getEntries().forEach(on[type]));
      o.observe({type, buffered: true});
      v.obs.push([o, on[type]]);
    } catch (e) {}
  }
})();`

// metricsScript reads the navigation timing, the paint metrics and the
// resource timing of the page in one evaluation. Bytes are transferSize,
// or encodedBodySize where a cross-origin resource hides its transfer size.
const metricsScript = `(() => {
  const r = {resources: 0, bytes: 0};
  const n = performance.getEntriesByType('navigation')[0];
  if (n) r.nav = {
    dns_start: n.domainLookupStart, dns_end: n.domainLookupEnd,
    connect_start: n.connectStart, connect_end: n.connectEnd, secure_start: n.secureConnectionStart,
    request_start: n.requestStart, response_start: n.responseStart, response_end: n.responseEnd,
    dcl: n.domContentLoadedEventStart, load_start: n.loadEventStart, load_end: n.loadEventEnd,
  };
  const fcp = performance.getEntriesByName('first-contentful-paint')[0];
  if (fcp) r.fcp = fcp.startTime;
  const v = window.__meridianVitals;
  if (v) {
    for (const [o, f] of v.obs) o.takeRecords().forEach(f);
    if (v.lcp > 0) r.lcp = v.lcp;
    r.cls = v.cls;
    // TBT counts from FCP; a busy machine can load a page before its first
    // paint is reported, and then long tasks count from the start.
    if (fcp || v.tasks.length) {
      const from = fcp ? fcp.startTime : 0;
      let tbt = 0;
      for (const [s, d] of v.tasks) {
        const start = Math.max(s, from), blocking = s + d - start - 50;
        if (blocking > 0) tbt += blocking;
      }
      r.tbt = tbt;
    }
  }
  for (const e of [n, ...performance.getEntriesByType('resource')]) {
    if (!e) continue;
    if (!/^https?:/.test(e.name)) continue;
    r.resources++;
    r.bytes += e.transferSize || e.encodedBodySize || 0;
  }
  return r;
})()`

// pageRecorder follows the tab's events: requests by id, the main
// document's response and the console errors. Its handle runs in the tab's
// event loop.
type pageRecorder struct {
	mu            sync.Mutex
	mainFrame     cdp.FrameID
	reqs          map[network.RequestID]*pageRequest
	hops          []*pageRequest // redirected hops, done
	order         []network.RequestID
	consoleErrors int
}

type pageRequest struct {
	url      string
	host     string
	frame    cdp.FrameID
	document bool
	start    float64 // seconds, the protocol's monotonic clock
	end      float64
	bytes    float64
	failed   bool
	resp     *network.Response
}

func (r *pageRecorder) setMainFrame(id cdp.FrameID) {
	r.mu.Lock()
	r.mainFrame = id
	r.mu.Unlock()
}

func (r *pageRecorder) handle(ev any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch ev := ev.(type) {
	case *runtime.EventConsoleAPICalled:
		if ev.Type == runtime.ConsoleAPICalledTypeError {
			r.consoleErrors++
		}
	case *runtime.EventExceptionThrown:
		r.consoleErrors++
	case *network.EventRequestWillBeSent:
		if ev.Request == nil {
			return
		}
		if old := r.reqs[ev.RequestID]; old != nil && ev.RedirectResponse != nil {
			old.resp = ev.RedirectResponse
			old.bytes = ev.RedirectResponse.EncodedDataLength
			old.end = float64(ev.Timestamp)
			r.hops = append(r.hops, old)
		} else if old == nil {
			r.order = append(r.order, ev.RequestID)
		}
		host := ""
		if pu, err := url.Parse(ev.Request.URL); err == nil && (pu.Scheme == "http" || pu.Scheme == "https") {
			host = pu.Host
		}
		r.reqs[ev.RequestID] = &pageRequest{
			url: ev.Request.URL, host: host, frame: ev.FrameID,
			document: ev.Type == network.ResourceTypeDocument, start: float64(ev.Timestamp),
		}
	case *network.EventResponseReceived:
		if q := r.reqs[ev.RequestID]; q != nil {
			q.resp = ev.Response
		}
	case *network.EventLoadingFinished:
		if q := r.reqs[ev.RequestID]; q != nil {
			q.end, q.bytes = float64(ev.Timestamp), ev.EncodedDataLength
		}
	case *network.EventLoadingFailed:
		if q := r.reqs[ev.RequestID]; q != nil {
			q.end, q.failed = float64(ev.Timestamp), true
		}
	}
}

// mainDocument is the response of the main frame's first document, for a
// load that ended before chromedp returned it.
func (r *pageRecorder) mainDocument() *network.Response {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, id := range r.order {
		if q := r.reqs[id]; q.document && q.frame == r.mainFrame && q.resp != nil {
			return q.resp
		}
	}
	return nil
}

// document says when the document's last byte arrived (the protocol's
// clock, seconds) and how many bytes it took on the wire; zeros if unknown.
func (r *pageRecorder) document(doc *network.Response) (end float64, bytes int64) {
	if doc == nil {
		return 0, 0
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, id := range r.order {
		if q := r.reqs[id]; q.document && q.frame == r.mainFrame && q.resp != nil && q.resp.URL == doc.URL && !q.failed {
			return q.end, int64(q.bytes)
		}
	}
	return 0, 0
}

// all lists every request hop with a host, in order.
func (r *pageRecorder) all() []*pageRequest {
	var qs []*pageRequest
	qs = append(qs, r.hops...)
	for _, id := range r.order {
		qs = append(qs, r.reqs[id])
	}
	return slices.DeleteFunc(qs, func(q *pageRequest) bool { return q.host == "" })
}

// totals is the number of requests (redirect hops count one each) and
// their bytes on the wire.
func (r *pageRecorder) totals() (n int, bytes int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, q := range r.all() {
		n++
		bytes += int64(q.bytes)
	}
	return n, bytes
}

// hosts sums the requests per host (result.Browser.Hosts): most bytes
// first, the first browserMaxHosts of them, then one "(other)" entry for
// the rest; nil if no request had a host. A host's CDN and PoP are those of
// its first response that names a vendor; max_ms runs from the request sent
// to its last byte (redirect hops count one each).
func (r *pageRecorder) hosts() []result.BrowserHost {
	r.mu.Lock()
	defer r.mu.Unlock()
	by := map[string]*result.BrowserHost{}
	var out []*result.BrowserHost
	for _, q := range r.all() {
		h := by[q.host]
		if h == nil {
			h = &result.BrowserHost{Host: q.host}
			by[q.host] = h
			out = append(out, h)
		}
		h.Requests++
		h.Bytes += int64(q.bytes)
		if q.failed {
			h.Failed++
		}
		if q.end > 0 && q.end >= q.start {
			d := (q.end - q.start) * 1000
			if h.MaxMs == nil || d > *h.MaxMs {
				d = math.Round(d*1000) / 1000
				h.MaxMs = &d
			}
		}
		if q.resp != nil {
			info := IdentifyCDN(httpHeader(q.resp.Headers))
			if h.CDN == "" {
				h.CDN, h.CDNPoP = info.Vendor, info.PoP
			}
			if info.Cache == "hit" {
				h.CacheHits++
			}
		}
	}
	if len(out) == 0 {
		return nil
	}
	slices.SortStableFunc(out, func(a, b *result.BrowserHost) int {
		switch {
		case a.Bytes != b.Bytes:
			if a.Bytes > b.Bytes {
				return -1
			}
			return 1
		case a.Requests != b.Requests:
			return b.Requests - a.Requests
		}
		return strings.Compare(a.Host, b.Host)
	})
	hosts := make([]result.BrowserHost, 0, min(len(out), browserMaxHosts+1))
	for i, h := range out {
		if i < browserMaxHosts {
			hosts = append(hosts, *h)
			continue
		}
		if i == browserMaxHosts {
			hosts = append(hosts, result.BrowserHost{Host: "(other)"}) // no CDN: the hosts differ
		}
		o := &hosts[browserMaxHosts]
		o.Requests += h.Requests
		o.Failed += h.Failed
		o.CacheHits += h.CacheHits
		o.Bytes += h.Bytes
		if h.MaxMs != nil && (o.MaxMs == nil || *h.MaxMs > *o.MaxMs) {
			o.MaxMs = h.MaxMs
		}
	}
	return hosts
}

// browserProc is one Chromium process shared by every check with the same
// executable.
type browserProc struct {
	execPath    string
	ready       chan struct{} // closed once started (or failed: err)
	err         error
	ctx         context.Context // the browser's own chromedp context; done when it dies
	cancel      context.CancelFunc
	allocCancel context.CancelFunc
	userAgent   string
	pid         int
	profile     string // the user data directory, removed on close
}

var browsers = struct {
	sync.Mutex
	m       map[string]*browserProc
	reaping sync.WaitGroup // dead browsers being cleaned up
}{m: map[string]*browserProc{}}

// browserStarts counts Chromium processes started (tests read it).
var browserStarts atomic.Int64

// getBrowser returns the running browser for execPath, starting it once
// (however many checks ask at the same time) and again if it died.
func getBrowser(ctx context.Context, execPath string) (*browserProc, error) {
	browsers.Lock()
	b := browsers.m[execPath]
	if b != nil {
		select {
		case <-b.ready:
			if b.err != nil || b.ctx.Err() != nil {
				browsers.reaping.Go(b.close) // dead: reap it and start another
				b = nil
			}
		default: // starting: wait for it below
		}
	}
	if b == nil {
		b = &browserProc{execPath: execPath, ready: make(chan struct{})}
		browsers.m[execPath] = b
		go b.start()
	}
	browsers.Unlock()
	select {
	case <-b.ready:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if b.err != nil {
		return nil, b.err
	}
	return b, nil
}

// start starts the Chromium process, in no check's context: it outlives
// them all.
func (b *browserProc) start() {
	defer close(b.ready)
	fail := func(err error, out *tailWriter) {
		msg := strings.TrimSpace(out.String())
		if msg != "" {
			msg = "; it said: " + msg
		}
		b.err = fmt.Errorf("cannot start Chromium %s: %v%s; %s", b.execPath, err, msg, ChromiumInstallHint)
	}
	out := &tailWriter{max: 2048}
	if _, err := exec.LookPath(b.execPath); err != nil {
		fail(err, out)
		return
	}
	browserStarts.Add(1)
	// A fresh profile per process, with network prediction off: Chromium
	// otherwise preconnects to the page's origin when the navigation
	// starts, and the document's connect and TLS time would vanish.
	dir, err := newChromiumProfile()
	if err != nil {
		fail(err, out)
		return
	}
	b.profile = dir
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.UserDataDir(dir),
		chromedp.ExecPath(b.execPath),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-domain-reliability", true),
		chromedp.WindowSize(1350, 940), // Lighthouse's desktop viewport
		chromedp.CombinedOutput(out),
	)
	allocCtx, allocCancel := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	timer := time.AfterFunc(browserStartTimeout, cancel)
	err = chromedp.Do(ctx) // binds the browser's life to ctx
	var v browser.GetVersionResult
	if err == nil {
		v, err = chromedp.CallBrowser(ctx, browser.GetVersion, cdp.Empty{})
	}
	if !timer.Stop() && err != nil {
		err = fmt.Errorf("not ready after %s: %w", browserStartTimeout, err)
	}
	if err != nil {
		cancel()
		allocCancel()
		os.RemoveAll(dir)
		fail(err, out)
		return
	}
	b.ctx, b.cancel, b.allocCancel = ctx, cancel, allocCancel
	b.userAgent = strings.Replace(v.UserAgent, "HeadlessChrome", "Chrome", 1) + " " + UserAgent
	if p := chromedp.FromContext(ctx).Browser.Process(); p != nil {
		b.pid = p.Pid
	}
}

// close stops the browser and waits until its process and profile are gone.
func (b *browserProc) close() {
	<-b.ready
	if b.err != nil {
		return
	}
	tctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	_ = chromedp.Cancel(tctx) // graceful, then killed
	cancel()
	b.cancel()
	b.allocCancel() // waits until the process has exited
	removeChromiumProfile(b.profile)
}

// removeChromiumProfile removes a profile once the browser has exited. Its
// children (zygote, network service) can outlive a browser that was killed
// and keep writing there: they are ended first, found by the profile on
// their command line, which is unique to the process this package started.
func removeChromiumProfile(dir string) {
	if dir == "" {
		return
	}
	for quiet, deadline := 0, time.Now().Add(2*time.Second); quiet < 3 && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if killProfileLeftovers(dir) == 0 {
			quiet++
		} else {
			quiet = 0
		}
	}
	for range 5 {
		if os.RemoveAll(dir) == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// killProfileLeftovers kills the processes started with --user-data-dir=dir
// and says how many it found (none where there is no /proc).
func killProfileLeftovers(dir string) int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	want := "--user-data-dir=" + dir
	n := 0
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !slices.Contains(strings.Split(string(cmdline), "\x00"), want) {
			continue
		}
		if p, err := os.FindProcess(pid); err == nil && p.Kill() == nil {
			n++
		}
	}
	return n
}

// profilePrefix names the profiles this package makes in the temp dir.
const profilePrefix = "meridian-chromium-"

// newChromiumProfile makes an empty user data directory whose preferences
// turn network prediction (preconnect, DNS prefetch) off, and notes the
// agent's pid in it. It first removes the profiles of agents that died
// without closing their browser.
func newChromiumProfile() (string, error) {
	sweepStaleProfiles()
	dir, err := os.MkdirTemp("", profilePrefix)
	if err != nil {
		return "", err
	}
	prefs := `{"net":{"network_prediction_options":2}}`
	err = os.Mkdir(filepath.Join(dir, "Default"), 0o700)
	if err == nil {
		err = os.WriteFile(filepath.Join(dir, "Default", "Preferences"), []byte(prefs), 0o600)
	}
	if err == nil {
		err = os.WriteFile(filepath.Join(dir, "meridian.pid"), []byte(strconv.Itoa(os.Getpid())), 0o600)
	}
	if err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	return dir, nil
}

// sweepStaleProfiles removes the profiles whose agent process is gone (on
// systems with /proc; elsewhere it leaves them).
func sweepStaleProfiles() {
	if _, err := os.Stat("/proc/self"); err != nil {
		return
	}
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), profilePrefix+"*"))
	for _, dir := range dirs {
		b, err := os.ReadFile(filepath.Join(dir, "meridian.pid"))
		if err != nil {
			continue // not ours, or still being made
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid == os.Getpid() {
			continue
		}
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); os.IsNotExist(err) {
			removeChromiumProfile(dir)
		}
	}
}

// CloseBrowser stops the shared Chromium processes; the next browser check
// starts a new one. Loads still running fail. Call it at shutdown.
func CloseBrowser() {
	browsers.Lock()
	bs := browsers.m
	browsers.m = map[string]*browserProc{}
	browsers.Unlock()
	var wg sync.WaitGroup
	for _, b := range bs {
		wg.Go(b.close)
	}
	wg.Wait()
	browsers.reaping.Wait()
}

// tailWriter keeps the last max bytes written to it: the browser's last
// words when it fails to start.
type tailWriter struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (w *tailWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	if len(w.buf) > w.max {
		w.buf = w.buf[len(w.buf)-w.max:]
	}
	return len(p), nil
}

func (w *tailWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return string(w.buf)
}

// pageLoads bounds the page loads running at once in this process. Each
// check waits until fewer than its own concurrency are running.
var pageLoads loadSlots

type loadSlots struct {
	mu      sync.Mutex
	running int
	freed   chan struct{} // closed and replaced on every release
}

func (s *loadSlots) acquire(ctx context.Context, limit int) error {
	for {
		s.mu.Lock()
		if s.running < limit {
			s.running++
			s.mu.Unlock()
			return nil
		}
		if s.freed == nil {
			s.freed = make(chan struct{})
		}
		freed := s.freed
		s.mu.Unlock()
		select {
		case <-freed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (s *loadSlots) release() {
	s.mu.Lock()
	s.running--
	if s.freed != nil {
		close(s.freed)
		s.freed = nil
	}
	s.mu.Unlock()
}
