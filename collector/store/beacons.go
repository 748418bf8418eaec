package store

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/VictoriaMetrics/metrics"
)

// Beacon is one page view as the browser script sends it: the JSON body of
// POST /v1/beacon, format v1 (rum-js/BEACON.md). Absent values are nil,
// never 0.
type Beacon struct {
	V            int            `json:"v"`
	Site         string         `json:"site"`
	PV           string         `json:"pv"`
	URL          string         `json:"url"`
	RefHost      string         `json:"ref_host,omitempty"`
	Sample       float64        `json:"sample"`
	Webdriver    bool           `json:"webdriver"`
	Nav          *BeaconNav     `json:"nav,omitempty"`
	Vitals       *BeaconVitals  `json:"vitals,omitempty"`
	Conn         *BeaconConn    `json:"conn,omitempty"`
	ServerTiming []ServerTiming `json:"server_timing,omitempty"`
	Hosts        []BeaconHost   `json:"hosts,omitempty"`
	CDNProbes    []CDNProbe     `json:"cdn_probes,omitempty"`
}

// BeaconNav is the page's Navigation Timing.
type BeaconNav struct {
	Type             string   `json:"type,omitempty"`
	RedirectMs       *float64 `json:"redirect_ms,omitempty"`
	DNSMs            *float64 `json:"dns_ms,omitempty"`
	ConnectMs        *float64 `json:"connect_ms,omitempty"`
	TLSMs            *float64 `json:"tls_ms,omitempty"`
	TTFBMs           *float64 `json:"ttfb_ms,omitempty"`
	ResponseMs       *float64 `json:"response_ms,omitempty"`
	DOMInteractiveMs *float64 `json:"dom_interactive_ms,omitempty"`
	DOMCompleteMs    *float64 `json:"dom_complete_ms,omitempty"`
	LoadMs           *float64 `json:"load_ms,omitempty"`
	Protocol         string   `json:"protocol,omitempty"`
	TransferBytes    *int64   `json:"transfer_bytes,omitempty"`
	DeliveryType     *string  `json:"delivery_type,omitempty"`
}

// BeaconVitals are the Core Web Vitals.
type BeaconVitals struct {
	FCPMs  *float64 `json:"fcp_ms,omitempty"`
	LCPMs  *float64 `json:"lcp_ms,omitempty"`
	INPMs  *float64 `json:"inp_ms,omitempty"`
	CLS    *float64 `json:"cls,omitempty"`
	TTFBMs *float64 `json:"ttfb_ms,omitempty"`
}

// BeaconConn holds the Network Information API hints.
type BeaconConn struct {
	EffectiveType string   `json:"effective_type,omitempty"`
	RTTMs         *float64 `json:"rtt_ms,omitempty"`
}

// ServerTiming is one Server-Timing metric of the navigation.
type ServerTiming struct {
	Name string   `json:"name"`
	Dur  *float64 `json:"dur,omitempty"`
	Desc string   `json:"desc,omitempty"`
}

// BeaconHost is Resource Timing aggregated for one host.
type BeaconHost struct {
	Host     string   `json:"host"`
	CDN      string   `json:"cdn,omitempty"`
	Count    int64    `json:"count"`
	MedianMs *float64 `json:"median_ms"`
	Bytes    *int64   `json:"bytes"`
	TAO      *bool    `json:"tao"`
}

// CDNProbe is one active CDN probe: a cold fetch and, after it, a warm one.
type CDNProbe struct {
	CDN  string      `json:"cdn"`
	URL  string      `json:"url"`
	Cold *ProbeFetch `json:"cold"`
	Warm *ProbeFetch `json:"warm,omitempty"`
}

// ProbeFetch holds either the timings of one probe fetch or its failure.
type ProbeFetch struct {
	DNSMs      *float64 `json:"dns_ms,omitempty"`
	ConnectMs  *float64 `json:"connect_ms,omitempty"`
	TLSMs      *float64 `json:"tls_ms,omitempty"`
	TTFBMs     *float64 `json:"ttfb_ms,omitempty"`
	DurationMs *float64 `json:"duration_ms,omitempty"`
	Bytes      *int64   `json:"bytes,omitempty"`
	Error      bool     `json:"error,omitempty"`
	Status     int      `json:"status,omitempty"`
}

// Visitor is what the collector derived from the request (client IP, user
// agent) before dropping the IP. There is deliberately no IP field.
type Visitor struct {
	Country, Region, City string
	ASN                   uint32
	ASOrg                 string
	Browser               string
	BrowserVersion        string // major version
	OS                    string
	Device                string // desktop, mobile, tablet or bot
	Bot                   bool
}

// BeaconRow is a beacon as stored.
type BeaconRow struct {
	Beacon
	Visitor
	ReceivedAt time.Time
	// Raw, when set, is the body Beacon was decoded from (valid JSON): the
	// journal keeps it as received instead of encoding Beacon again. A
	// writer that has copied it sets it to nil, and the caller may then
	// reuse the buffer (UnmarshalBeacon's strings do not point into it).
	Raw []byte `json:"-"`
	// Replay says the collector inserts this beacon again, not knowing
	// whether an earlier insert landed (migrations 0051, 0052). Browsers
	// send a beacon once, so only the collector sets it.
	Replay bool `json:"-"`
}

var (
	navOf    = func(r *BeaconRow) *BeaconNav { return r.Nav }
	vitalsOf = func(r *BeaconRow) *BeaconVitals { return r.Vitals }
	connOf   = func(r *BeaconRow) *BeaconConn { return r.Conn }
)

type pv = BeaconRow

var pageviewColumns = []col[pv]{
	typed("ts", func(r *pv) time.Time { return second(r.ReceivedAt) }),
	typed("ts_ms", func(r *pv) uint16 { return uint16(r.ReceivedAt.Nanosecond() / 1e6) }),
	typed("site", func(r *pv) string { return r.Site }),
	typed("pv", func(r *pv) string { return r.PV }),
	typed("url", func(r *pv) string { return r.URL }),
	typed("ref_host", func(r *pv) string { return r.RefHost }),

	typed("country", func(r *pv) string { return r.Country }),
	typed("region", func(r *pv) string { return r.Region }),
	typed("city", func(r *pv) string { return r.City }),
	typed("asn", func(r *pv) uint32 { return r.ASN }),
	typed("as_org", func(r *pv) string { return r.ASOrg }),
	typed("browser", func(r *pv) string { return r.Browser }),
	typed("browser_version", func(r *pv) string { return r.BrowserVersion }),
	typed("os", func(r *pv) string { return r.OS }),
	typed("device", func(r *pv) string { return r.Device }),
	typed("is_bot", func(r *pv) uint8 { return u8(r.Bot) }),
	typed("webdriver", func(r *pv) uint8 { return u8(r.Webdriver) }),
	typed("sample", func(r *pv) float64 { return r.Sample }),

	typed("nav_type", in(navOf, func(n *BeaconNav) string { return n.Type })),
	typed("redirect_ms", in(navOf, func(n *BeaconNav) *float64 { return n.RedirectMs })),
	typed("dns_ms", in(navOf, func(n *BeaconNav) *float64 { return n.DNSMs })),
	typed("connect_ms", in(navOf, func(n *BeaconNav) *float64 { return n.ConnectMs })),
	typed("tls_ms", in(navOf, func(n *BeaconNav) *float64 { return n.TLSMs })),
	typed("ttfb_ms", in(navOf, func(n *BeaconNav) *float64 { return n.TTFBMs })),
	typed("response_ms", in(navOf, func(n *BeaconNav) *float64 { return n.ResponseMs })),
	typed("dom_interactive_ms", in(navOf, func(n *BeaconNav) *float64 { return n.DOMInteractiveMs })),
	typed("dom_complete_ms", in(navOf, func(n *BeaconNav) *float64 { return n.DOMCompleteMs })),
	typed("load_ms", in(navOf, func(n *BeaconNav) *float64 { return n.LoadMs })),
	typed("protocol", in(navOf, func(n *BeaconNav) string { return n.Protocol })),
	typed("transfer_bytes", in(navOf, func(n *BeaconNav) *int64 { return n.TransferBytes })),
	typed("delivery_type", in(navOf, func(n *BeaconNav) string {
		if n.DeliveryType == nil {
			return ""
		}
		return *n.DeliveryType
	})),

	typed("fcp_ms", in(vitalsOf, func(v *BeaconVitals) *float64 { return v.FCPMs })),
	typed("lcp_ms", in(vitalsOf, func(v *BeaconVitals) *float64 { return v.LCPMs })),
	typed("inp_ms", in(vitalsOf, func(v *BeaconVitals) *float64 { return v.INPMs })),
	typed("cls", in(vitalsOf, func(v *BeaconVitals) *float64 { return v.CLS })),
	typed("vitals_ttfb_ms", in(vitalsOf, func(v *BeaconVitals) *float64 { return v.TTFBMs })),

	typed("effective_type", in(connOf, func(c *BeaconConn) string { return c.EffectiveType })),
	typed("rtt_ms", in(connOf, func(c *BeaconConn) *float64 { return c.RTTMs })),

	nested("server_timing_name", timings, func(r *pv, i int) string { return r.ServerTiming[i].Name }),
	nested("server_timing_dur", timings, func(r *pv, i int) float64 {
		if d := r.ServerTiming[i].Dur; d != nil {
			return *d
		}
		return 0
	}),
	nested("server_timing_has_dur", timings, func(r *pv, i int) uint8 { return u8(r.ServerTiming[i].Dur != nil) }),
	nested("server_timing_desc", timings, func(r *pv, i int) string { return r.ServerTiming[i].Desc }),

	typed("received_at", func(r *pv) time.Time { return second(r.ReceivedAt) }),
	typed("replay", func(r *pv) uint8 { return u8(r.Replay) }),
}

func timings(r *pv) int { return len(r.ServerTiming) }

// CDN row kinds in rum_cdn.
const (
	KindHost      = "host"
	KindProbeCold = "probe_cold"
	KindProbeWarm = "probe_warm"
)

// cdnRow is one row of rum_cdn: a hosts[] entry or one probe fetch.
type cdnRow struct {
	kind, cdn, host, url string
	count                uint32
	durationMs           *float64
	dnsMs, connectMs     *float64
	tlsMs, ttfbMs        *float64
	bytes                *int64
	tao                  *uint8
	error                uint8
	status               uint16
}

// appendCDN appends b's rum_cdn rows to out; host gives a probe URL's host.
func appendCDN(out []cdnRecord, b *BeaconRow, host func(url string) string) []cdnRecord {
	for _, h := range b.Hosts {
		out = append(out, cdnRecord{b, cdnRow{kind: KindHost, cdn: h.CDN, host: h.Host, count: uint32(min(max(h.Count, 0), 1<<32-1)),
			durationMs: h.MedianMs, bytes: h.Bytes, tao: b2u(h.TAO)}})
	}
	for _, p := range b.CDNProbes {
		host := host(p.URL)
		for i, f := range [2]*ProbeFetch{p.Cold, p.Warm} {
			kind := KindProbeCold
			if i == 1 {
				kind = KindProbeWarm
			}
			if f == nil {
				continue
			}
			r := cdnRow{kind: kind, cdn: p.CDN, host: host, url: p.URL, count: 1,
				durationMs: f.DurationMs, dnsMs: f.DNSMs, connectMs: f.ConnectMs, tlsMs: f.TLSMs, ttfbMs: f.TTFBMs, bytes: f.Bytes}
			if f.Error {
				r.error, r.status = 1, uint16(min(max(f.Status, 0), 999))
			}
			out = append(out, cdnRecord{b, r})
		}
	}
	return out
}

// cdnRowCount is how many rum_cdn rows appendCDN makes of rows.
func cdnRowCount(rows []BeaconRow) int {
	n := 0
	for i := range rows {
		n += len(rows[i].Hosts)
		for _, p := range rows[i].CDNProbes {
			n += int(u8(p.Cold != nil) + u8(p.Warm != nil))
		}
	}
	return n
}

// cdnRecord is a rum_cdn row with the page view it belongs to.
type cdnRecord struct {
	b *BeaconRow
	cdnRow
}

var cdnColumns = []col[cdnRecord]{
	typed("ts", func(r *cdnRecord) time.Time { return second(r.b.ReceivedAt) }),
	typed("site", func(r *cdnRecord) string { return r.b.Site }),
	typed("pv", func(r *cdnRecord) string { return r.b.PV }),
	typed("country", func(r *cdnRecord) string { return r.b.Country }),
	typed("region", func(r *cdnRecord) string { return r.b.Region }),
	typed("asn", func(r *cdnRecord) uint32 { return r.b.ASN }),
	typed("browser", func(r *cdnRecord) string { return r.b.Browser }),
	typed("device", func(r *cdnRecord) string { return r.b.Device }),
	typed("is_bot", func(r *cdnRecord) uint8 { return u8(r.b.Bot) }),
	typed("sample", func(r *cdnRecord) float64 { return r.b.Sample }),
	typed("kind", func(r *cdnRecord) string { return r.kind }),
	typed("cdn", func(r *cdnRecord) string { return r.cdn }),
	typed("host", func(r *cdnRecord) string { return r.host }),
	typed("url", func(r *cdnRecord) string { return r.url }),
	typed("count", func(r *cdnRecord) uint32 { return r.count }),
	typed("duration_ms", func(r *cdnRecord) *float64 { return r.durationMs }),
	typed("dns_ms", func(r *cdnRecord) *float64 { return r.dnsMs }),
	typed("connect_ms", func(r *cdnRecord) *float64 { return r.connectMs }),
	typed("tls_ms", func(r *cdnRecord) *float64 { return r.tlsMs }),
	typed("ttfb_ms", func(r *cdnRecord) *float64 { return r.ttfbMs }),
	typed("bytes", func(r *cdnRecord) *int64 { return r.bytes }),
	typed("tao", func(r *cdnRecord) *uint8 { return r.tao }),
	typed("error", func(r *cdnRecord) uint8 { return r.error }),
	typed("status", func(r *cdnRecord) uint16 { return r.status }),
	typed("replay", func(r *cdnRecord) uint8 { return u8(r.b.Replay) }),
}

func insertInto[C any](table string, cols []C, name func(C) string) string {
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = name(c)
	}
	return "INSERT INTO " + table + " (" + strings.Join(names, ", ") + ")"
}

var (
	insertPageviews = insertInto("rum_pageviews", pageviewColumns, func(c col[pv]) string { return c.name })
	insertCDN       = insertInto("rum_cdn", cdnColumns, func(c col[cdnRecord]) string { return c.name })
)

var (
	beaconsWritten     = metrics.NewCounter("meridian_store_beacons_written_total")
	beaconFlushes      = metrics.NewCounter("meridian_store_beacon_flushes_total")
	beaconFlushErrors  = metrics.NewCounter("meridian_store_beacon_flush_errors_total")
	beaconFlushSeconds = metrics.NewHistogram("meridian_store_beacon_flush_duration_seconds")
)

// BeaconWriter batches beacons from many concurrent requests into few
// INSERTs (one into rum_pageviews, one into rum_cdn per flush). Write returns
// only once the beacons are durable (see WriterOptions.SpoolDir).
type BeaconWriter struct {
	conn driver.Conn
	s    sink[BeaconRow]
	bufs beaconBufs
}

// NewBeaconWriter starts a writer; Close stops it. Options as for Writer;
// it fails only when the spool directory cannot be used.
func NewBeaconWriter(conn driver.Conn, opt WriterOptions) (*BeaconWriter, error) {
	w := &BeaconWriter{conn: conn, bufs: beaconBufs{pageview: make([]colBuf, len(pageviewColumns)), cdn: make([]colBuf, len(cdnColumns))}}
	s, err := newSink("beacons", opt, beaconCodec, w.insert)
	if err != nil {
		return nil, err
	}
	w.s = s
	return w, nil
}

// Write stores rows and returns once they are durable (nil), or an error
// (ErrOverloaded, ErrSpoolFull, the disk's or the insert's).
func (w *BeaconWriter) Write(ctx context.Context, rows []BeaconRow) error {
	return w.s.write(ctx, rows)
}

// Close writes what is pending and stops the writer.
func (w *BeaconWriter) Close() { w.s.close() }

func (w *BeaconWriter) insert(rows []BeaconRow) error {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := w.send(ctx, rows)
	beaconFlushes.Inc()
	beaconFlushSeconds.UpdateDuration(start)
	if err != nil {
		beaconFlushErrors.Inc()
		return fmt.Errorf("cannot store %d beacons: %w", len(rows), err)
	}
	beaconsWritten.Add(len(rows))
	return nil
}

// send writes the per-CDN rows first: a page view is only counted once its
// details are in, and a retry after a partial failure folds into the same
// rows (ReplacingMergeTree on pv).
func (w *BeaconWriter) send(ctx context.Context, rows []BeaconRow) error {
	b := &w.bufs
	b.mu.Lock()
	defer b.mu.Unlock()
	cdn := b.cdnRows[:0]
	if n := cdnRowCount(rows); n > cap(cdn) {
		cdn = make([]cdnRecord, 0, n) // once, not grown by doubling
	}
	for i := range rows {
		cdn = appendCDN(cdn, &rows[i], b.probeHost)
	}
	defer func() {
		if b.cdnRows = cdn[:0]; cap(cdn) > maxKeptRows {
			b.cdnRows = nil
		}
	}()
	defer clear(cdn) // nothing of this batch is kept alive by the buffer
	if len(cdn) > 0 {
		if err := sendColumns(ctx, w.conn, insertCDN, cdnColumns, cdn, b.cdn); err != nil {
			return err
		}
	}
	return sendColumns(ctx, w.conn, insertPageviews, pageviewColumns, rows, b.pageview)
}
