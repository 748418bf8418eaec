package e2e

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"text/template"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/chromedp/chromedp"

	"github.com/meridian-net/meridian/collector/enrich"
	"github.com/meridian-net/meridian/collector/enrich/enrichtest"
	"github.com/meridian-net/meridian/collector/server"
	"github.com/meridian-net/meridian/collector/store"
	"github.com/meridian-net/meridian/collector/store/chtest"
	rumjs "github.com/meridian-net/meridian/rum-js"
)

const chromium = "/usr/bin/chromium"

// TestRUMBeaconFromChromium loads rum-js/testdata/page.html in headless
// Chromium with the script from a real collector (in-process, on the test
// ClickHouse) and images and probe objects from two local "CDN" hosts,
// interacts, leaves, and checks what lands in ClickHouse. Then: a site
// sampled at 0 sends nothing, and a page on an unregistered origin is
// refused.
func TestRUMBeaconFromChromium(t *testing.T) {
	if _, err := exec.LookPath(chromium); err != nil {
		t.Fatalf("this test needs Debian's chromium at %s: apt-get install chromium", chromium)
	}
	dbOpts, conn := chtest.New(t)
	bin, _ := binaries(t)

	// Page servers first: their origins are what the sites register.
	cdn1, cdn2 := cdnServer(t), cdnServer(t)
	var pageData sync.Map // page server URL → template data
	page := func() *httptest.Server {
		tpl := template.Must(template.ParseFiles("../rum-js/testdata/page.html"))
		var srv *httptest.Server
		srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			d, _ := pageData.Load(srv.URL)
			var b bytes.Buffer
			if err := tpl.Execute(&b, d); err != nil {
				http.Error(w, err.Error(), 500)
				return
			}
			out := b.Bytes()
			if d.(map[string]string)["Sample"] != "" {
				out = bytes.Replace(out, []byte(`data-sample="1"`), []byte(`data-sample="`+d.(map[string]string)["Sample"]+`"`), 1)
			}
			w.Header().Set("Server-Timing", `app;dur=12.5;desc="render", cdn-cache;desc=MISS`)
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.Write(out)
		}))
		t.Cleanup(srv.Close)
		return srv
	}
	shop, zero, stranger := page(), page(), page()

	// The collector: beacons counted by status on their way in.
	en, err := enrich.Open(enrich.Options{
		GeoIPPath: enrichtest.CityDB(t, map[string]enrichtest.City{"127.0.0.0/8": {Country: "NL", Region: "NH", City: "Amsterdam"}}),
		ASNPath:   enrichtest.ASNDB(t, map[string]enrichtest.ASN{"127.0.0.0/8": {Number: 64512, Org: "Loopback Networks"}}),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer en.Close()
	bw, err := store.NewBeaconWriter(conn, store.WriterOptions{MaxDelay: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer bw.Close()
	handler := server.New(server.Config{Sites: store.NewSiteCache(conn), Beacons: bw, Enricher: en})
	beacons := make(chan int, 16)
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/beacon" {
			handler.ServeHTTP(w, r)
			return
		}
		rec := &statusRecorder{ResponseWriter: w, status: 200}
		handler.ServeHTTP(rec, r)
		t.Logf("beacon from %s: %s %s → %d", r.Header.Get("Origin"), r.Method, r.Header.Get("Content-Type"), rec.status)
		beacons <- rec.status
	}))
	defer collector.Close()

	// Sites, through the CLI: the snippet and the key on the last line.
	out := meridian(t, bin, dbOpts.Database, "sites", "add", "shop", "--origin", shop.URL,
		"--cdn", "cdn1="+cdn1.URL+"/probe.gif", "--cdn", "cdn2="+cdn2.URL+"/probe.gif", "--collector-url", collector.URL)
	shopKey := lastLine(out)
	if !strings.HasPrefix(shopKey, store.SiteKeyPrefix) || !strings.Contains(out, `data-site="`+shopKey+`"`) ||
		!strings.Contains(out, `src="`+collector.URL+`/rum.v1.js"`) || !strings.Contains(out, `integrity="`+rumjs.SRI()+`"`) ||
		!strings.Contains(out, `crossorigin="anonymous"`) || !strings.Contains(out, `data-cdns='{"cdn1":"`+cdn1.URL+`/probe.gif"`) {
		t.Fatalf("sites add printed:\n%s\nwant a tag with the key, src, integrity, data-cdns and the key on the last line", out)
	}
	zeroKey := lastLine(meridian(t, bin, dbOpts.Database, "sites", "add", "zero", "--origin", zero.URL, "--sample", "0"))
	if snip := meridian(t, bin, dbOpts.Database, "sites", "snippet", "zero", "--collector-url", collector.URL+"/rum.v1.js"); !strings.Contains(snip, `data-sample="0"`) {
		t.Errorf("sites snippet zero: got %q, want data-sample=\"0\"", snip)
	}
	if list := meridian(t, bin, dbOpts.Database, "sites", "list"); !strings.Contains(list, shopKey) || !strings.Contains(list, "cdn1,cdn2") {
		t.Errorf("sites list:\n%s", list)
	}
	data := func(key, sample string) map[string]string {
		return map[string]string{"Collector": collector.URL, "Site": key, "CDN1": cdn1.URL, "CDN2": cdn2.URL, "Sample": sample}
	}
	pageData.Store(shop.URL, data(shopKey, ""))
	pageData.Store(zero.URL, data(zeroKey, "0"))
	pageData.Store(stranger.URL, data(shopKey, "")) // the shop's key on an origin it did not register

	ctx := browser(t)

	t.Run("beacon lands in ClickHouse", func(t *testing.T) {
		visitShop(t, ctx, shop.URL+"/p?secret=1#frag")
		if status := nextBeacon(t, beacons, 10*time.Second); status != http.StatusNoContent {
			t.Fatalf("beacon answered %d, want 204", status)
		}
		select {
		case s := <-beacons:
			t.Errorf("a second beacon (%d) for one page view", s)
		case <-time.After(500 * time.Millisecond):
		}
		checkPageView(t, conn, shop.URL)
		checkCDNRows(t, conn, cdn1.URL, cdn2.URL, collector.URL)
	})

	t.Run("sample 0 sends nothing", func(t *testing.T) {
		visitAndLeave(t, ctx, zero.URL+"/")
		select {
		case s := <-beacons:
			t.Errorf("a site sampled at 0 sent a beacon (%d)", s)
		case <-time.After(2 * time.Second):
		}
	})

	t.Run("unregistered origin is refused", func(t *testing.T) {
		visitAndLeave(t, ctx, stranger.URL+"/")
		if status := nextBeacon(t, beacons, 10*time.Second); status != http.StatusForbidden {
			t.Errorf("beacon from an unregistered origin answered %d, want 403", status)
		}
		var n uint64
		conn.QueryRow(context.Background(), "SELECT count() FROM rum_pageviews").Scan(&n)
		if n != 1 {
			t.Errorf("got %d page views stored, want only the shop's 1", n)
		}
	})
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

func pngOf(w, h int) []byte {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			img.Set(x, y, color.RGBA{uint8(x), uint8(y), 200, 255})
		}
	}
	var b bytes.Buffer
	png.Encode(&b, img)
	return b.Bytes()
}

// cdnServer is a local "CDN": the page's images and a probe object, with
// the headers rum-js/BEACON.md asks of them.
func cdnServer(t *testing.T) *httptest.Server {
	hero, logo := pngOf(600, 300), pngOf(32, 32)
	gif := []byte("GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Timing-Allow-Origin", "*")
		switch r.URL.Path {
		case "/img/hero.png":
			time.Sleep(150 * time.Millisecond) // LCP comes after FCP
			w.Header().Set("Content-Type", "image/png")
			w.Write(hero)
		case "/img/logo.png":
			w.Header().Set("Content-Type", "image/png")
			w.Write(logo)
		case "/probe.gif":
			w.Header().Set("Cache-Control", "no-store")
			w.Header().Set("Access-Control-Allow-Origin", "*")
			w.Header().Set("Content-Type", "image/gif")
			w.Write(gif)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// browser starts a fresh headless Chromium for the test.
func browser(t *testing.T) context.Context {
	t.Helper()
	actx, cancelA := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromium),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.UserDataDir(t.TempDir()),
	)
	ctx, cancelB := chromedp.NewContext(actx)
	ctx, cancelT := context.WithTimeout(ctx, 120*time.Second)
	t.Cleanup(func() { cancelT(); cancelB(); cancelA() })
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("cannot start %s: %v", chromium, err)
	}
	return ctx
}

func probeEntries(n int) chromedp.Action[bool] {
	return chromedp.Poll[bool](fmt.Sprintf(`performance.getEntriesByType('resource').filter(e => e.name.includes('/probe.gif')).length >= %d`, n),
		chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(20*time.Second))
}

// visitShop does what rum-js/testdata/e2e_sketch.go.txt does: load, wait
// for the layout shift and the CDN probes, click (a slow interaction),
// wait for the warm probes, leave.
func visitShop(t *testing.T, ctx context.Context, url string) {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.Navigate(url), chromedp.WaitVisible("body[data-shifted]")); err != nil {
		t.Fatalf("cannot load %s: %v", url, err)
	}
	if _, err := chromedp.Run(ctx, probeEntries(2)); err != nil {
		t.Fatalf("the CDN probes did not start: %v (resources: %s)", err, resources(ctx))
	}
	if err := chromedp.Do(ctx, chromedp.Click("#work"), chromedp.Sleep(300*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Run(ctx, probeEntries(4)); err != nil {
		t.Fatalf("the CDN probes did not finish: %v (resources: %s)", err, resources(ctx))
	}
	// The script takes a probe's timings once its fetch has read the body
	// and the entry is observed; leaving at once may cut the last warm probe
	// (then sent without warm, as BEACON.md says). Give it a moment.
	if err := chromedp.Do(ctx, chromedp.Sleep(700*time.Millisecond), chromedp.Navigate("about:blank")); err != nil {
		t.Fatal(err)
	}
}

// visitAndLeave loads a page, waits until the script has loaded and the
// page has settled, and leaves.
func visitAndLeave(t *testing.T, ctx context.Context, url string) {
	t.Helper()
	err := chromedp.Do(ctx, chromedp.Navigate(url), chromedp.WaitVisible("body[data-shifted]"))
	if err == nil {
		_, err = chromedp.Run(ctx, chromedp.Poll[bool](`performance.getEntriesByType('resource').some(e => e.name.includes('/rum.v1.js') && e.responseEnd > 0)`,
			chromedp.WithPollingInterval(100*time.Millisecond), chromedp.WithPollingTimeout(10*time.Second)))
	}
	if err == nil {
		err = chromedp.Do(ctx, chromedp.Sleep(300*time.Millisecond), chromedp.Navigate("about:blank"))
	}
	if err != nil {
		t.Fatalf("cannot visit %s: %v (resources: %s)", url, err, resources(ctx))
	}
}

func resources(ctx context.Context) string {
	names, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`performance.getEntriesByType('resource').map(e => e.name)`))
	if err != nil {
		return err.Error()
	}
	return strings.Join(names, " ")
}

func nextBeacon(t *testing.T, beacons <-chan int, wait time.Duration) int {
	t.Helper()
	select {
	case s := <-beacons:
		return s
	case <-time.After(wait):
		t.Fatalf("no beacon within %v of leaving the page", wait)
		return 0
	}
}

func checkPageView(t *testing.T, conn driver.Conn, pageURL string) {
	t.Helper()
	var (
		url, country, city, asOrg, browserName, device, protocol, navType string
		asn                                                               uint32
		isBot, webdriver                                                  uint8
		sample                                                            float64
		fcp, lcp, cls, inp, ttfb, dns, connect, dcl, load, vttfb          *float64
		stNames                                                           []string
	)
	err := conn.QueryRow(context.Background(), `SELECT url, country, city, as_org, browser, device, protocol, nav_type, asn, is_bot, webdriver, sample,
		fcp_ms, lcp_ms, cls, inp_ms, ttfb_ms, dns_ms, connect_ms, dom_complete_ms, load_ms, vitals_ttfb_ms, server_timing_name
		FROM rum_pageviews FINAL`).Scan(&url, &country, &city, &asOrg, &browserName, &device, &protocol, &navType, &asn, &isBot, &webdriver, &sample,
		&fcp, &lcp, &cls, &inp, &ttfb, &dns, &connect, &dcl, &load, &vttfb, &stNames)
	if err != nil {
		t.Fatalf("no page view in rum_pageviews: %v", err)
	}
	t.Logf("page view: url %s, %s/%s AS%d %s, %s %s bot=%d, fcp %v lcp %v cls %v inp %v ttfb %v load %v",
		url, country, city, asn, asOrg, browserName, device, isBot, deref(fcp), deref(lcp), deref(cls), deref(inp), deref(ttfb), deref(load))
	if url != pageURL+"/p" || navType != "navigate" || sample != 1 || protocol != "http/1.1" {
		t.Errorf("got url %q nav %q sample %v protocol %q; want %s/p (no query, no fragment), navigate, 1, http/1.1", url, navType, sample, protocol, pageURL)
	}
	if country != "NL" || city != "Amsterdam" || asn != 64512 || asOrg != "Loopback Networks" {
		t.Errorf("enrichment: got %s/%s AS%d %q, want NL/Amsterdam AS64512 from the test databases", country, city, asn, asOrg)
	}
	if webdriver != 1 || isBot != 1 || device != "bot" {
		t.Errorf("got webdriver %d is_bot %d device %q; headless Chromium under chromedp is a bot, stored and flagged", webdriver, isBot, device)
	}
	between := func(name string, v *float64, lo, hi float64) {
		if v == nil || *v < lo || *v > hi {
			t.Errorf("%s: got %v, want in [%v, %v]", name, deref(v), lo, hi)
		}
	}
	between("fcp_ms", fcp, 1, 10000)
	between("lcp_ms", lcp, 150, 10000) // the hero image takes 150 ms
	if fcp != nil && lcp != nil && *lcp < *fcp {
		t.Errorf("lcp %v before fcp %v", *lcp, *fcp)
	}
	between("cls", cls, 0.01, 5)
	between("inp_ms", inp, 100, 5000) // the click blocks 150 ms
	between("ttfb_ms", ttfb, 0, 5000)
	between("vitals_ttfb_ms", vttfb, 0, 5000)
	between("dns_ms", dns, 0, 5000)
	between("connect_ms", connect, 0, 5000)
	between("dom_complete_ms", dcl, 1, 10000)
	between("load_ms", load, 150, 10000)
	if strings.Join(stNames, ",") != "app,cdn-cache" {
		t.Errorf("server timing names: got %q, want app,cdn-cache", stNames)
	}
}

func checkCDNRows(t *testing.T, conn driver.Conn, cdn1, cdn2, collector string) {
	t.Helper()
	rows, err := conn.Query(context.Background(), `SELECT kind, cdn, host, count, duration_ms, ttfb_ms, bytes, tao, error, country
		FROM rum_cdn FINAL ORDER BY kind, cdn, host`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	got := map[string]bool{}
	for rows.Next() {
		var (
			kind, cdn, host, country string
			count                    uint32
			dur, ttfb                *float64
			bytes                    *int64
			tao                      *uint8
			failed                   uint8
		)
		if err := rows.Scan(&kind, &cdn, &host, &count, &dur, &ttfb, &bytes, &tao, &failed, &country); err != nil {
			t.Fatal(err)
		}
		t.Logf("rum_cdn: %s %s %s count %d duration %v ttfb %v bytes %v tao %v error %d", kind, cdn, host, count, deref(dur), deref(ttfb), deref(bytes), deref(tao), failed)
		got[kind+" "+cdn+" "+host] = true
		if dur == nil || *dur < 0 || *dur > 10000 || failed != 0 || country != "NL" {
			t.Errorf("%s %s %s: got duration %v error %d country %q, want a plausible duration, no error, NL", kind, cdn, host, deref(dur), failed, country)
		}
		if kind == "host" && (tao == nil || *tao != 1 || count < 1) {
			t.Errorf("host %s: got tao %v count %d, want TAO passed and count ≥ 1", host, tao, count)
		}
		if kind != "host" && ttfb == nil {
			t.Errorf("%s %s: no ttfb_ms although the probe object sends Timing-Allow-Origin", kind, cdn)
		}
	}
	h1, h2, hc := strings.TrimPrefix(cdn1, "http://"), strings.TrimPrefix(cdn2, "http://"), strings.TrimPrefix(collector, "http://")
	for _, want := range []string{
		"host cdn1 " + h1, "host cdn2 " + h2, "host  " + hc,
		"probe_cold cdn1 " + h1, "probe_warm cdn1 " + h1, "probe_cold cdn2 " + h2, "probe_warm cdn2 " + h2,
	} {
		if !got[want] {
			t.Errorf("rum_cdn lacks a row %q; got %v", want, got)
		}
	}
}

func deref[T any](p *T) any {
	if p == nil {
		return "NULL"
	}
	return *p
}
