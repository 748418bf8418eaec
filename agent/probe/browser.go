package probe

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	checkdef "github.com/meridian-net/meridian/internal/probe"
	"github.com/meridian-net/meridian/internal/result"
)

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

// browserExecPath is the Chromium binary of o.
func browserExecPath(o *BrowserOptions) string {
	switch {
	case o.ExecPath != "":
		return o.ExecPath
	case os.Getenv("MERIDIAN_CHROMIUM") != "":
		return os.Getenv("MERIDIAN_CHROMIUM")
	}
	return DefaultChromium
}

// browserWait is how long o waits after the load event.
func browserWait(o *BrowserOptions) time.Duration {
	switch {
	case o.WaitAfterLoad < 0:
		return 0
	case o.WaitAfterLoad == 0:
		return DefaultBrowserWait
	}
	return o.WaitAfterLoad
}

// browserConcurrency is how many pages this agent loads at once.
func browserConcurrency(o *BrowserOptions) int {
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
	u, err := checkdef.ParseHTTPTarget(c.Target)
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
	if err := pageLoads.acquire(ctx, browserConcurrency(o)); err != nil {
		return nil, fmt.Errorf("browser check %q: no free page-load slot before the deadline (%d loads at once; raise browser.concurrency or the timeout): %w", c.Name, browserConcurrency(o), err)
	}
	defer pageLoads.release()
	b, err := getBrowser(ctx, browserExecPath(o))
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
		if wait := min(browserWait(o), time.Until(deadline.Add(-reserve))); wait > 0 {
			select {
			case <-time.After(wait):
			case <-loadCtx.Done():
			}
		}
	} else if loadCtx.Err() != nil && tabCtx.Err() == nil {
		// Out of time: stop the page so that what it did so far can be read.
		_ = chromedp.Do(readCtx, chromedp.Stop())
	}
	var loadErr *chromedp.LoadError
	var m *pageMetrics
	if !errors.As(navErr, &loadErr) && tabCtx.Err() == nil {
		// A failed navigation shows Chromium's error page: nothing to read.
		m, navErr = readMetrics(readCtx, navErr)
	}
	doc := resp
	if doc == nil {
		doc = rec.mainDocument()
	}
	assemble(res, u, doc, m, rec, start)
	b.outcome(res, u, doc, navErr, loadErr, ctx.Err() != nil || loadCtx.Err() != nil, navEnd.Sub(start), deadline.Sub(start))
	return pl, nil
}

// readMetrics reads what the page measured; a failure to read is the
// load's error when it had none.
func readMetrics(readCtx context.Context, navErr error) (*pageMetrics, error) {
	v, err := chromedp.Run(readCtx, chromedp.Evaluate[pageMetrics](metricsScript))
	if err == nil {
		return &v, navErr
	}
	if navErr == nil {
		navErr = fmt.Errorf("reading the page's metrics: %w", err)
	}
	return nil, navErr
}

// outcome marks res ok, or failed with the class of where the load failed:
// an HTTP status, Chromium's load error, the deadline (timedOut), or the
// browser itself. took is the time to the navigation's end, budget the
// check's.
func (b *browserProc) outcome(res *result.Result, u *url.URL, doc *network.Response, navErr error, loadErr *chromedp.LoadError, timedOut bool, took, budget time.Duration) {
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
			res.TotalMs = result.Ms(took) // the time until the failure
		}
	case timedOut:
		what := "the load event"
		if doc == nil {
			what = "a response to the page request"
		}
		res.Fail(result.ErrTimeout, fmt.Errorf("no %s from %s within %s", what, u, budget.Round(time.Millisecond)))
	default:
		if b.ctx.Err() != nil {
			navErr = fmt.Errorf("%w (the browser process %d died; the next check starts a new one)", navErr, b.pid)
		}
		res.Fail(result.ErrBrowser, navErr)
	}
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
