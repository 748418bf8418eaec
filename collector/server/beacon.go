package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/VictoriaMetrics/metrics"

	"github.com/meridian-net/meridian/collector/enrich"
	"github.com/meridian-net/meridian/collector/store"
)

// Sites finds RUM sites by key, and tells whether an origin is registered
// for any site (a CORS preflight carries no site key).
type Sites interface {
	Lookup(ctx context.Context, key string) (store.Site, bool, error)
	KnownOrigin(ctx context.Context, origin string) (bool, error)
}

// BeaconWriter stores beacons durably; it returns only once they are stored.
type BeaconWriter interface {
	Write(ctx context.Context, rows []store.BeaconRow) error
}

var (
	_ Sites        = (*store.SiteCache)(nil)
	_ BeaconWriter = (*store.BeaconWriter)(nil)
)

// MaxBeaconBytes bounds a beacon body (rum-js/BEACON.md keeps far below).
const MaxBeaconBytes = 64 << 10

var (
	beaconsAccepted = metrics.NewCounter("meridian_beacons_total")
	beaconBots      = metrics.NewCounter("meridian_beacon_bots_total")
	beaconGPC       = metrics.NewCounter("meridian_beacon_gpc_dropped_total")
	beaconDuration  = metrics.NewHistogram("meridian_beacon_duration_seconds")
)

// beaconHandler takes one page view from a browser: it validates, enriches,
// drops the client address, and hands the row to the batched writer.
type beaconHandler struct {
	sites    Sites
	writer   BeaconWriter
	enricher *enrich.Enricher
	now      func() time.Time
}

func newBeaconHandler(cfg Config) http.Handler {
	if cfg.Sites == nil || cfg.Beacons == nil {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "beacons are not enabled on this collector", http.StatusNotFound)
		})
	}
	e := cfg.Enricher
	if e == nil {
		e = &enrich.Enricher{}
	}
	return &beaconHandler{sites: cfg.Sites, writer: cfg.Beacons, enricher: e, now: time.Now}
}

func (h *beaconHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Add("Vary", "Origin")
	switch r.Method {
	case http.MethodPost:
		h.post(w, r)
	case http.MethodOptions:
		h.preflight(w, r)
	default:
		w.Header().Set("Allow", "POST, OPTIONS")
		beaconFail(w, http.StatusMethodNotAllowed, "method", "method not allowed: POST the beacon")
	}
}

func (h *beaconHandler) post(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	if status, reason, err := checkBeaconHeaders(r); err != nil {
		beaconFail(w, status, reason, err.Error())
		return
	}
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBeaconBytes))
	if err != nil {
		if status := statusFor(err); status == http.StatusRequestEntityTooLarge {
			beaconFail(w, status, "too_large", fmt.Sprintf("beacon larger than %d bytes", MaxBeaconBytes))
		} else {
			beaconFail(w, status, "bad_body", "cannot read body: "+err.Error())
		}
		return
	}
	b, err := DecodeBeacon(raw)
	if err != nil {
		beaconFail(w, http.StatusBadRequest, "bad_beacon", err.Error())
		return
	}
	site, found, err := h.sites.Lookup(r.Context(), b.Site)
	if err != nil {
		w.Header().Set("Retry-After", "5")
		beaconFail(w, http.StatusServiceUnavailable, "storage", "cannot check the site key now; retry later")
		return
	}
	if !found {
		beaconFail(w, http.StatusBadRequest, "unknown_site", "unknown site key: check data-site against `meridian sites list`")
		return
	}
	origin := r.Header.Get("Origin")
	if !site.AllowsOrigin(origin) {
		beaconFail(w, http.StatusForbidden, "origin", fmt.Sprintf("origin %q is not registered for this site (`meridian sites list` shows its origins)", origin))
		return
	}
	w.Header().Set("Access-Control-Allow-Origin", origin)
	if site.RespectGPC && r.Header.Get("Sec-GPC") == "1" {
		beaconGPC.Inc()
		w.WriteHeader(http.StatusNoContent)
		return
	}
	row := store.BeaconRow{Beacon: *b, Visitor: h.visitor(r, b), ReceivedAt: h.now()}
	if row.Bot {
		beaconBots.Inc()
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	if err := h.writer.Write(ctx, []store.BeaconRow{row}); err != nil {
		w.Header().Set("Retry-After", "5")
		beaconFail(w, http.StatusServiceUnavailable, "storage", "cannot store the beacon now; retry later")
		return
	}
	beaconsAccepted.Inc()
	beaconDuration.UpdateDuration(start)
	w.WriteHeader(http.StatusNoContent)
}

// visitor derives what is kept of the request's sender. The client address
// lives only in this function: it is never put in the row.
func (h *beaconHandler) visitor(r *http.Request, b *store.Beacon) store.Visitor {
	loc := h.enricher.Locate(h.enricher.ClientIP(r))
	ua := enrich.ParseUA(r.UserAgent())
	v := store.Visitor{
		Country: loc.Country, Region: loc.Region, City: loc.City, ASN: loc.ASN, ASOrg: loc.ASOrg,
		Browser: ua.Browser, BrowserVersion: ua.Version, OS: ua.OS, Device: ua.Device,
		Bot: ua.Bot || b.Webdriver,
	}
	if v.Bot {
		v.Device = "bot"
	}
	return v
}

// preflight answers a CORS preflight (a beacon sent as application/json
// needs one) for origins registered for some site, and refuses the rest.
func (h *beaconHandler) preflight(w http.ResponseWriter, r *http.Request) {
	origin := r.Header.Get("Origin")
	known, err := h.sites.KnownOrigin(r.Context(), origin)
	if err != nil {
		w.Header().Set("Retry-After", "5")
		beaconFail(w, http.StatusServiceUnavailable, "storage", "cannot check the origin now; retry later")
		return
	}
	if !known {
		beaconFail(w, http.StatusForbidden, "origin", fmt.Sprintf("origin %q is not registered for any site", origin))
		return
	}
	hd := w.Header()
	hd.Set("Access-Control-Allow-Origin", origin)
	hd.Set("Access-Control-Allow-Methods", "POST")
	hd.Set("Access-Control-Allow-Headers", "Content-Type")
	hd.Set("Access-Control-Max-Age", "86400")
	w.WriteHeader(http.StatusNoContent)
}

func checkBeaconHeaders(r *http.Request) (status int, reason string, err error) {
	ct := r.Header.Get("Content-Type")
	mt, _, perr := mime.ParseMediaType(ct)
	if perr != nil || (mt != "text/plain" && mt != "application/json") {
		return http.StatusUnsupportedMediaType, "content_type",
			fmt.Errorf("unsupported Content-Type %q: send the beacon as text/plain (or application/json)", ct)
	}
	if enc := r.Header.Get("Content-Encoding"); enc != "" && enc != "identity" {
		return http.StatusUnsupportedMediaType, "content_encoding",
			fmt.Errorf("unsupported Content-Encoding %q: send the beacon uncompressed", enc)
	}
	return 0, "", nil
}

func beaconFail(w http.ResponseWriter, status int, reason, msg string) {
	reject(w, "meridian_beacon_rejected_total", status, reason, msg)
}

// DecodeBeacon decodes one beacon strictly (rum-js/BEACON.md, format v1):
// one JSON object, no unknown keys, every value in range. Its errors name
// the field at fault.
func DecodeBeacon(raw []byte) (*store.Beacon, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var b store.Beacon
	if err := dec.Decode(&b); err != nil {
		return nil, jsonError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("trailing data after the beacon object: send exactly one JSON object")
	}
	if err := validateBeacon(&b); err != nil {
		return nil, err
	}
	return &b, nil
}

func jsonError(err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		if te.Field == "" {
			return fmt.Errorf("invalid beacon: want a JSON object, got %s", te.Value)
		}
		return fmt.Errorf("field %s: want %s, got %s", te.Field, jsonKind(te.Type.Kind().String()), te.Value)
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Errorf("invalid JSON at byte %d: %v", se.Offset, se)
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return errors.New("empty or truncated beacon: send one JSON object")
	}
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return fmt.Errorf("unknown field %s (not in beacon format v1)", name)
	}
	return fmt.Errorf("invalid beacon: %v", err)
}

func jsonKind(k string) string {
	switch {
	case strings.HasPrefix(k, "int"), strings.HasPrefix(k, "uint"):
		return "an integer"
	case strings.HasPrefix(k, "float"):
		return "a number"
	case k == "ptr":
		return "a value of another type"
	}
	return "a " + k
}

var (
	uuidRE    = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
	siteKeyRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
)

// Bounds a value must stay within; the script stays far inside them.
const (
	maxMs        = 1e7 // ms, about 2.8 hours
	maxCLS       = 1000
	maxURLBytes  = 4096 // 1024 UTF-16 units, at most 3 bytes each, with room
	maxHosts     = 20
	maxTimings   = 10
	maxProbes    = store.MaxCDNs
	maxNameBytes = 256
)

// checker collects the first validation error with its field path.
type checker struct{ err error }

func (c *checker) fail(field, format string, args ...any) {
	if c.err == nil {
		c.err = fmt.Errorf("field %s: %s", field, fmt.Sprintf(format, args...))
	}
}

func (c *checker) ms(field string, v *float64) {
	if v != nil && !(*v >= 0 && *v <= maxMs) {
		c.fail(field, "want milliseconds in [0, %g], got %v", float64(maxMs), *v)
	}
}

func (c *checker) bytes(field string, v *int64) {
	if v != nil && *v < 0 {
		c.fail(field, "want a non-negative integer, got %d", *v)
	}
}

func (c *checker) str(field, v string, required bool, max int) {
	switch {
	case required && v == "":
		c.fail(field, "missing")
	case len(v) > max:
		c.fail(field, "longer than %d bytes", max)
	case !utf8.ValidString(v):
		c.fail(field, "not valid UTF-8")
	}
}

func validateBeacon(b *store.Beacon) error {
	var c checker
	if b.V != 1 {
		c.fail("v", "want 1 (format v1), got %d", b.V)
	}
	if !siteKeyRE.MatchString(b.Site) {
		c.fail("site", "want the site key from `meridian sites add`, got %q", clipString(b.Site, 70))
	}
	if !uuidRE.MatchString(b.PV) {
		c.fail("pv", "want a lowercase UUID, got %q", clipString(b.PV, 40))
	}
	c.str("url", b.URL, true, maxURLBytes)
	c.str("ref_host", b.RefHost, false, maxNameBytes)
	if !(b.Sample > 0 && b.Sample <= 1) {
		c.fail("sample", "want the sampling rate in (0, 1], got %v", b.Sample)
	}
	if n := b.Nav; n != nil {
		c.str("nav.type", n.Type, false, 32)
		for _, f := range []struct {
			name string
			v    *float64
		}{{"redirect_ms", n.RedirectMs}, {"dns_ms", n.DNSMs}, {"connect_ms", n.ConnectMs}, {"tls_ms", n.TLSMs},
			{"ttfb_ms", n.TTFBMs}, {"response_ms", n.ResponseMs}, {"dom_interactive_ms", n.DOMInteractiveMs},
			{"dom_complete_ms", n.DOMCompleteMs}, {"load_ms", n.LoadMs}} {
			c.ms("nav."+f.name, f.v)
		}
		c.str("nav.protocol", n.Protocol, false, 32)
		c.bytes("nav.transfer_bytes", n.TransferBytes)
		if n.DeliveryType != nil {
			c.str("nav.delivery_type", *n.DeliveryType, false, 32)
		}
	}
	if v := b.Vitals; v != nil {
		c.ms("vitals.fcp_ms", v.FCPMs)
		c.ms("vitals.lcp_ms", v.LCPMs)
		c.ms("vitals.inp_ms", v.INPMs)
		c.ms("vitals.ttfb_ms", v.TTFBMs)
		if v.CLS != nil && !(*v.CLS >= 0 && *v.CLS <= maxCLS) {
			c.fail("vitals.cls", "want a layout shift score in [0, %d], got %v", maxCLS, *v.CLS)
		}
	}
	if cn := b.Conn; cn != nil {
		c.str("conn.effective_type", cn.EffectiveType, false, 16)
		c.ms("conn.rtt_ms", cn.RTTMs)
	}
	validateLists(&c, b)
	return c.err
}

func validateLists(c *checker, b *store.Beacon) {
	if len(b.ServerTiming) > maxTimings {
		c.fail("server_timing", "at most %d metrics, got %d", maxTimings, len(b.ServerTiming))
	}
	for i, s := range b.ServerTiming {
		p := fmt.Sprintf("server_timing[%d].", i)
		c.str(p+"name", s.Name, true, maxNameBytes)
		c.str(p+"desc", s.Desc, false, 4*100)
		c.ms(p+"dur", s.Dur)
	}
	if len(b.Hosts) > maxHosts {
		c.fail("hosts", "at most %d hosts, got %d", maxHosts, len(b.Hosts))
	}
	for i, h := range b.Hosts {
		p := fmt.Sprintf("hosts[%d].", i)
		c.str(p+"host", h.Host, true, maxNameBytes)
		c.str(p+"cdn", h.CDN, false, 64)
		if h.Count < 1 || h.Count > math.MaxUint32 {
			c.fail(p+"count", "want a request count ≥ 1, got %d", h.Count)
		}
		if h.MedianMs == nil {
			c.fail(p+"median_ms", "missing")
		}
		c.ms(p+"median_ms", h.MedianMs)
		if h.Bytes == nil {
			c.fail(p+"bytes", "missing")
		}
		c.bytes(p+"bytes", h.Bytes)
		if h.TAO == nil {
			c.fail(p+"tao", "missing")
		}
	}
	if len(b.CDNProbes) > maxProbes {
		c.fail("cdn_probes", "at most %d probes, got %d", maxProbes, len(b.CDNProbes))
	}
	for i, p := range b.CDNProbes {
		pre := fmt.Sprintf("cdn_probes[%d].", i)
		c.str(pre+"cdn", p.CDN, true, 64)
		c.str(pre+"url", p.URL, true, maxURLBytes)
		if p.Cold == nil {
			c.fail(pre+"cold", "missing")
		}
		validateFetch(c, pre+"cold", p.Cold)
		validateFetch(c, pre+"warm", p.Warm)
	}
}

func validateFetch(c *checker, field string, f *store.ProbeFetch) {
	if f == nil {
		return
	}
	timed := f.DNSMs != nil || f.ConnectMs != nil || f.TLSMs != nil || f.TTFBMs != nil || f.DurationMs != nil || f.Bytes != nil
	switch {
	case f.Error && timed:
		c.fail(field, "holds both error and timings; want one or the other")
	case !f.Error && f.Status != 0:
		c.fail(field+".status", "only with error: true")
	case f.Error && f.Status != 0 && (f.Status < 100 || f.Status > 999):
		c.fail(field+".status", "want an HTTP status, got %d", f.Status)
	case !f.Error && f.DurationMs == nil:
		c.fail(field+".duration_ms", "missing")
	}
	for _, t := range []struct {
		name string
		v    *float64
	}{{"dns_ms", f.DNSMs}, {"connect_ms", f.ConnectMs}, {"tls_ms", f.TLSMs}, {"ttfb_ms", f.TTFBMs}, {"duration_ms", f.DurationMs}} {
		c.ms(field+"."+t.name, t.v)
	}
	c.bytes(field+".bytes", f.Bytes)
}

// clipString shortens s for an error message, marking the cut.
func clipString(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return truncate(s, n) + "…"
}
