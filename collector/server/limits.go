package server

import (
	"bytes"
	"context"
	"errors"
	"hash/maphash"
	"io"
	"math"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/go-json-experiment/json/jsontext"
	"golang.org/x/time/rate"
)

// Limits protect the collector from overload and abuse. Zero rates mean no
// limit (serve's flags set the defaults users get); zero sizes take the
// defaults below.
type Limits struct {
	// BeaconInflightBytes bounds the memory of beacons between reading
	// and answering (decoded, waiting for the journal's fsync), each
	// counted as beaconCost says; ResultsInflightBytes bounds the result
	// batches' bodies, decompressed, over the same span. Past them ingest
	// answers 503 with Retry-After, before reading more. They also bound
	// the wait: a request in flight waits for at most a budget's worth of
	// others. Defaults 8 MiB and 16 MiB.
	BeaconInflightBytes  int64
	ResultsInflightBytes int64
	// SourceRate and SourceBurst limit beacons per client address (after
	// --trusted-proxy resolution; IPv6 by /64; loopback is not limited, as
	// a local proxy not listed as trusted would put every visitor in one
	// bucket). SiteRate and SiteBurst limit beacons per site. Past them:
	// 429 with Retry-After. A zero burst is two seconds' worth.
	SourceRate  float64
	SourceBurst int
	SiteRate    float64
	SiteBurst   int
	// MaxSources and MaxSites bound the buckets kept (defaults 65536 and
	// 4096); a bucket dropped for room comes back full.
	MaxSources int
	MaxSites   int
	// BeaconReadTimeout bounds reading a beacon's body (default 10s), so
	// a client dribbling it holds a connection no longer than that.
	BeaconReadTimeout time.Duration
	// Now is the clock of the buckets (tests); nil: time.Now.
	Now func() time.Time
}

func (l Limits) withDefaults() Limits {
	if l.BeaconInflightBytes <= 0 {
		l.BeaconInflightBytes = 8 << 20
	}
	if l.ResultsInflightBytes <= 0 {
		l.ResultsInflightBytes = 16 << 20
	}
	if l.MaxSources <= 0 {
		l.MaxSources = 1 << 16
	}
	if l.MaxSites <= 0 {
		l.MaxSites = 4096
	}
	if l.BeaconReadTimeout <= 0 {
		l.BeaconReadTimeout = 10 * time.Second
	}
	if l.Now == nil {
		l.Now = time.Now
	}
	// A burst of two seconds' worth unless told.
	if l.SourceBurst <= 0 {
		l.SourceBurst = int(max(1, 2*l.SourceRate))
	}
	if l.SiteBurst <= 0 {
		l.SiteBurst = int(max(1, 2*l.SiteRate))
	}
	return l
}

// errBusy ends a body read when the in-flight budget is spent.
var errBusy = errors.New("the collector is busy: too many bytes in flight")

// inflight is a budget of bytes held by requests in flight. Requests take
// from it as they read and give back when answered; one that cannot take
// is refused, never queued, so memory stays bounded whatever the load.
type inflight struct {
	max   int64
	used  atomic.Int64
	gauge *atomic.Int64
}

func newInflight(what string, budget int64) *inflight {
	return &inflight{max: budget, gauge: gauge(`meridian_ingest_inflight_bytes{what="` + what + `"}`)}
}

var gauges sync.Map // metric name → *atomic.Int64

// gauge is a process-wide gauge that every handler adds to: tests build
// many, and /metrics shows their sum.
func gauge(name string) *atomic.Int64 {
	v, loaded := gauges.LoadOrStore(name, new(atomic.Int64))
	g := v.(*atomic.Int64)
	if !loaded {
		metrics.GetOrCreateGauge(name, func() float64 { return float64(g.Load()) })
	}
	return g
}

// full tells whether a new request should be refused before reading.
func (f *inflight) full() bool { return f.used.Load() >= f.max }

// ticket is what one request holds of the budget.
type ticket struct {
	f    *inflight
	held int64
}

func (f *inflight) ticket() *ticket { return &ticket{f: f} }

// take adds n bytes to the ticket, or refuses (holding what it held).
func (t *ticket) take(n int64) bool {
	for {
		used := t.f.used.Load()
		// A request alone may exceed the budget, so that none is refused
		// for ever; it still shuts out the others while it is held.
		if used+n > t.f.max && used > t.held {
			return false
		}
		if t.f.used.CompareAndSwap(used, used+n) {
			t.f.gauge.Add(n)
			t.held += n
			return true
		}
	}
}

func (t *ticket) release() {
	t.f.used.Add(-t.held)
	t.f.gauge.Add(-t.held)
	t.held = 0
}

// reader charges what r yields to the ticket, failing with errBusy.
func (t *ticket) reader(r io.Reader) io.Reader { return &chargedReader{r, t} }

type chargedReader struct {
	r io.Reader
	t *ticket
}

func (c *chargedReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if n > 0 && !c.t.take(int64(n)) {
		return 0, errBusy
	}
	return n, err
}

// buckets holds one token bucket per key, at most max of them in two
// generations: when the newer is half full it becomes the older and the
// older is dropped. A key not seen for a generation gets a full bucket
// again, so memory stays bounded however many sources a flood uses.
type buckets struct {
	limit    rate.Limit
	burst    int
	max      int
	now      func() time.Time
	mu       sync.Mutex
	cur, old map[uint64]*rate.Limiter
	gauge    *atomic.Int64 // buckets kept
}

// newBuckets returns nil (no limit) when perSecond is 0.
func newBuckets(what string, perSecond float64, burst, keep int, now func() time.Time) *buckets {
	if perSecond <= 0 {
		return nil
	}
	b := &buckets{limit: rate.Limit(perSecond), burst: max(burst, 1), max: max(keep, 2), now: now,
		cur: map[uint64]*rate.Limiter{}, old: map[uint64]*rate.Limiter{}, gauge: gauge(`meridian_ingest_rate_buckets{what="` + what + `"}`)}
	return b
}

// allow takes a token from key's bucket; when there is none it says how
// long until there is.
func (b *buckets) allow(key uint64) (bool, time.Duration) {
	if b == nil {
		return true, 0
	}
	now := b.now()
	b.mu.Lock()
	lim := b.cur[key]
	if lim == nil {
		if lim = b.old[key]; lim != nil {
			delete(b.old, key)
		} else {
			lim = rate.NewLimiter(b.limit, b.burst)
			b.gauge.Add(1)
		}
		if len(b.cur) >= b.max/2 {
			b.gauge.Add(-int64(len(b.old)))
			b.old, b.cur = b.cur, make(map[uint64]*rate.Limiter, len(b.cur))
		}
		b.cur[key] = lim
	}
	b.mu.Unlock()
	if lim.AllowN(now, 1) {
		return true, 0
	}
	missing := 1 - lim.TokensAt(now)
	return false, time.Duration(missing / float64(b.limit) * float64(time.Second))
}

// keySeed keys the buckets: they hold a hash, never an address or a key.
var keySeed = maphash.MakeSeed()

// sourceKey is the bucket of a client address: its /64 for IPv6 (one
// host's usual share), the address for IPv4. Loopback and unknown
// addresses are not limited (false).
func sourceKey(a netip.Addr) (uint64, bool) {
	if !a.IsValid() || a.IsLoopback() {
		return 0, false
	}
	bits := 32
	if a.Is6() {
		bits = 64
	}
	p, _ := a.Prefix(bits)
	return maphash.Comparable(keySeed, p), true
}

// siteKeyOf finds the top-level "site" member of a beacon without decoding
// the rest, so a site over its rate costs little. "" when there is none
// (the decoder then says what is wrong).
func siteKeyOf(raw []byte) string {
	d := jsontext.NewDecoder(bytes.NewReader(raw))
	if tok, err := d.ReadToken(); err != nil || tok.Kind() != '{' {
		return ""
	}
	for d.PeekKind() == '"' {
		name, err := d.ReadToken()
		if err != nil {
			return ""
		}
		if name.String() == "site" {
			if v, err := d.ReadToken(); err == nil && v.Kind() == '"' {
				return v.String()
			}
			return ""
		}
		if d.SkipValue() != nil {
			return ""
		}
	}
	return ""
}

// tooMany answers 429 naming the limit, with Retry-After in whole seconds
// (at least 1).
func tooMany(w http.ResponseWriter, wait time.Duration, reason, msg string) {
	w.Header().Set("Retry-After", strconv.Itoa(int(max(1, math.Ceil(wait.Seconds())))))
	beaconFail(w, http.StatusTooManyRequests, reason, msg)
}

// The metric families rejections are counted in, by reason.
const (
	beaconRejected  = "meridian_beacon_rejected_total"
	resultsRejected = "meridian_ingest_rejected_total"
)

var busyCounts = map[string]*metrics.Counter{
	beaconRejected:  metrics.GetOrCreateCounter(beaconRejected + `{reason="busy"}`),
	resultsRejected: metrics.GetOrCreateCounter(resultsRejected + `{reason="busy"}`),
}

// busyBody is busy's answer, encoded once: under overload most answers
// are this one, and a shed must cost far less than a beacon taken.
var busyBody = []byte(`{"error":"the collector is busy: retry in a second","reason":"busy"}` + "\n")

// busy answers 503: the collector sheds load rather than queue it. reason
// is "busy" (the in-flight budget is spent) or "queue_full" (the journal's
// queue is).
func busy(w http.ResponseWriter, family, reason string) {
	if reason != "busy" {
		w.Header().Set("Retry-After", "1")
		reject(w, family, http.StatusServiceUnavailable, reason, "the collector is busy: retry in a second")
		return
	}
	busyCounts[family].Inc()
	h := w.Header()
	h.Set("Retry-After", "1")
	h.Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusServiceUnavailable)
	w.Write(busyBody)
}

// beaconCost is what a beacon in flight holds, measured under load: its
// body, the decoded beacon and its journal line (about three bodies), and
// the request's own state (response buffer, context, timers).
func beaconCost(body int) int64 { return 3*int64(body) + 4<<10 }

// beaconLimits are the beacon handler's guards, in the order a request
// meets them: early before the body is read, admit before it is decoded.
type beaconLimits struct {
	sources, sites *buckets
	bytes          *inflight
	siteDB         Sites
	readTimeout    time.Duration
}

func newBeaconLimits(l Limits, sites Sites) *beaconLimits {
	l = l.withDefaults()
	return &beaconLimits{
		sources:     newBuckets("sources", l.SourceRate, l.SourceBurst, l.MaxSources, l.Now),
		sites:       newBuckets("sites", l.SiteRate, l.SiteBurst, l.MaxSites, l.Now),
		bytes:       newInflight("beacons", l.BeaconInflightBytes),
		siteDB:      sites,
		readTimeout: l.BeaconReadTimeout,
	}
}

// early refuses a source over its rate (429) or any request while the
// budget is spent (503), before the body is read; and it bounds the time
// the body may take to arrive.
func (l *beaconLimits) early(w http.ResponseWriter, client netip.Addr) bool {
	if key, ok := sourceKey(client); ok {
		if ok, wait := l.sources.allow(key); !ok {
			tooMany(w, wait, "source_rate", "too many beacons from this address: slow down")
			return false
		}
	}
	if l.bytes.full() {
		busy(w, beaconRejected, "busy")
		return false
	}
	// Not supported under httptest.ResponseRecorder only: ignore.
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(l.readTimeout))
	return true
}

// admit checks the beacon's site against its rate (429) and takes the
// body's bytes from the budget (503). The caller releases the ticket once
// it has answered.
func (l *beaconLimits) admit(ctx context.Context, w http.ResponseWriter, raw []byte) (*ticket, bool) {
	// The body is in: lift early's deadline, or net/http's read behind
	// the handler would time out while the beacon waits for the journal
	// and cancel the request.
	_ = http.NewResponseController(w).SetReadDeadline(time.Time{})
	if l.sites != nil {
		if key := siteKeyOf(raw); isSiteKey(key) {
			// Only registered sites get a bucket: made-up keys would push
			// real sites' buckets out (and are refused later anyway).
			if _, found, err := l.siteDB.Lookup(ctx, key); err == nil && found {
				if ok, wait := l.sites.allow(maphash.String(keySeed, key)); !ok {
					tooMany(w, wait, "site_rate", "too many beacons for this site: slow down")
					return nil, false
				}
			}
		}
	}
	tk := l.bytes.ticket()
	if !tk.take(beaconCost(len(raw))) {
		busy(w, beaconRejected, "busy")
		return nil, false
	}
	return tk, true
}
