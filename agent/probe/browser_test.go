package probe

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"

	"github.com/meridian-net/meridian/internal/result"
)

// requireChromium fails (never skips) a test that needs a real browser.
func requireChromium(t *testing.T) {
	t.Helper()
	p := browserExecPath(&BrowserOptions{})
	if _, err := exec.LookPath(p); err != nil {
		t.Fatalf("browser tests need Chromium at %s (%v): install it with `apt-get install chromium`, or set MERIDIAN_CHROMIUM", p, err)
	}
}

// testPNG is a w×h opaque image, so that it is an LCP candidate.
func testPNG(t *testing.T, w, h int) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.RGBA{uint8(x), uint8(y), uint8(x ^ y), 255})
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// imageHost is an httptest server on 127.0.0.1 that serves one PNG at any
// path, after delay, with the given headers: a stand-in for a CDN host.
func imageHost(t *testing.T, img []byte, delay time.Duration, headers ...string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if delay > 0 {
			time.Sleep(delay)
		}
		for i := 0; i+1 < len(headers); i += 2 {
			w.Header().Set(headers[i], headers[i+1])
		}
		w.Header().Set("Content-Type", "image/png")
		w.Header().Set("Cache-Control", "no-store")
		w.Write(img)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// pageServer serves html at / and 404 elsewhere.
func pageServer(t *testing.T, html string) *httptest.Server {
	return delayedPageServer(t, html, 0)
}

// delayedPageServer waits ttfb before it answers for /.
func delayedPageServer(t *testing.T, html string, ttfb time.Duration) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		time.Sleep(ttfb)
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, html)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func browserCheck(target string) *Check {
	return &Check{Name: "page", Kind: result.KindBrowser, Target: target, Timeout: 15 * time.Second,
		Browser: BrowserOptions{WaitAfterLoad: 300 * time.Millisecond}}
}

func mustLoad(t *testing.T, c *Check) *pageLoad {
	t.Helper()
	pl, err := loadPage(context.Background(), c)
	if err != nil {
		t.Fatalf("loadPage(%s): %v", c.Target, err)
	}
	if err := pl.res.Validate(); err != nil {
		t.Errorf("result does not validate: %v", err)
	}
	return pl
}

func f64(p *float64) string {
	if p == nil {
		return "<absent>"
	}
	return fmt.Sprintf("%.1f", *p)
}

// TestBrowserPageWithTwoImageHosts loads a page whose images come from two
// other local hosts, one of them 300 ms slow.
func TestBrowserPageWithTwoImageHosts(t *testing.T) {
	requireChromium(t)
	img := testPNG(t, 300, 200)
	fast := imageHost(t, img, 0, "cf-ray", "8a1b2c3d4e5f6789-AMS", "cf-cache-status", "HIT")
	slow := imageHost(t, img, 300*time.Millisecond, "x-amz-cf-pop", "FRA56-C1", "x-cache", "Miss from cloudfront")
	const ttfb = 100 * time.Millisecond
	page := delayedPageServer(t, fmt.Sprintf(`<!doctype html><title>t</title>
<h1>Hello from the origin</h1><p>Some text to paint first.</p>
<img src="%[1]s/a.png" width="300" height="200"><img src="%[1]s/b.png" width="300" height="200">
<img src="%[2]s/hero.png" width="600" height="400">`, fast.URL, slow.URL), ttfb)

	pl := mustLoad(t, browserCheck(page.URL+"/"))
	r := pl.res
	if !r.OK {
		t.Fatalf("result not ok: %s %s", r.Error, r.ErrorMessage)
	}
	b := r.Browser
	t.Logf("ttfb=%s transfer=%s total=%s dcl=%s load=%s fcp=%s lcp=%s cls=%s tbt=%s resources=%d bytes=%d status=%d",
		f64(r.TTFBMs), f64(r.TransferMs), f64(r.TotalMs), f64(b.DOMContentMs), f64(b.LoadMs), f64(b.FCPMs), f64(b.LCPMs),
		f64(b.CLS), f64(b.TBTMs), b.Resources, b.PageBytes, r.HTTP.Status)
	j, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s", j)
	// The breakdown is part of the result, on the wire too.
	var back result.Result
	if err := result.Unmarshal(j, &back); err != nil {
		t.Fatalf("the result does not decode: %v", err)
	}
	if back.Browser == nil || len(back.Browser.Hosts) != len(b.Hosts) {
		t.Errorf("browser_hosts did not survive the JSON round trip: %s", j)
	}
	for name, v := range map[string]*float64{"fcp": b.FCPMs, "lcp": b.LCPMs, "ttfb": r.TTFBMs, "total": r.TotalMs} {
		if v == nil || *v <= 0 {
			t.Errorf("%s = %s, want > 0", name, f64(v))
		}
	}
	if r.DNSMs != nil {
		t.Errorf("dns_ms = %s for an IP target, want absent", f64(r.DNSMs))
	}
	if r.ConnectMs == nil || *r.ConnectMs > 50 || r.TLSMs != nil {
		t.Errorf("connect_ms = %s, tls_ms = %s: want a (loopback-fast) connect and no TLS on plain http", f64(r.ConnectMs), f64(r.TLSMs))
	}
	// The server's wait shows up in TTFB, and only there.
	if r.TTFBMs == nil || *r.TTFBMs < 100 || *r.TTFBMs > 100+250 || r.TransferMs == nil || *r.TransferMs > 50 {
		t.Errorf("ttfb_ms = %s, transfer_ms = %s; want ttfb in [100, 350] ms (the server waited %s) and a short transfer", f64(r.TTFBMs), f64(r.TransferMs), ttfb)
	}
	// The slow host holds the load event back.
	if r.TotalMs == nil || *r.TotalMs < 300 {
		t.Errorf("total_ms = %s, want >= 300 (an image took 300 ms)", f64(r.TotalMs))
	}
	if b.Resources < 4 || b.PageBytes < int64(3*len(img)) {
		t.Errorf("resources = %d, page_bytes = %d; want >= 4 and >= %d", b.Resources, b.PageBytes, 3*len(img))
	}
	if r.HTTP == nil || r.HTTP.Status != 200 || r.HTTP.RemoteIP != "127.0.0.1" || r.HTTP.DNSSource != "ip" {
		t.Errorf("http = %+v, want status 200 from 127.0.0.1, dns_source ip", r.HTTP)
	}
	if len(b.Hosts) != 3 {
		t.Errorf("browser_hosts has %d hosts, want 3 (the page and two image hosts): %+v", len(b.Hosts), b.Hosts)
	}
	for i := 1; i < len(b.Hosts); i++ {
		if b.Hosts[i].Bytes > b.Hosts[i-1].Bytes {
			t.Errorf("browser_hosts not most bytes first: %+v", b.Hosts)
			break
		}
	}
	byHost := map[string]result.BrowserHost{}
	for _, h := range b.Hosts {
		byHost[h.Host] = h
	}
	for _, tc := range []struct {
		srv      *httptest.Server
		requests int
		minMs    float64
		cdn, pop string
		hits     int
	}{{page, 1, 100, "", "", 0}, {fast, 2, 0, "cloudflare", "AMS", 2}, {slow, 1, 300, "cloudfront", "FRA56", 0}} {
		host := strings.TrimPrefix(tc.srv.URL, "http://")
		h, ok := byHost[host]
		switch {
		case !ok:
			t.Errorf("no breakdown for host %s in browser_hosts (have %+v)", host, b.Hosts)
		case h.Requests < tc.requests || h.Bytes <= 0 || h.Failed != 0:
			t.Errorf("host %s: %+v, want >= %d requests, bytes > 0, none failed", host, h, tc.requests)
		case h.MaxMs == nil || *h.MaxMs < tc.minMs:
			t.Errorf("host %s: max_ms = %s, want >= %v", host, f64(h.MaxMs), tc.minMs)
		case h.CDN != tc.cdn || h.CDNPoP != tc.pop || h.CacheHits != tc.hits:
			t.Errorf("host %s: cdn %q pop %q hits %d, want %q %q %d", host, h.CDN, h.CDNPoP, h.CacheHits, tc.cdn, tc.pop, tc.hits)
		}
	}
}

// TestBrowserHostsFoldOther: past browserMaxHosts hosts, the smallest are
// summed into one "(other)" entry (no Chromium needed).
func TestBrowserHostsFoldOther(t *testing.T) {
	rec := &pageRecorder{reqs: map[network.RequestID]*pageRequest{}}
	if h := rec.hosts(); h != nil {
		t.Errorf("hosts of an empty load = %+v, want nil", h)
	}
	const n = browserMaxHosts + 3
	for i := range n {
		id := network.RequestID(fmt.Sprint(i))
		rec.order = append(rec.order, id)
		q := &pageRequest{host: fmt.Sprintf("h%02d.example:80", i), start: 1, end: 1 + float64(i)/1000, bytes: float64(1000 * (n - i))}
		if i == n-1 {
			q.failed = true
			q.resp = &network.Response{Headers: network.Headers{"cf-ray": "8a1b2c3d4e5f6789-AMS", "cf-cache-status": "HIT"}}
		}
		rec.reqs[id] = q
	}
	hosts := rec.hosts()
	if len(hosts) != browserMaxHosts+1 {
		t.Fatalf("got %d hosts, want %d", len(hosts), browserMaxHosts+1)
	}
	if hosts[0].Host != "h00.example:80" || hosts[0].Bytes != 1000*n || hosts[0].CDN != "" {
		t.Errorf("first host %+v, want h00 with the most bytes", hosts[0])
	}
	o := hosts[browserMaxHosts]
	if o.Host != "(other)" || o.Requests != 3 || o.Failed != 1 || o.CacheHits != 1 || o.Bytes != 1000*(3+2+1) ||
		o.MaxMs == nil || *o.MaxMs != float64(n-1) || o.CDN != "" {
		t.Errorf("(other) = %+v (max_ms %s), want 3 requests, 1 failed, 1 cache hit, 6000 bytes, max_ms %d, no CDN", o, f64(o.MaxMs), n-1)
	}
}

func TestBrowserLayoutShift(t *testing.T) {
	requireChromium(t)
	page := pageServer(t, `<!doctype html><title>t</title>
<div id="top"></div>
<p style="font-size:40px">This text moves down when the banner arrives.</p>
<p style="font-size:40px">And so does this paragraph.</p>
<script>setTimeout(() => {
  document.getElementById('top').style.height = '300px';
}, 150);</script>`)
	r := mustLoad(t, browserCheck(page.URL+"/")).res
	if !r.OK {
		t.Fatalf("result not ok: %s %s", r.Error, r.ErrorMessage)
	}
	if r.Browser.CLS == nil || *r.Browser.CLS <= 0 {
		t.Errorf("cls = %s, want > 0", f64(r.Browser.CLS))
	}
	t.Logf("cls = %s", f64(r.Browser.CLS))
}

func TestBrowserLongTaskAndConsoleErrors(t *testing.T) {
	requireChromium(t)
	page := pageServer(t, `<!doctype html><title>t</title>
<p>Painted first, then blocked.</p>
<script>
console.error('first error');
addEventListener('load', () => setTimeout(() => {
  const end = performance.now() + 200;
  while (performance.now() < end) {}
  console.error('second error');
  throw new Error('uncaught');
}, 50));
</script>`)
	r := mustLoad(t, browserCheck(page.URL+"/")).res
	if !r.OK {
		t.Fatalf("result not ok: %s %s", r.Error, r.ErrorMessage)
	}
	b := r.Browser
	// 200 ms of work blocks for 150 ms after FCP. On a loaded machine the
	// first paint can be stamped inside the task (seen: 131 ms), so the bar
	// is lower; no long task at all would give 0 or nothing.
	if b.TBTMs == nil || *b.TBTMs < 100 {
		t.Errorf("tbt_ms = %s, want >= 100", f64(b.TBTMs))
	}
	if b.ConsoleErrors != 3 {
		t.Errorf("console_errors = %d, want 3 (two console.error and an exception)", b.ConsoleErrors)
	}
	if b.CLS == nil || *b.CLS != 0 {
		t.Errorf("cls = %s, want 0 for a page that does not move", f64(b.CLS))
	}
	t.Logf("tbt = %s, console_errors = %d", f64(b.TBTMs), b.ConsoleErrors)
}

func TestBrowserRefused(t *testing.T) {
	requireChromium(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	r := mustLoad(t, browserCheck("http://"+addr+"/")).res
	if r.OK || r.Error != result.ErrConnectRefused {
		t.Errorf("got ok=%v error=%q (%s), want connect_refused", r.OK, r.Error, r.ErrorMessage)
	}
	if !strings.Contains(r.ErrorMessage, "ERR_CONNECTION_REFUSED") {
		t.Errorf("error message %q does not name the browser's error", r.ErrorMessage)
	}
	if r.TotalMs == nil {
		t.Errorf("total_ms absent, want the time until the failure")
	}
}

func TestBrowserUntrustedCert(t *testing.T) {
	requireChromium(t)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "<p>secret</p>")
	}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the browser's "unknown certificate" alert is the point
	srv.StartTLS()
	t.Cleanup(srv.Close)
	r := mustLoad(t, browserCheck(srv.URL+"/")).res
	if r.OK || r.Error != result.ErrTLSCertUntrusted {
		t.Errorf("got ok=%v error=%q (%s), want tls_cert_untrusted", r.OK, r.Error, r.ErrorMessage)
	}
}

func TestBrowserNotFound(t *testing.T) {
	requireChromium(t)
	page := pageServer(t, `<!doctype html><p>home</p>`)
	r := mustLoad(t, browserCheck(page.URL+"/missing")).res
	if r.OK || r.Error != result.ErrHTTPStatus || r.HTTP == nil || r.HTTP.Status != 404 {
		t.Errorf("got ok=%v error=%q (%s) http=%+v, want http_status with 404", r.OK, r.Error, r.ErrorMessage, r.HTTP)
	}
	// The page still loaded: its timings are there.
	if r.TTFBMs == nil || r.Browser == nil || r.Browser.FCPMs == nil {
		t.Errorf("ttfb = %s, browser = %+v: want the 404 page's timings", f64(r.TTFBMs), r.Browser)
	}
}

func TestBrowserTimeout(t *testing.T) {
	requireChromium(t)
	hang := make(chan struct{})
	page := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/" {
			fmt.Fprint(w, `<!doctype html><p>waiting for an image</p><img src="/never.png">`)
			return
		}
		select {
		case <-hang:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(hang); page.Close() })
	// Chromium first starts under the usual timeout, so that the short one
	// times the page, not a cold start on a loaded machine; and it is long
	// enough for the document to paint there too.
	warm := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "<p>warm") }))
	t.Cleanup(warm.Close)
	mustLoad(t, browserCheck(warm.URL+"/"))
	c := browserCheck(page.URL + "/")
	c.Timeout = 4 * time.Second
	start := time.Now()
	r := mustLoad(t, c).res
	if d := time.Since(start); d > 7*time.Second {
		t.Errorf("the check took %s with a 4s timeout", d)
	}
	if r.OK || r.Error != result.ErrTimeout {
		t.Fatalf("got ok=%v error=%q (%s), want timeout", r.OK, r.Error, r.ErrorMessage)
	}
	// What happened before the deadline is kept.
	if r.HTTP == nil || r.HTTP.Status != 200 || r.TTFBMs == nil || r.Browser.FCPMs == nil || r.TotalMs != nil {
		t.Errorf("status %+v ttfb=%s fcp=%s total=%s: want the document's timings, no total", r.HTTP, f64(r.TTFBMs), f64(r.Browser.FCPMs), f64(r.TotalMs))
	}
}

// TestBrowserOneProcess starts from no browser: two checks at once start
// one process, and a third later reuses it.
func TestBrowserOneProcess(t *testing.T) {
	requireChromium(t)
	page := pageServer(t, `<!doctype html><p>shared</p>`)
	CloseBrowser()
	// The profile of an agent that died without closing its browser goes
	// when the next browser starts.
	stale, err := os.MkdirTemp("", profilePrefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(stale) })
	if err := os.WriteFile(filepath.Join(stale, "meridian.pid"), []byte("99999999"), 0o600); err != nil {
		t.Fatal(err)
	}
	before := browserStarts.Load()
	var wg sync.WaitGroup
	pids := make([]int, 2)
	for i := range pids {
		wg.Go(func() {
			pl := mustLoad(t, browserCheck(page.URL+"/"))
			if !pl.res.OK {
				t.Errorf("check %d: %s %s", i, pl.res.Error, pl.res.ErrorMessage)
			}
			pids[i] = pl.pid
		})
	}
	wg.Wait()
	if n := browserStarts.Load() - before; n != 1 {
		t.Errorf("two concurrent checks started %d browsers, want 1", n)
	}
	if pids[0] == 0 || pids[0] != pids[1] {
		t.Errorf("checks ran in processes %v, want one", pids)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("the stale profile %s is still there (%v)", stale, err)
	}
	if pl := mustLoad(t, browserCheck(page.URL+"/")); pl.pid != pids[0] || browserStarts.Load()-before != 1 {
		t.Errorf("a later check ran in pid %d (starts %d), want the same process %d", pl.pid, browserStarts.Load()-before, pids[0])
	}
}

// TestBrowserRestartsDeadBrowser kills the shared browser: the next check
// starts another.
func TestBrowserRestartsDeadBrowser(t *testing.T) {
	requireChromium(t)
	t.Cleanup(CloseBrowser) // the last test with a browser: leave no process behind
	page := pageServer(t, `<!doctype html><p>again</p>`)
	first := mustLoad(t, browserCheck(page.URL+"/"))
	if err := syscall.Kill(first.pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill %d: %v", first.pid, err)
	}
	// Wait until chromedp has noticed the death.
	deadline := time.Now().Add(5 * time.Second)
	for {
		browsers.Lock()
		b := browsers.m[browserExecPath(&BrowserOptions{})]
		browsers.Unlock()
		if b == nil || b.ctx.Err() != nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	second := mustLoad(t, browserCheck(page.URL+"/"))
	if !second.res.OK || second.pid == first.pid {
		t.Errorf("after the kill: ok=%v (%s) pid %d, want ok in a new process (old %d)", second.res.OK, second.res.ErrorMessage, second.pid, first.pid)
	}
}

func TestBrowserCannotStart(t *testing.T) {
	c := browserCheck("http://127.0.0.1:1/")
	c.Browser.ExecPath = "/nonexistent/chromium"
	_, err := Browser(context.Background(), c)
	if err == nil || !strings.Contains(err.Error(), "apt-get install chromium") {
		t.Errorf("got %v, want an error naming `apt-get install chromium`", err)
	}
}

func TestBrowserOptionsDefaults(t *testing.T) {
	t.Setenv("MERIDIAN_CHROMIUM", "")
	var o BrowserOptions
	if browserExecPath(&o) != DefaultChromium || browserWait(&o) != time.Second || browserConcurrency(&o) != 2 {
		t.Errorf("defaults: %s %s %d", browserExecPath(&o), browserWait(&o), browserConcurrency(&o))
	}
	t.Setenv("MERIDIAN_CHROMIUM", "/opt/chrome")
	if browserExecPath(&o) != "/opt/chrome" {
		t.Errorf("MERIDIAN_CHROMIUM ignored: %s", browserExecPath(&o))
	}
	o = BrowserOptions{ExecPath: "/x", WaitAfterLoad: -1, Concurrency: 5}
	if browserExecPath(&o) != "/x" || browserWait(&o) != 0 || browserConcurrency(&o) != 5 {
		t.Errorf("set: %s %s %d", browserExecPath(&o), browserWait(&o), browserConcurrency(&o))
	}
}

func TestBrowserLoadSlots(t *testing.T) {
	var s loadSlots
	ctx := context.Background()
	for range 2 {
		if err := s.acquire(ctx, 2); err != nil {
			t.Fatal(err)
		}
	}
	tctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := s.acquire(tctx, 2); err == nil {
		t.Fatalf("a third load got a slot with a limit of 2")
	}
	got := make(chan error, 1)
	go func() { got <- s.acquire(ctx, 2) }()
	time.Sleep(20 * time.Millisecond)
	s.release()
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(2 * time.Second):
		t.Fatalf("a release did not wake the waiting load")
	}
}

func TestLoadErrorClass(t *testing.T) {
	for text, want := range map[string]string{
		"net::ERR_NAME_NOT_RESOLVED":          result.ErrDNSNXDomain,
		"net::ERR_CONNECTION_REFUSED":         result.ErrConnectRefused,
		"net::ERR_CONNECTION_TIMED_OUT":       result.ErrConnectTimeout,
		"net::ERR_TIMED_OUT":                  result.ErrTimeout,
		"net::ERR_CERT_DATE_INVALID":          result.ErrTLSCertExpired,
		"net::ERR_CERT_AUTHORITY_INVALID":     result.ErrTLSCertUntrusted,
		"net::ERR_CERT_COMMON_NAME_INVALID":   result.ErrTLSNameMismatch,
		"net::ERR_SSL_PROTOCOL_ERROR":         result.ErrTLSHandshake,
		"net::ERR_HTTP_RESPONSE_CODE_FAILURE": result.ErrHTTPStatus,
		"net::ERR_EMPTY_RESPONSE":             result.ErrHTTP,
		"net::ERR_ADDRESS_UNREACHABLE":        result.ErrConnectUnreach,
		"net::ERR_BLOCKED_BY_CLIENT":          result.ErrBrowser,
	} {
		if got := loadErrorClass(text); got != want {
			t.Errorf("loadErrorClass(%q) = %q, want %q", text, got, want)
		}
	}
}
