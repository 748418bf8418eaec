package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/VictoriaMetrics/metrics"
	json "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

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
	limits   *beaconLimits
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
	return &beaconHandler{sites: cfg.Sites, writer: cfg.Beacons, enricher: e, now: time.Now, limits: newBeaconLimits(cfg.Limits, cfg.Sites)}
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

// readBody reads a body in one allocation when its length is declared
// (io.ReadAll grows from 512 bytes: three allocations for a typical
// beacon). net/http ends the body at the declared length and fails a
// shorter one. Past preallocBytes it grows as the body arrives, so a
// client declaring 64 KiB and dribbling it does not cost 64 KiB at once.
func readBody(body io.Reader, length int64) ([]byte, error) {
	const preallocBytes = 16 << 10
	if length <= 0 || length > preallocBytes {
		return io.ReadAll(body)
	}
	buf := make([]byte, length)
	_, err := io.ReadFull(body, buf)
	return buf, err
}

func (h *beaconHandler) post(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	client := h.enricher.ClientIP(r)
	if !h.limits.early(w, client) {
		return
	}
	if status, reason, err := checkBeaconHeaders(r); err != nil {
		beaconFail(w, status, reason, err.Error())
		return
	}
	raw, err := readBody(http.MaxBytesReader(w, r.Body, MaxBeaconBytes), r.ContentLength)
	if err != nil {
		if status := statusFor(err); status == http.StatusRequestEntityTooLarge {
			beaconFail(w, status, "too_large", fmt.Sprintf("beacon larger than %d bytes", MaxBeaconBytes))
		} else if errors.Is(err, os.ErrDeadlineExceeded) { // Limits.BeaconReadTimeout
			beaconFail(w, http.StatusRequestTimeout, "slow_body", "the beacon's body took too long to arrive")
		} else {
			beaconFail(w, status, "bad_body", "cannot read body: "+err.Error())
		}
		return
	}
	tk, ok := h.limits.admit(r.Context(), w, raw)
	if !ok {
		return
	}
	defer tk.release()
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
	row := store.BeaconRow{Beacon: *b, Visitor: h.visitor(client, r, b), ReceivedAt: h.now(), Raw: raw}
	if row.Bot {
		beaconBots.Inc()
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	if err := h.writer.Write(ctx, []store.BeaconRow{row}); errors.Is(err, store.ErrOverloaded) {
		busy(w, beaconRejected, "queue_full")
		return
	} else if err != nil {
		w.Header().Set("Retry-After", "5")
		beaconFail(w, http.StatusServiceUnavailable, "storage", "cannot store the beacon now; retry later")
		return
	}
	beaconsAccepted.Inc()
	beaconDuration.UpdateDuration(start)
	w.WriteHeader(http.StatusNoContent)
}

// visitor derives what is kept of the request's sender. The client address
// is used here and by the rate limits (as a hash): it is never put in the row.
func (h *beaconHandler) visitor(client netip.Addr, r *http.Request, b *store.Beacon) store.Visitor {
	loc := h.enricher.Locate(client)
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
	// Browser, version and OS are cut from the User-Agent and stored:
	// strings are stored as valid UTF-8 or refused, never mangled.
	if !utf8.ValidString(r.UserAgent()) {
		return http.StatusBadRequest, "user_agent", errors.New("the User-Agent header is not valid UTF-8")
	}
	return 0, "", nil
}

func beaconFail(w http.ResponseWriter, status int, reason, msg string) {
	reject(w, "meridian_beacon_rejected_total", status, reason, msg)
}

// DecodeBeacon decodes one beacon strictly (rum-js/BEACON.md, format v1):
// one JSON object, no unknown or repeated keys, valid UTF-8, every value in
// range. Its errors name the field at fault. It uses go-json-experiment/json
// (the encoding/json/v2 proposal): strict by design and, on a beacon here,
// 40% cheaper than encoding/json's Decoder — this is the collector's
// hottest path.
func DecodeBeacon(raw []byte) (*store.Beacon, error) {
	var b store.Beacon
	if err := json.Unmarshal(raw, &b, json.RejectUnknownMembers(true)); err != nil {
		return nil, jsonError(err)
	}
	if err := validateBeacon(&b); err != nil {
		return nil, err
	}
	return &b, nil
}

func jsonError(err error) error {
	var se *json.SemanticError
	if errors.As(err, &se) {
		switch {
		case errors.Is(se.Err, json.ErrUnknownName):
			return fmt.Errorf("unknown field %q (not in beacon format v1)", fieldPath(se.JSONPointer))
		case se.JSONPointer == "":
			return fmt.Errorf("invalid beacon: want a JSON object, got %s", kindName(se.JSONKind))
		case se.GoType != nil:
			got := kindName(se.JSONKind)
			if len(se.JSONValue) > 0 && len(se.JSONValue) <= 40 {
				got += " " + string(se.JSONValue)
			}
			return fmt.Errorf("field %s: want %s, got %s", fieldPath(se.JSONPointer), jsonKind(se.GoType.Kind().String()), got)
		}
		return fmt.Errorf("field %s: %v", fieldPath(se.JSONPointer), se.Err)
	}
	var syn *jsontext.SyntacticError
	if errors.As(err, &syn) {
		switch {
		case errors.Is(syn.Err, io.ErrUnexpectedEOF) && syn.ByteOffset == 0:
			return errors.New("empty or truncated beacon: send one JSON object")
		case errors.Is(syn.Err, io.ErrUnexpectedEOF):
			return fmt.Errorf("truncated beacon: it ends at byte %d inside a value", syn.ByteOffset)
		case strings.Contains(syn.Err.Error(), "after top-level value"):
			return errors.New("trailing data after the beacon object: send exactly one JSON object")
		}
		return fmt.Errorf("invalid JSON at byte %d: %v", syn.ByteOffset, syn.Err)
	}
	return fmt.Errorf("invalid beacon: %v", err)
}

// fieldPath writes a JSON pointer ("/hosts/0/count") as the validation
// errors name fields ("hosts[0].count").
func fieldPath(p jsontext.Pointer) string {
	var sb strings.Builder
	for tok := range p.Tokens() {
		if _, err := strconv.Atoi(tok); err == nil && sb.Len() > 0 {
			sb.WriteString("[" + tok + "]")
			continue
		}
		if sb.Len() > 0 {
			sb.WriteByte('.')
		}
		sb.WriteString(tok)
	}
	return sb.String()
}

// kindName names a JSON kind as the errors do.
func kindName(k jsontext.Kind) string {
	switch k {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case '0':
		return "a number"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a value of another type"
}

func jsonKind(k string) string {
	switch {
	case strings.HasPrefix(k, "int"), strings.HasPrefix(k, "uint"):
		return "an integer"
	case strings.HasPrefix(k, "float"):
		return "a number"
	case k == "slice":
		return "an array"
	case k == "struct":
		return "an object"
	case k == "ptr":
		return "a value of another type"
	}
	return "a " + k
}

// isPV tells whether s is a lowercase UUID (36 bytes, dashes at 8, 13, 18
// and 23).
func isPV(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
				return false
			}
		}
	}
	return true
}

// isSiteKey tells whether s looks like a key from `meridian sites add`.
func isSiteKey(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// Bounds a value must stay within; the script stays far inside them.
// rum-js/BEACON.md ("Ranges") lists every field's range and column: a value
// the decoder takes is stored as sent, never clamped or wrapped.
const (
	maxMs        = 1e7 // ms, about 2.8 hours
	maxCLS       = 1000
	maxByteCount = 1<<53 - 1 // JavaScript's Number.MAX_SAFE_INTEGER; Int64 columns
	maxCount     = math.MaxUint32
	minStatus    = 100 // an HTTP status (UInt16 column)
	maxStatus    = 599
	maxURLBytes  = 4096 // 1024 UTF-16 units, at most 3 bytes each, with room
	maxHosts     = 20
	maxTimings   = 10
	maxProbes    = store.MaxCDNs
	maxNameBytes = 256
)

// field names a value of the beacon: name, or list[i].sub.name inside a
// list. It is spelled out only for an error, so valid beacons cost no
// string building.
type field struct {
	list string // "hosts", "server_timing", "cdn_probes"; "" at the top
	i    int
	sub  string // "cold", "warm" inside a probe
	name string
}

func (f field) String() string {
	s := f.name
	if f.sub != "" {
		s = f.sub + "." + s
	}
	if f.list != "" {
		s = fmt.Sprintf("%s[%d].%s", f.list, f.i, s)
	}
	return s
}

func top(name string) field { return field{name: name} }

// checker collects the first validation error with its field path.
type checker struct{ err error }

func (c *checker) fail(f field, format string, args ...any) {
	if c.err == nil {
		c.err = fmt.Errorf("field %s: %s", f, fmt.Sprintf(format, args...))
	}
}

func (c *checker) ms(f field, v *float64) {
	if v != nil && !(*v >= 0 && *v <= maxMs) {
		c.fail(f, "want milliseconds in [0, %g], got %v", float64(maxMs), *v)
	}
}

func (c *checker) bytes(f field, v *int64) {
	if v != nil && (*v < 0 || *v > maxByteCount) {
		c.fail(f, "want a byte count in [0, %d], got %d", int64(maxByteCount), *v)
	}
}

func (c *checker) str(f field, v string, required bool, max int) {
	switch {
	case required && v == "":
		c.fail(f, "missing")
	case len(v) > max:
		c.fail(f, "longer than %d bytes", max)
	case !utf8.ValidString(v):
		c.fail(f, "not valid UTF-8")
	}
}

func validateBeacon(b *store.Beacon) error {
	var c checker
	if b.V != 1 {
		c.fail(top("v"), "want 1 (format v1), got %d", b.V)
	}
	if !isSiteKey(b.Site) {
		c.fail(top("site"), "want the site key from `meridian sites add`, got %q", clipString(b.Site, 70))
	}
	if !isPV(b.PV) {
		c.fail(top("pv"), "want a lowercase UUID, got %q", clipString(b.PV, 40))
	}
	c.str(top("url"), b.URL, true, maxURLBytes)
	c.str(top("ref_host"), b.RefHost, false, maxNameBytes)
	if !(b.Sample > 0 && b.Sample <= 1) {
		c.fail(top("sample"), "want the sampling rate in (0, 1], got %v", b.Sample)
	}
	if n := b.Nav; n != nil {
		c.str(top("nav.type"), n.Type, false, 32)
		c.ms(top("nav.redirect_ms"), n.RedirectMs)
		c.ms(top("nav.dns_ms"), n.DNSMs)
		c.ms(top("nav.connect_ms"), n.ConnectMs)
		c.ms(top("nav.tls_ms"), n.TLSMs)
		c.ms(top("nav.ttfb_ms"), n.TTFBMs)
		c.ms(top("nav.response_ms"), n.ResponseMs)
		c.ms(top("nav.dom_interactive_ms"), n.DOMInteractiveMs)
		c.ms(top("nav.dom_complete_ms"), n.DOMCompleteMs)
		c.ms(top("nav.load_ms"), n.LoadMs)
		c.str(top("nav.protocol"), n.Protocol, false, 32)
		c.bytes(top("nav.transfer_bytes"), n.TransferBytes)
		if n.DeliveryType != nil {
			c.str(top("nav.delivery_type"), *n.DeliveryType, false, 32)
		}
	}
	if v := b.Vitals; v != nil {
		c.ms(top("vitals.fcp_ms"), v.FCPMs)
		c.ms(top("vitals.lcp_ms"), v.LCPMs)
		c.ms(top("vitals.inp_ms"), v.INPMs)
		c.ms(top("vitals.ttfb_ms"), v.TTFBMs)
		if v.CLS != nil && !(*v.CLS >= 0 && *v.CLS <= maxCLS) {
			c.fail(top("vitals.cls"), "want a layout shift score in [0, %d], got %v", maxCLS, *v.CLS)
		}
	}
	if cn := b.Conn; cn != nil {
		c.str(top("conn.effective_type"), cn.EffectiveType, false, 16)
		c.ms(top("conn.rtt_ms"), cn.RTTMs)
	}
	validateLists(&c, b)
	return c.err
}

func validateLists(c *checker, b *store.Beacon) {
	if len(b.ServerTiming) > maxTimings {
		c.fail(top("server_timing"), "at most %d metrics, got %d", maxTimings, len(b.ServerTiming))
	}
	for i, s := range b.ServerTiming {
		at := func(name string) field { return field{list: "server_timing", i: i, name: name} }
		c.str(at("name"), s.Name, true, maxNameBytes)
		c.str(at("desc"), s.Desc, false, 4*100)
		c.ms(at("dur"), s.Dur)
	}
	if len(b.Hosts) > maxHosts {
		c.fail(top("hosts"), "at most %d hosts, got %d", maxHosts, len(b.Hosts))
	}
	for i, h := range b.Hosts {
		at := func(name string) field { return field{list: "hosts", i: i, name: name} }
		c.str(at("host"), h.Host, true, maxNameBytes)
		c.str(at("cdn"), h.CDN, false, 64)
		if h.Count < 1 || h.Count > maxCount {
			c.fail(at("count"), "want a request count in [1, %d], got %d", int64(maxCount), h.Count)
		}
		if h.MedianMs == nil {
			c.fail(at("median_ms"), "missing")
		}
		c.ms(at("median_ms"), h.MedianMs)
		if h.Bytes == nil {
			c.fail(at("bytes"), "missing")
		}
		c.bytes(at("bytes"), h.Bytes)
		if h.TAO == nil {
			c.fail(at("tao"), "missing")
		}
	}
	if len(b.CDNProbes) > maxProbes {
		c.fail(top("cdn_probes"), "at most %d probes, got %d", maxProbes, len(b.CDNProbes))
	}
	for i, p := range b.CDNProbes {
		at := field{list: "cdn_probes", i: i}
		c.str(at.named("cdn"), p.CDN, true, 64)
		c.str(at.named("url"), p.URL, true, maxURLBytes)
		if p.Cold == nil {
			c.fail(at.named("cold"), "missing")
		}
		at.sub = "cold"
		validateFetch(c, at, p.Cold)
		at.sub = "warm"
		validateFetch(c, at, p.Warm)
	}
}

func (f field) named(name string) field { f.name = name; return f }

// validateFetch checks one probe fetch; at names the fetch (its sub).
func validateFetch(c *checker, at field, f *store.ProbeFetch) {
	if f == nil {
		return
	}
	whole := field{list: at.list, i: at.i, name: at.sub}
	timed := f.DNSMs != nil || f.ConnectMs != nil || f.TLSMs != nil || f.TTFBMs != nil || f.DurationMs != nil || f.Bytes != nil
	switch {
	case f.Error && timed:
		c.fail(whole, "holds both error and timings; want one or the other")
	case !f.Error && f.Status != 0:
		c.fail(at.named("status"), "only with error: true")
	case f.Error && f.Status != 0 && (f.Status < minStatus || f.Status > maxStatus):
		c.fail(at.named("status"), "want an HTTP status in [%d, %d], got %d", minStatus, maxStatus, f.Status)
	case !f.Error && f.DurationMs == nil:
		c.fail(at.named("duration_ms"), "missing")
	}
	c.ms(at.named("dns_ms"), f.DNSMs)
	c.ms(at.named("connect_ms"), f.ConnectMs)
	c.ms(at.named("tls_ms"), f.TLSMs)
	c.ms(at.named("ttfb_ms"), f.TTFBMs)
	c.ms(at.named("duration_ms"), f.DurationMs)
	c.bytes(at.named("bytes"), f.Bytes)
}

// clipString shortens s for an error message, marking the cut.
func clipString(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return truncate(s, n) + "…"
}
