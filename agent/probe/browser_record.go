package probe

// What a tab saw on the wire: its requests, the main document and console
// errors, and per-host totals.

import (
	"math"
	"net/url"
	"slices"
	"strings"
	"sync"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"

	"github.com/meridian-net/meridian/internal/result"
)

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
