package probe

// How a page load becomes a result: the main document's HTTP and TLS, and
// the metrics the page reports (navigation timing, paint, layout shifts, long tasks).

import (
	"math"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/chromedp/cdproto/network"

	"github.com/meridian-net/meridian/internal/result"
)

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
