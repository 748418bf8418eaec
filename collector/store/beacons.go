package store

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
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
	// journal keeps it as received instead of encoding Beacon again.
	Raw []byte `json:"-"`
}

// beaconLine is a beacon's journal line: the beacon as received and what
// the collector derived.
type beaconLine struct {
	ReceivedAt time.Time       `json:"received_at"`
	Visitor    Visitor         `json:"visitor"`
	Beacon     json.RawMessage `json:"beacon"`
}

var beaconCodec = codec[BeaconRow]{
	encode: func(dst []byte, r *BeaconRow) ([]byte, error) {
		raw := r.Raw
		if raw == nil {
			var err error
			if raw, err = json.Marshal(&r.Beacon); err != nil {
				return dst, err
			}
		}
		head, err := json.Marshal(beaconLine{ReceivedAt: r.ReceivedAt, Visitor: r.Visitor})
		if err != nil {
			return dst, err
		}
		// head ends with "beacon":null}; the body takes null's place. A
		// newline in valid JSON can only be whitespace: a space keeps
		// the line whole.
		dst = append(dst, head[:len(head)-len("null}")]...)
		start := len(dst)
		dst = append(dst, raw...)
		for i := bytes.IndexByte(dst[start:], '\n'); i >= 0; i = bytes.IndexByte(dst[start:], '\n') {
			dst[start+i] = ' '
		}
		r.Raw = nil // in the line now; rows queued for ClickHouse need not hold it twice
		return append(dst, "}\n"...), nil
	},
	decode: func(line []byte) (BeaconRow, error) {
		var l beaconLine
		if err := json.Unmarshal(line, &l); err != nil {
			return BeaconRow{}, err
		}
		r := BeaconRow{Visitor: l.Visitor, ReceivedAt: l.ReceivedAt, Raw: l.Beacon}
		err := json.Unmarshal(l.Beacon, &r.Beacon)
		return r, err
	},
}

type pvColumn struct {
	name  string
	value func(r *BeaconRow) any
}

func nav(get func(*BeaconNav) any, zero any) func(*BeaconRow) any {
	return func(r *BeaconRow) any { return or(r.Nav, get, zero) }
}
func vitals(get func(*BeaconVitals) any) func(*BeaconRow) any {
	return func(r *BeaconRow) any { return or(r.Vitals, get, nilF64) }
}

var pageviewColumns = []pvColumn{
	{"ts", func(r *BeaconRow) any { return r.ReceivedAt.UTC().Truncate(time.Second) }},
	{"ts_ms", func(r *BeaconRow) any { return uint16(r.ReceivedAt.Nanosecond() / 1e6) }},
	{"site", func(r *BeaconRow) any { return r.Site }},
	{"pv", func(r *BeaconRow) any { return r.PV }},
	{"url", func(r *BeaconRow) any { return r.URL }},
	{"ref_host", func(r *BeaconRow) any { return r.RefHost }},

	{"country", func(r *BeaconRow) any { return r.Country }},
	{"region", func(r *BeaconRow) any { return r.Region }},
	{"city", func(r *BeaconRow) any { return r.City }},
	{"asn", func(r *BeaconRow) any { return r.ASN }},
	{"as_org", func(r *BeaconRow) any { return r.ASOrg }},
	{"browser", func(r *BeaconRow) any { return r.Browser }},
	{"browser_version", func(r *BeaconRow) any { return r.BrowserVersion }},
	{"os", func(r *BeaconRow) any { return r.OS }},
	{"device", func(r *BeaconRow) any { return r.Device }},
	{"is_bot", func(r *BeaconRow) any { return *b2u(&r.Bot) }},
	{"webdriver", func(r *BeaconRow) any { return *b2u(&r.Webdriver) }},
	{"sample", func(r *BeaconRow) any { return r.Sample }},

	{"nav_type", nav(func(n *BeaconNav) any { return n.Type }, "")},
	{"redirect_ms", nav(func(n *BeaconNav) any { return n.RedirectMs }, nilF64)},
	{"dns_ms", nav(func(n *BeaconNav) any { return n.DNSMs }, nilF64)},
	{"connect_ms", nav(func(n *BeaconNav) any { return n.ConnectMs }, nilF64)},
	{"tls_ms", nav(func(n *BeaconNav) any { return n.TLSMs }, nilF64)},
	{"ttfb_ms", nav(func(n *BeaconNav) any { return n.TTFBMs }, nilF64)},
	{"response_ms", nav(func(n *BeaconNav) any { return n.ResponseMs }, nilF64)},
	{"dom_interactive_ms", nav(func(n *BeaconNav) any { return n.DOMInteractiveMs }, nilF64)},
	{"dom_complete_ms", nav(func(n *BeaconNav) any { return n.DOMCompleteMs }, nilF64)},
	{"load_ms", nav(func(n *BeaconNav) any { return n.LoadMs }, nilF64)},
	{"protocol", nav(func(n *BeaconNav) any { return n.Protocol }, "")},
	{"transfer_bytes", nav(func(n *BeaconNav) any { return n.TransferBytes }, (*int64)(nil))},
	{"delivery_type", nav(func(n *BeaconNav) any { return or(n.DeliveryType, func(s *string) any { return *s }, "") }, "")},

	{"fcp_ms", vitals(func(v *BeaconVitals) any { return v.FCPMs })},
	{"lcp_ms", vitals(func(v *BeaconVitals) any { return v.LCPMs })},
	{"inp_ms", vitals(func(v *BeaconVitals) any { return v.INPMs })},
	{"cls", vitals(func(v *BeaconVitals) any { return v.CLS })},
	{"vitals_ttfb_ms", vitals(func(v *BeaconVitals) any { return v.TTFBMs })},

	{"effective_type", func(r *BeaconRow) any { return or(r.Conn, func(c *BeaconConn) any { return c.EffectiveType }, "") }},
	{"rtt_ms", func(r *BeaconRow) any { return or(r.Conn, func(c *BeaconConn) any { return c.RTTMs }, nilF64) }},

	{"server_timing_name", func(r *BeaconRow) any { return serverTiming(r, func(s ServerTiming) string { return s.Name }) }},
	{"server_timing_dur", func(r *BeaconRow) any {
		out := make([]float64, len(r.ServerTiming))
		for i, s := range r.ServerTiming {
			if s.Dur != nil {
				out[i] = *s.Dur
			}
		}
		return out
	}},
	{"server_timing_has_dur", func(r *BeaconRow) any {
		out := make([]uint8, len(r.ServerTiming))
		for i, s := range r.ServerTiming {
			if s.Dur != nil {
				out[i] = 1
			}
		}
		return out
	}},
	{"server_timing_desc", func(r *BeaconRow) any { return serverTiming(r, func(s ServerTiming) string { return s.Desc }) }},

	{"received_at", func(r *BeaconRow) any { return r.ReceivedAt.UTC().Truncate(time.Second) }},
}

func serverTiming(r *BeaconRow, get func(ServerTiming) string) []string {
	out := make([]string, len(r.ServerTiming))
	for i, s := range r.ServerTiming {
		out[i] = get(s)
	}
	return out
}

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

func cdnRows(b *BeaconRow) []cdnRow {
	out := make([]cdnRow, 0, len(b.Hosts)+2*len(b.CDNProbes))
	for _, h := range b.Hosts {
		out = append(out, cdnRow{kind: KindHost, cdn: h.CDN, host: h.Host, count: uint32(min(max(h.Count, 0), 1<<32-1)),
			durationMs: h.MedianMs, bytes: h.Bytes, tao: b2u(h.TAO)})
	}
	for _, p := range b.CDNProbes {
		host := ""
		if u, err := url.Parse(p.URL); err == nil {
			host = u.Host
		}
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
			out = append(out, r)
		}
	}
	return out
}

type cdnColumn struct {
	name  string
	value func(b *BeaconRow, r *cdnRow) any
}

var cdnColumns = []cdnColumn{
	{"ts", func(b *BeaconRow, _ *cdnRow) any { return b.ReceivedAt.UTC().Truncate(time.Second) }},
	{"site", func(b *BeaconRow, _ *cdnRow) any { return b.Site }},
	{"pv", func(b *BeaconRow, _ *cdnRow) any { return b.PV }},
	{"country", func(b *BeaconRow, _ *cdnRow) any { return b.Country }},
	{"region", func(b *BeaconRow, _ *cdnRow) any { return b.Region }},
	{"asn", func(b *BeaconRow, _ *cdnRow) any { return b.ASN }},
	{"browser", func(b *BeaconRow, _ *cdnRow) any { return b.Browser }},
	{"device", func(b *BeaconRow, _ *cdnRow) any { return b.Device }},
	{"is_bot", func(b *BeaconRow, _ *cdnRow) any { return *b2u(&b.Bot) }},
	{"sample", func(b *BeaconRow, _ *cdnRow) any { return b.Sample }},
	{"kind", func(_ *BeaconRow, r *cdnRow) any { return r.kind }},
	{"cdn", func(_ *BeaconRow, r *cdnRow) any { return r.cdn }},
	{"host", func(_ *BeaconRow, r *cdnRow) any { return r.host }},
	{"url", func(_ *BeaconRow, r *cdnRow) any { return r.url }},
	{"count", func(_ *BeaconRow, r *cdnRow) any { return r.count }},
	{"duration_ms", func(_ *BeaconRow, r *cdnRow) any { return r.durationMs }},
	{"dns_ms", func(_ *BeaconRow, r *cdnRow) any { return r.dnsMs }},
	{"connect_ms", func(_ *BeaconRow, r *cdnRow) any { return r.connectMs }},
	{"tls_ms", func(_ *BeaconRow, r *cdnRow) any { return r.tlsMs }},
	{"ttfb_ms", func(_ *BeaconRow, r *cdnRow) any { return r.ttfbMs }},
	{"bytes", func(_ *BeaconRow, r *cdnRow) any { return r.bytes }},
	{"tao", func(_ *BeaconRow, r *cdnRow) any { return r.tao }},
	{"error", func(_ *BeaconRow, r *cdnRow) any { return r.error }},
	{"status", func(_ *BeaconRow, r *cdnRow) any { return r.status }},
}

func insertInto[C any](table string, cols []C, name func(C) string) string {
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = name(c)
	}
	return "INSERT INTO " + table + " (" + strings.Join(names, ", ") + ")"
}

var (
	insertPageviews = insertInto("rum_pageviews", pageviewColumns, func(c pvColumn) string { return c.name })
	insertCDN       = insertInto("rum_cdn", cdnColumns, func(c cdnColumn) string { return c.name })
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
}

// NewBeaconWriter starts a writer; Close stops it. Options as for Writer;
// it fails only when the spool directory cannot be used.
func NewBeaconWriter(conn driver.Conn, opt WriterOptions) (*BeaconWriter, error) {
	w := &BeaconWriter{conn: conn}
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
	cdn, err := w.conn.PrepareBatch(ctx, insertCDN)
	if err != nil {
		return err
	}
	defer cdn.Abort()
	n := 0
	vals := make([]any, len(cdnColumns))
	for i := range rows {
		for _, r := range cdnRows(&rows[i]) {
			for j, c := range cdnColumns {
				vals[j] = c.value(&rows[i], &r)
			}
			if err := cdn.Append(vals...); err != nil {
				return fmt.Errorf("beacon %s: %w", rows[i].PV, err)
			}
			n++
		}
	}
	if n > 0 {
		if err := cdn.Send(); err != nil {
			return err
		}
	}
	pv, err := w.conn.PrepareBatch(ctx, insertPageviews)
	if err != nil {
		return err
	}
	defer pv.Abort()
	vals = make([]any, len(pageviewColumns))
	for i := range rows {
		for j, c := range pageviewColumns {
			vals[j] = c.value(&rows[i])
		}
		if err := pv.Append(vals...); err != nil {
			return fmt.Errorf("beacon %s: %w", rows[i].PV, err)
		}
	}
	return pv.Send()
}
